package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestNodeLifecycleNoConfigFile: a node started with no config file at all
// (only ports and data dir by env) creates its identity and the initial
// admin password (0600), stops with exit 0 on SIGTERM and on SIGINT,
// removes its control socket, and comes back with the same identity and
// its data.
func TestNodeLifecycleNoConfigFile(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.Start()

	// Built-in defaults: no config file in use.
	if !packageConfigExists() && !strings.Contains(n.Logs(), `config=""`) {
		t.Errorf("start log does not show an empty config file:\n%s", n.Logs())
	}

	id, raw := readIdentity(t, n.DataDir)
	if id.Name == "" {
		t.Errorf("node.json has no name: %s", raw)
	}
	if !hex32.MatchString(id.NodeID) {
		t.Errorf("node.json node_id %q is not 32 hex digits", id.NodeID)
	}
	if !hex32.MatchString(id.ClusterID) {
		t.Errorf("node.json cluster_id %q is not 32 hex digits", id.ClusterID)
	}
	if id.NodeID == id.ClusterID {
		t.Errorf("node_id and cluster_id are equal: %s", id.NodeID)
	}
	if id.FormatVersion != 1 {
		t.Errorf("node.json format_version = %d, want 1", id.FormatVersion)
	}

	pwFile := filepath.Join(n.DataDir, "initial-admin-password")
	st, err := os.Stat(pwFile)
	if err != nil {
		t.Fatalf("initial admin password file: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("initial-admin-password mode %v, want 0600", st.Mode().Perm())
	}
	pw1, _ := os.ReadFile(pwFile)
	password := strings.TrimSpace(string(pw1))
	if len(password) < 16 {
		t.Errorf("initial admin password %q is too short to be random", password)
	}
	mustContain(t, "start log", n.Logs(), pwFile)

	// The running node reports the identity in node.json.
	s := parseStatus(t, n.mustCtl("status", "--output", "json"))
	if s.NodeID != id.NodeID || s.ClusterID != id.ClusterID || s.Node != id.Name {
		t.Errorf("ctl status %+v does not match node.json %+v", s, id)
	}
	if s.Raft.State != "Leader" || s.Raft.Voters != 1 {
		t.Errorf("single node raft: state %q voters %d, want Leader and 1", s.Raft.State, s.Raft.Voters)
	}
	sock := filepath.Join(n.DataDir, "roost.sock")
	if st, err := os.Stat(sock); err != nil || st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Errorf("control socket %s: %v %v, want a 0600 socket", sock, st.Mode(), err)
	}
	n.mustCtl("users", "add", "lifecycle-user", "pw-1")

	// SIGTERM: clean exit 0, socket gone, ports free.
	if err := n.Stop(); err != nil {
		t.Fatalf("SIGTERM: exit %v, want 0\n%s", err, n.Logs())
	}
	mustContain(t, "log after SIGTERM", n.Logs(), "node stopped cleanly")
	waitGone(t, sock, 2*time.Second)
	if !portClosed(n.MQTT) || !portClosed(n.API) {
		t.Errorf("listeners still open after the node exited")
	}
	r := runBinCtl(t, n, "status")
	if r.Code == 0 || !strings.Contains(r.Stderr, sock) {
		t.Errorf("ctl status after stop: want a failure naming %s, got %s", sock, r)
	}

	// Restart: same identity (byte for byte), same admin password, data kept.
	n.Start()
	_, raw2 := readIdentity(t, n.DataDir)
	if !bytes.Equal(raw, raw2) {
		t.Errorf("node.json changed across a restart:\nbefore %s\nafter  %s", raw, raw2)
	}
	if pw2, _ := os.ReadFile(pwFile); !bytes.Equal(pw1, pw2) {
		t.Errorf("initial-admin-password rewritten on restart: %q then %q", pw1, pw2)
	}
	if strings.Contains(n.Logs(), "new node identity") {
		t.Errorf("restart logged a new node identity:\n%s", n.Logs())
	}
	var users []struct {
		UserID string `json:"user_id"`
	}
	if err := json.Unmarshal([]byte(n.mustCtl("users", "list", "--output", "json")), &users); err != nil {
		t.Fatal(err)
	}
	if len(users) != 1 || users[0].UserID != "lifecycle-user" {
		t.Errorf("users after restart = %+v, want [lifecycle-user]", users)
	}
	login := doAPI(t, n.API, apiCall{Method: "POST", Path: "/api/v1/login",
		Body: `{"username":"admin","password":` + jsonString(password) + `}`})
	if login.Status != 200 {
		t.Errorf("admin login with the initial password after restart: %s", login)
	}

	// SIGINT (Ctrl-C) stops it as cleanly.
	if err := signalNode(n, syscall.SIGINT); err != nil {
		t.Fatalf("SIGINT: exit %v, want 0\n%s", err, n.Logs())
	}
	mustContain(t, "log after SIGINT", n.Logs(), "node stopped cleanly")
	waitGone(t, sock, 2*time.Second)

	// And once more after SIGINT: still the same node.
	n.Start()
	_, raw3 := readIdentity(t, n.DataDir)
	if !bytes.Equal(raw, raw3) {
		t.Errorf("node.json changed after SIGINT and restart:\nbefore %s\nafter  %s", raw, raw3)
	}
	if err := n.Stop(); err != nil {
		t.Fatalf("SIGTERM: exit %v, want 0\n%s", err, n.Logs())
	}
}

// TestNodeDefaultDataDirInWorkingDir: with no config file and no data dir
// setting, `roost start` puts its data in ./data of the working dir (the
// source-checkout rule), and `roost ctl` run from there finds the node.
func TestNodeDefaultDataDirInWorkingDir(t *testing.T) {
	t.Parallel()
	skipIfPackageConfig(t)
	wd := realPath(t, shortTempDir(t))
	p := newPorts(t)
	env := cleanEnv(p.env()...)
	pr := newProc(t, roostBin, wd, env, p.MQTT)
	pr.start()
	pr.waitReady()

	data := filepath.Join(wd, "data")
	id, _ := readIdentity(t, data)
	if !hex32.MatchString(id.NodeID) {
		t.Errorf("node_id %q", id.NodeID)
	}
	if st, err := os.Stat(filepath.Join(data, "initial-admin-password")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("initial-admin-password in ./data: %v %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(data, "roost.sock")); err != nil {
		t.Errorf("socket not in ./data: %v", err)
	}
	got := pathsJSON(t, roostBin, wd, env)
	if got.DataDir != data || got.DataDirRule != "source checkout / default" || got.ConfigRule != "built-in defaults" || got.ConfigFile != "" {
		t.Errorf("roost paths = %+v, want data %s by the source-checkout rule on built-in defaults", got, data)
	}
	s := parseStatus(t, pr.ctl("status", "--output", "json").Stdout)
	if s.NodeID != id.NodeID {
		t.Errorf("ctl from the working dir reached node %q, want %q", s.NodeID, id.NodeID)
	}
	mustContain(t, "start log", pr.logs(), "data_dir="+data)

	if code := pr.signal(syscall.SIGTERM); code != 0 {
		t.Fatalf("SIGTERM: exit %d, want 0\n%s", code, pr.logs())
	}
	waitGone(t, filepath.Join(data, "roost.sock"), 2*time.Second)
	// Nothing was written outside ./data.
	entries, _ := os.ReadDir(wd)
	if len(entries) != 1 || entries[0].Name() != "data" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("working dir holds %v, want only data/", names)
	}
}

// TestNodeConfiguredDefaultPassword: with dashboard.default_password set
// (by env), no initial-admin-password file is written and the admin logs
// in with the configured password (and not with a wrong one).
func TestNodeConfiguredDefaultPassword(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.Env = []string{"ROOST_DASHBOARD__DEFAULT_PASSWORD=Configured-Pa55word"}
	n.Start()
	if _, err := os.Stat(filepath.Join(n.DataDir, "initial-admin-password")); !os.IsNotExist(err) {
		t.Errorf("initial-admin-password exists although dashboard.default_password is set (stat: %v)", err)
	}
	ok := doAPI(t, n.API, apiCall{Method: "POST", Path: "/api/v1/login", Body: `{"username":"admin","password":"Configured-Pa55word"}`})
	if ok.Status != 200 {
		t.Fatalf("login with the configured password: %s", ok)
	}
	var tok struct {
		Token    string `json:"token"`
		Username string `json:"username"`
		Role     string `json:"role"`
	}
	if err := json.Unmarshal(ok.Body, &tok); err != nil || tok.Token == "" || tok.Username != "admin" {
		t.Fatalf("login answer %s (%v)", ok.Body, err)
	}
	st := doAPI(t, n.API, apiCall{Method: "GET", Path: "/api/v1/status", Bearer: tok.Token})
	if st.Status != 200 {
		t.Errorf("status with the bearer token: %s", st)
	}
	bad := doAPI(t, n.API, apiCall{Method: "POST", Path: "/api/v1/login", Body: `{"username":"admin","password":"wrong"}`})
	wantAPIError(t, "login with a wrong password", bad, 401, "UNAUTHORIZED")
	if err := n.Stop(); err != nil {
		t.Fatalf("SIGTERM: exit %v, want 0\n%s", err, n.Logs())
	}
}

// runBinCtl runs `roost ctl ARGS` the way the harness node does, as a
// cmdResult.
func runBinCtl(t *testing.T, n *node, args ...string) cmdResult {
	t.Helper()
	start := time.Now()
	out, errOut, err := n.ctl(args...)
	return cmdResult{Stdout: out, Stderr: errOut, Err: err, Code: exitCode(err), Elapsed: time.Since(start)}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// skipIfPackageConfig skips a test that needs the built-in-defaults rule
// on a machine where a package install's /etc/roost/roost.conf exists.
func skipIfPackageConfig(t *testing.T) {
	t.Helper()
	if packageConfigExists() {
		t.Skip("/etc/roost/roost.conf exists on this machine: the built-in-defaults and ./data rules cannot apply")
	}
}

func packageConfigExists() bool {
	_, err := os.Stat("/etc/roost/roost.conf")
	return err == nil
}

// TestNodeStopDuringStartup: SIGTERM while the node is still starting
// (before its single-voter raft has elected itself) is a stop like any
// other: exit 0, and the next start works with the same identity.
func TestNodeStopDuringStartup(t *testing.T) {
	t.Parallel()
	dir := shortTempDir(t)
	data := filepath.Join(dir, "data")
	p := newPorts(t)
	env := cleanEnv(append(p.env(), "ROOST_NODE__DATA_DIR="+data)...)
	pr := newProc(t, roostBin, dir, env, p.MQTT)
	pr.start()
	// Wait until the node is inside start-up (identity written, raft
	// running), but not yet serving.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(pr.logs(), "new node identity") {
		if time.Now().After(deadline) || pr.exited() {
			t.Fatalf("node did not begin start-up:\n%s", pr.logs())
		}
		time.Sleep(5 * time.Millisecond)
	}
	code := pr.signal(syscall.SIGTERM)
	logs := pr.logs()
	if code != 0 {
		t.Errorf("SIGTERM during start-up: exit %d, want 0 (a requested stop is not a failure)\n%s", code, lastLines(logs, 3))
	}
	if strings.Contains("\n"+logs, "\nroost: ") {
		t.Errorf("SIGTERM during start-up printed an error:\n%s", lastLines(logs, 3))
	}
	id, _ := readIdentity(t, data)

	pr2 := newProc(t, roostBin, dir, env, p.MQTT)
	pr2.start()
	pr2.waitReady()
	if s := parseStatus(t, pr2.ctl("status", "--output", "json").Stdout); s.NodeID != id.NodeID {
		t.Errorf("after an interrupted first start the node is %q, want %q", s.NodeID, id.NodeID)
	}
	if code := pr2.signal(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d\n%s", code, pr2.logs())
	}
}

// TestNodeNameMismatchRefused: node.json is the node's identity; starting
// its data dir under another node.name fails fast with a message naming
// both names and the data dir, and leaves node.json as it was.
func TestNodeNameMismatchRefused(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.Env = []string{"ROOST_NODE__NAME=first@e2e"}
	n.Start()
	if err := n.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	id, raw := readIdentity(t, n.DataDir)
	if id.Name != "first@e2e" {
		t.Fatalf("node.json name %q, want first@e2e", id.Name)
	}

	n.Env = []string{"ROOST_NODE__NAME=second@e2e"}
	r := runBin(t, roostBin, "", n.env(), 20*time.Second, "start")
	if r.Code <= 0 {
		t.Fatalf("start under another name: want a non-zero exit, got %s", r)
	}
	if r.Elapsed > 5*time.Second {
		t.Errorf("took %s to refuse", r.Elapsed)
	}
	mustContain(t, "error", r.Stderr, n.DataDir, `"first@e2e"`, `"second@e2e"`)
	if _, raw2 := readIdentity(t, n.DataDir); !bytes.Equal(raw, raw2) {
		t.Errorf("node.json changed by a refused start:\n%s\n%s", raw, raw2)
	}

	n.Env = []string{"ROOST_NODE__NAME=first@e2e"}
	n.Start()
	if s := parseStatus(t, n.mustCtl("status", "--output", "json")); s.Node != "first@e2e" || s.NodeID != id.NodeID {
		t.Errorf("status %+v after the refused start", s)
	}
	if err := n.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
