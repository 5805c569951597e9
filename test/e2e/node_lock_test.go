package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNodeDataDirLock: a second `roost start` on a data dir in use (other
// ports) fails at once with a message naming the data dir and "in use",
// and the first node keeps serving with its data intact, also after it
// restarts.
func TestNodeDataDirLock(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.Start()
	n.mustCtl("users", "add", "lock-user", "pw-lock")
	_, idBefore := readIdentity(t, n.DataDir)
	pwBefore, err := os.ReadFile(filepath.Join(n.DataDir, "initial-admin-password"))
	if err != nil {
		t.Fatal(err)
	}

	// The intruder: same data dir, its own ports, started like an operator
	// would (env only, no config file).
	p := newPorts(t)
	env := cleanEnv(append(p.env(), "ROOST_NODE__DATA_DIR="+n.DataDir)...)
	res := runBin(t, roostBin, shortTempDir(t), env, 20*time.Second, "start")
	if res.Code == 0 {
		t.Fatalf("second roost start on %s succeeded: %s", n.DataDir, res)
	}
	if res.Code < 0 {
		t.Fatalf("second roost start did not exit by itself: %s", res)
	}
	if res.Elapsed > 5*time.Second {
		t.Errorf("second roost start took %s to fail, want at once", res.Elapsed)
	}
	mustContain(t, "second start's error", res.Stderr, n.DataDir, "in use")
	// It never listened on its own ports.
	for _, a := range []string{p.MQTT, p.API} {
		if !portClosed(a) {
			t.Errorf("second node left a listener on %s", a)
		}
	}

	// The first node is untouched and still serving.
	s := parseStatus(t, n.mustCtl("status", "--output", "json"))
	if s.Raft.State != "Leader" {
		t.Errorf("first node's raft state %q after the intruder, want Leader", s.Raft.State)
	}
	wantUsers(t, n, "lock-user")
	n.mustCtl("users", "add", "after-intruder", "pw")
	wantUsers(t, n, "after-intruder", "lock-user")
	if _, err := os.Stat(filepath.Join(n.DataDir, "roost.sock")); err != nil {
		t.Errorf("first node's socket gone after the intruder: %v", err)
	}

	// A clean stop and restart keep everything.
	if err := n.Stop(); err != nil {
		t.Fatalf("SIGTERM: exit %v, want 0\n%s", err, n.Logs())
	}
	n.Start()
	wantUsers(t, n, "after-intruder", "lock-user")
	if _, idAfter := readIdentity(t, n.DataDir); !bytes.Equal(idBefore, idAfter) {
		t.Errorf("node.json changed:\nbefore %s\nafter  %s", idBefore, idAfter)
	}
	if pwAfter, _ := os.ReadFile(filepath.Join(n.DataDir, "initial-admin-password")); !bytes.Equal(pwBefore, pwAfter) {
		t.Errorf("initial-admin-password changed: %q then %q", pwBefore, pwAfter)
	}
	if err := n.Stop(); err != nil {
		t.Fatalf("SIGTERM: exit %v, want 0\n%s", err, n.Logs())
	}
}

// wantUsers checks `ctl users list` holds exactly these user ids (sorted).
func wantUsers(t *testing.T, n *node, ids ...string) {
	t.Helper()
	var users []struct {
		UserID string `json:"user_id"`
	}
	out := n.mustCtl("users", "list", "--output", "json")
	if err := json.Unmarshal([]byte(out), &users); err != nil {
		t.Fatalf("users list JSON: %v\n%s", err, out)
	}
	var got []string
	for _, u := range users {
		got = append(got, u.UserID)
	}
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Errorf("users = %v, want %v", got, ids)
	}
}

// TestNodeDataDirLockConcurrentStarts: two `roost start` at the same
// moment on one fresh data dir: exactly one runs, the other fails at once
// saying the data dir is in use.
func TestNodeDataDirLockConcurrentStarts(t *testing.T) {
	t.Parallel()
	dir := shortTempDir(t)
	data := filepath.Join(dir, "data")
	var procs []*proc
	for range 2 {
		p := newPorts(t)
		procs = append(procs, newProc(t, roostBin, dir, cleanEnv(append(p.env(), "ROOST_NODE__DATA_DIR="+data)...), p.MQTT))
	}
	for _, p := range procs {
		p.start()
	}
	// One of them must exit quickly.
	var loser, winner *proc
	deadline := time.Now().Add(5 * time.Second)
	for loser == nil {
		for i, p := range procs {
			if p.exited() {
				loser, winner = p, procs[1-i]
			}
		}
		if loser == nil && time.Now().After(deadline) {
			t.Fatalf("both starts on one data dir still running after 5s:\n%s\n---\n%s", procs[0].logs(), procs[1].logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code := exitCode(loser.err); code <= 0 {
		t.Errorf("the losing start exited %d, want non-zero", code)
	}
	mustContain(t, "losing start's output", loser.logs(), data, "in use")
	winner.waitReady()
	id, _ := readIdentity(t, data)
	if s := parseStatus(t, winner.ctl("status", "--output", "json").Stdout); s.NodeID != id.NodeID {
		t.Errorf("winner is %q, node.json says %q", s.NodeID, id.NodeID)
	}
	if code := winner.signal(sigterm); code != 0 {
		t.Fatalf("exit %d\n%s", code, winner.logs())
	}
}
