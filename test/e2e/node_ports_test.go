package e2e

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNodeStartPortInUse: a start that cannot bind one of its ports (each
// MQTT listener, api.bind, cluster.bind in turn) fails at once with an
// error naming the port and the key that sets it, and creates nothing: a
// fresh data dir does not come into being, an existing one is left
// exactly as it was (names, modes, sizes, times, content). Its other
// ports are not left open. Once the port is free, the node starts.
func TestNodeStartPortInUse(t *testing.T) {
	t.Parallel()
	keys := []struct{ key, env string }{
		{"listeners.tcp.default.bind", "ROOST_LISTENERS__TCP__DEFAULT__BIND"},
		{"listeners.ws.default.bind", "ROOST_LISTENERS__WS__DEFAULT__BIND"},
		{"api.bind", "ROOST_API__BIND"},
		{"cluster.bind", "ROOST_CLUSTER__BIND"},
	}
	// occupied starts a node with the port of key taken by another
	// process's listener, and checks the refusal.
	occupied := func(t *testing.T, dir, data, key, envName string) {
		t.Helper()
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		p := newPorts(t)
		var env []string
		for _, kv := range p.env() {
			if !strings.HasPrefix(kv, envName+"=") {
				env = append(env, kv)
			}
		}
		env = cleanEnv(append(env, envName+"="+taken.Addr().String(), "ROOST_NODE__DATA_DIR="+data)...)
		r := runBin(t, roostBin, dir, env, 20*time.Second, "start")
		if r.Code <= 0 {
			t.Fatalf("start with %s taken: want a non-zero exit, got %s", key, r)
		}
		if r.Elapsed > 5*time.Second {
			t.Errorf("took %s to fail, want at once", r.Elapsed)
		}
		mustContain(t, "error", r.Stderr, fmt.Sprintf("roost: %s %s: address already in use", key, taken.Addr()), envName)
		if strings.Contains(r.Stderr, "level=") {
			t.Errorf("the node got as far as logging:\n%s", r.Stderr)
		}
		for _, a := range []string{p.MQTT, p.WS, p.API, p.Cluster} {
			if !portClosed(a) {
				t.Errorf("port %s left open after the refused start", a)
			}
		}
	}

	t.Run("fresh data dir", func(t *testing.T) {
		t.Parallel()
		dir := shortTempDir(t)
		data := filepath.Join(dir, "new", "data")
		for _, k := range keys {
			occupied(t, dir, data, k.key, k.env)
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("%s taken: the start created %v in %s", k.key, ents, dir)
			}
		}
	})

	t.Run("existing data dir", func(t *testing.T) {
		t.Parallel()
		n := newNode(t)
		n.Start()
		n.mustCtl("users", "add", "ports-user", "pw")
		if err := n.Stop(); err != nil {
			t.Fatalf("stop: %v\n%s", err, n.Logs())
		}
		before := treeState(t, n.DataDir)
		dir := filepath.Dir(n.DataDir)
		for _, k := range keys {
			occupied(t, dir, n.DataDir, k.key, k.env)
			if after := treeState(t, n.DataDir); after != before {
				t.Fatalf("%s taken: the data dir changed\nbefore:\n%s\nafter:\n%s", k.key, before, after)
			}
		}
		// The ports free again: the same node starts with its data.
		n.Start()
		wantUsers(t, n, "ports-user")
		if err := n.Stop(); err != nil {
			t.Fatalf("stop: %v\n%s", err, n.Logs())
		}
	})

	t.Run("bad certificate", func(t *testing.T) {
		t.Parallel()
		dir := shortTempDir(t)
		data := filepath.Join(dir, "data")
		p := newPorts(t)
		env := cleanEnv(append(p.env(), "ROOST_NODE__DATA_DIR="+data,
			"ROOST_LISTENERS__SSL__DEFAULT__BIND=127.0.0.1:"+fmt.Sprint(freePort(t)),
			"ROOST_LISTENERS__SSL__DEFAULT__CERTFILE="+filepath.Join(dir, "none.pem"),
			"ROOST_LISTENERS__SSL__DEFAULT__KEYFILE="+filepath.Join(dir, "none.key"))...)
		r := runBin(t, roostBin, dir, env, 20*time.Second, "start")
		if r.Code <= 0 {
			t.Fatalf("start with a missing certificate: want a non-zero exit, got %s", r)
		}
		mustContain(t, "error", r.Stderr, "ssl:default", "none.pem")
		if _, err := os.Lstat(data); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("data dir %s exists after a refused start (%v)", data, err)
		}
	})
}

// treeState describes every entry under root: path, mode, size,
// modification time and content hash.
func treeState(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sum := ""
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum = fmt.Sprintf("%x", sha256.Sum256(data))[:16]
		}
		fmt.Fprintf(&b, "%s %v %d %s %s\n", strings.TrimPrefix(path, root), fi.Mode(), fi.Size(), fi.ModTime().Format(time.RFC3339Nano), sum)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
