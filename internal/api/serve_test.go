package api

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roostmq/roost/internal/broker"
)

func TestMatchFilter(t *testing.T) {
	t.Parallel()
	matches := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"#", "a/b", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"+/+", "/x", true},
		{"+", "/x", false},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
		{"a/b", "a/b/", false},
		{"a/b/+", "a/b/", true},
		{"a/b", "a", false},
	}
	for _, m := range matches {
		if got := broker.MatchTopic(m.filter, m.topic); got != m.want {
			t.Errorf("MatchTopic(%q, %q) = %v, want %v", m.filter, m.topic, got, m.want)
		}
	}
}

func TestListenUnixAndServe(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "r")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "roost.sock")

	// A stale socket (its server gone) is replaced.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}

	e := newEnv(t)
	ln, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, err %v", fi.Mode().Perm(), err)
	}
	if _, err := ListenUnix(sock); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second listener on a live socket: %v", err)
	}
	if _, err := ListenUnix("/" + strings.Repeat("d", 120) + "/roost.sock"); err == nil || !strings.Contains(err.Error(), "shorter data dir") {
		t.Fatalf("long path: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, ln, e.srv.LocalHandler()) }()
	c := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	res, err := c.Get("http://roost/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := c.Get("http://roost/api/v1/status"); err == nil {
		t.Fatal("still serving after shutdown")
	}
}
