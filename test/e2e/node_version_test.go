package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVersionDefault: a plain `go build` reports version dev, and the
// JSON form has the three fields.
func TestVersionDefault(t *testing.T) {
	t.Parallel()
	r := runBin(t, roostBin, "", cleanEnv(), 10*time.Second, "version")
	if r.Code != 0 {
		t.Fatalf("roost version: %s", r)
	}
	if got, want := r.Stdout, "roost dev (commit unknown, built unknown)\n"; got != want {
		t.Errorf("roost version = %q, want %q", got, want)
	}
	r = runBin(t, roostBin, "", cleanEnv(), 10*time.Second, "version", "--output", "json")
	var v map[string]string
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil || len(v) != 3 ||
		v["version"] != "dev" || v["commit"] != "unknown" || v["date"] != "unknown" {
		t.Errorf("roost version --output json = %q (%v)", r.Stdout, err)
	}
}

// TestVersionLdflags: a binary built with -ldflags -X main.version/commit/
// date prints those, and a node started from it reports the version.
func TestVersionLdflags(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(shortTempDir(t), "roost-1.2.3")
	build := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X main.version=1.2.3 -X main.commit=abc -X main.date=2026-01-01", "../../cmd/roost")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build with -ldflags: %v\n%s", err, out)
	}
	r := runBin(t, bin, "", cleanEnv(), 10*time.Second, "version")
	if got, want := r.Stdout, "roost 1.2.3 (commit abc, built 2026-01-01)\n"; r.Code != 0 || got != want {
		t.Errorf("roost version = %q (exit %d), want %q", got, r.Code, want)
	}
	r = runBin(t, bin, "", cleanEnv(), 10*time.Second, "version", "--output", "json")
	var v map[string]string
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil || len(v) != 3 ||
		v["version"] != "1.2.3" || v["commit"] != "abc" || v["date"] != "2026-01-01" {
		t.Errorf("roost version --output json = %q (%v)", r.Stdout, err)
	}

	// The running node reports the same version, in its log and status.
	dir := shortTempDir(t)
	p := newPorts(t)
	env := cleanEnv(append(p.env(), "ROOST_NODE__DATA_DIR="+filepath.Join(dir, "data"))...)
	pr := newProc(t, bin, dir, env, p.MQTT)
	pr.start()
	pr.waitReady()
	if s := parseStatus(t, pr.ctl("status", "--output", "json").Stdout); s.Version != "1.2.3" {
		t.Errorf("status version %q, want 1.2.3", s.Version)
	}
	mustContain(t, "start log", pr.logs(), "version=1.2.3")
	if code := pr.signal(sigterm); code != 0 {
		t.Fatalf("exit %d\n%s", code, pr.logs())
	}
}

// TestCtlNodeNotRunning: ctl against a data dir with no node gives a clear
// error naming the socket path and a non-zero exit, whether there is no
// socket at all or a stale one nobody listens on; nothing is created.
func TestCtlNodeNotRunning(t *testing.T) {
	t.Parallel()
	dir := realPath(t, shortTempDir(t))
	data := filepath.Join(dir, "data")
	sock := filepath.Join(data, "roost.sock")
	env := cleanEnv("ROOST_NODE__DATA_DIR=" + data)

	for _, args := range [][]string{{"ctl", "status"}, {"ctl", "users", "list"}, {"ctl", "apikeys", "create", "k"}, {"ctl", "status", "--output", "json"}} {
		r := runBin(t, roostBin, dir, env, 20*time.Second, args...)
		if r.Code <= 0 {
			t.Errorf("%v with no node: want a non-zero exit, got %s", args, r)
		}
		if r.Elapsed > 5*time.Second {
			t.Errorf("%v with no node took %s", args, r.Elapsed)
		}
		mustContain(t, strings.Join(args, " ")+" error", r.Stderr, sock, "roost start")
		if r.Stdout != "" {
			t.Errorf("%v printed on stdout: %q", args, r.Stdout)
		}
	}
	if _, err := os.Lstat(data); !os.IsNotExist(err) {
		t.Errorf("ctl created the data dir: %v", err)
	}

	// The data dir found by the default rule (./data in the working dir)
	// is the one named.
	if !packageConfigExists() {
		r := runBin(t, roostBin, dir, cleanEnv(), 20*time.Second, "ctl", "status")
		mustContain(t, "ctl status from the working dir", r.Stderr, sock)
		if r.Code <= 0 {
			t.Errorf("ctl status: want a non-zero exit, got %s", r)
		}
	}

	// A stale socket (a node that was killed -9 leaves one).
	n := newNode(t)
	n.Start()
	n.Kill()
	stale := filepath.Join(n.DataDir, "roost.sock")
	if _, err := os.Lstat(stale); err != nil {
		t.Logf("kill -9 left no socket, so no stale-socket case to check: %v", err)
		return
	}
	r := runBinCtl(t, n, "status")
	if r.Code <= 0 {
		t.Errorf("ctl status on a stale socket: want a non-zero exit, got %s", r)
	}
	mustContain(t, "stale socket error", r.Stderr, stale, "nothing listens")
	// And a node starts over the stale socket.
	n.Start()
	if err := n.Stop(); err != nil {
		t.Fatalf("SIGTERM: exit %v\n%s", err, n.Logs())
	}
}
