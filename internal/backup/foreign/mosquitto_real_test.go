package foreign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roostmq/roost/internal/broker/authn"
	"github.com/roostmq/roost/internal/store"
)

// findMosquitto returns the broker, mosquitto_ctrl and the dynamic
// security plugin of an installed Mosquitto (Debian: packages mosquitto
// and mosquitto-clients), or why they are missing.
func findMosquitto() (broker, ctrl, plugin string, missing error) {
	look := func(name string, fallbacks ...string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, p := range fallbacks {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
		return ""
	}
	broker = look("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
	ctrl = look("mosquitto_ctrl", "/usr/bin/mosquitto_ctrl", "/usr/local/bin/mosquitto_ctrl")
	for _, pattern := range []string{"/usr/lib/*/mosquitto_dynamic_security.so", "/usr/lib/mosquitto_dynamic_security.so",
		"/usr/local/lib/mosquitto_dynamic_security.so", "/usr/lib64/mosquitto_dynamic_security.so"} {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			plugin = m[0]
			break
		}
	}
	switch {
	case broker == "":
		missing = errors.New("no mosquitto binary (apt-get install mosquitto)")
	case ctrl == "":
		missing = errors.New("no mosquitto_ctrl (apt-get install mosquitto-clients)")
	case plugin == "":
		missing = errors.New("no mosquitto_dynamic_security.so (Debian's mosquitto package ships it)")
	}
	return
}

// TestDynsecRealMosquitto makes a dynamic-security file with the real
// programs — mosquitto_ctrl dynsec init, then a mosquitto on a loopback
// port with the plugin, changed through mosquitto_ctrl — and reads it:
// every client's original password verifies against the credential the
// reader builds, and roles, groups, priorities and a disabled client map
// as documented.
func TestDynsecRealMosquitto(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a mosquitto broker")
	}
	mosq, ctrl, plugin, missing := findMosquitto()
	if missing != nil {
		t.Skip("Mosquitto is not installed: ", missing)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	dir := t.TempDir()
	file := filepath.Join(dir, "dynamic-security.json")

	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		out, err := cmd.CombinedOutput()
		if err != nil || strings.Contains(string(out), "Error") {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run(ctrl, "dynsec", "init", file, "admin", "adminpw")

	// A free loopback port (the tiny race with other processes is fine
	// for a test).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	conf := fmt.Sprintf("per_listener_settings false\nlistener %s 127.0.0.1\nallow_anonymous false\npersistence false\n"+
		"plugin %s\nplugin_opt_config_file %s\nlog_dest stderr\n", port, plugin, file)
	if os.Geteuid() == 0 {
		conf += "user root\n" // else mosquitto drops to user mosquitto, which cannot write the file
	}
	confFile := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	broker := exec.CommandContext(ctx, mosq, "-c", confFile)
	broker.Stdout, broker.Stderr = &logs, &logs
	if err := broker.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = broker.Process.Kill()
			_ = broker.Wait()
		}
	}
	defer stop()
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto does not listen on %s: %v\n%s", port, err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	dynsec := func(args ...string) {
		t.Helper()
		run(ctrl, append([]string{"-h", "127.0.0.1", "-p", port, "-u", "admin", "-P", "adminpw", "dynsec"}, args...)...)
	}
	dynsec("createClient", "alice", "-p", "alicepw")
	dynsec("createClient", "bob", "-p", "bobpw", "-c", "bob-dev")
	dynsec("createClient", "carol", "-p", "carol pw ✓")
	dynsec("createRole", "publisher")
	dynsec("addRoleACL", "publisher", "publishClientSend", "sensors/#", "allow", "5")
	dynsec("addRoleACL", "publisher", "publishClientSend", "sensors/secret", "deny", "9")
	dynsec("createRole", "subscriber")
	dynsec("addRoleACL", "subscriber", "subscribeLiteral", "alerts/+", "allow")
	dynsec("addRoleACL", "subscriber", "subscribePattern", "alerts/#", "deny", "1")
	dynsec("addRoleACL", "subscriber", "publishClientReceive", "alerts/#", "allow")
	dynsec("addRoleACL", "subscriber", "publishClientReceive", "alerts/private", "deny", "2")
	dynsec("addClientRole", "alice", "publisher", "3")
	dynsec("createGroup", "team")
	dynsec("addGroupRole", "team", "subscriber")
	dynsec("addGroupClient", "team", "alice", "1")
	dynsec("addGroupClient", "team", "carol")
	dynsec("disableClient", "bob")
	stop() // the plugin saved the file on every change

	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if Detect(data) != formatMosquitto {
		t.Errorf("Detect = %q", Detect(data))
	}
	rd, err := readDynsec(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	ds := rd.ds

	passwords := map[string]string{"admin": "adminpw", "alice": "alicepw", "bob": "bobpw", "carol": "carol pw ✓"}
	if len(rd.clients) != len(passwords) {
		t.Fatalf("%d clients, want %d\n%s", len(rd.clients), len(passwords), data)
	}
	imported := map[string]bool{}
	for _, k := range keys(ds, store.TableUsers) {
		imported[k] = true
	}
	for _, c := range rd.clients {
		pw := passwords[c.username]
		if c.user == nil || !authn.Verify(c.user, pw) || authn.Verify(c.user, pw+"x") {
			t.Errorf("client %s: the credential does not verify exactly its password %q: %+v", c.username, pw, c.user)
			continue
		}
		if imported["username:"+c.username] {
			checkLogin(t, findUser(t, ds, "username:"+c.username), pw)
		} else if survivesStorage(c.user) {
			t.Errorf("client %s not imported", c.username)
		}
	}
	// Mosquitto's salts are random bytes: the ones today's users table
	// cannot hold are reported, not imported broken.
	for _, p := range ds.Problems {
		if p.Table != "clients" || p.Field != "salt" || !strings.Contains(p.Msg, "binary salt") {
			t.Errorf("unexpected problem: %s", p)
		}
	}

	rules := ruleStrings(ds)
	per := func(user string) []string {
		var out []string
		for _, r := range rules {
			if strings.HasPrefix(r, "username "+user+" ") {
				out = append(out, r)
			}
		}
		return out
	}
	wantAlice := []string{
		"username alice publish sensors/secret deny", // role publisher (3), priority 9
		"username alice publish sensors/# allow",     // priority 5
		"username alice subscribe eq alerts/+ allow", // group team: subscriber, literal first
		"username alice subscribe alerts/# deny",     // then its pattern
	}
	if got := per("alice"); !slices.Equal(got, wantAlice) {
		t.Errorf("alice\n got %q\nwant %q", got, wantAlice)
	}
	if got, want := per("carol"), wantAlice[2:]; !slices.Equal(got, strings.Split(strings.ReplaceAll(strings.Join(want, "\n"), "alice", "carol"), "\n")) {
		t.Errorf("carol: %q", got)
	}
	if got := per("bob"); len(got) != 0 {
		t.Errorf("bob has no roles, got %q", got)
	}
	admin := per("admin")
	for _, want := range []string{"username admin publish $CONTROL/dynamic-security/# allow",
		"username admin subscribe $CONTROL/dynamic-security/# allow", "username admin subscribe $SYS/# allow", "username admin subscribe # allow"} {
		if !slices.Contains(admin, want) {
			t.Errorf("admin lacks %q: %q", want, admin)
		}
	}
	if got := rules[len(rules)-2:]; !slices.Equal(got, []string{"all publish # deny", "all subscribe # deny"}) {
		t.Errorf("defaults (mosquitto_ctrl dynsec init: publishClientSend and subscribe denied): %q", got)
	}
	if bans := keys(ds, store.TableBanned); !slices.Equal(bans, []string{"username:bob"}) {
		t.Errorf("bans %q (bob is disabled)", bans)
	}
	for _, n := range []string{`publishClientReceive denials not enforced (roles with deny ACLs: "subscriber"; default allow)`, `client id restriction not mapped`, `"bob"`} {
		if !hasNote(ds, n) {
			t.Errorf("no note %q in %q", n, ds.Notes)
		}
	}
	if t.Failed() {
		t.Logf("file:\n%s\nmosquitto log:\n%s", data, logs.String())
	}
}
