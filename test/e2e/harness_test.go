// Package e2e drives real processes of the real roost binary: built once
// per test run, started on free loopback ports with temp data dirs, and
// exercised with real MQTT clients and the real CLI.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// roostBin is the binary under test, built by TestMain.
var roostBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "roost-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	roostBin = filepath.Join(dir, "roost")
	build := exec.Command("go", "build", "-o", roostBin, "../../cmd/roost")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build roost:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// handedOut are the ports freePort returned in this test process: the
// kernel may offer a just-released port again, and two listeners of one
// node (or two nodes) must not get the same one.
var handedOut sync.Map

// freePort returns a loopback port that was free a moment ago and that it
// has not returned before.
func freePort(t *testing.T) int {
	t.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if _, taken := handedOut.LoadOrStore(port, true); !taken {
			return port
		}
	}
}

// shortTempDir makes a temp dir with a short path: the node's unix socket
// lives in its data dir and socket paths are limited to ~108 bytes.
func shortTempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "re")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// node is one roost process under test.
type node struct {
	t       *testing.T
	DataDir string
	MQTT    string // host:port of the TCP listener
	WS      string
	API     string
	Cluster string
	Env     []string // extra env for start and ctl
	Args    []string // extra args for start

	mu   sync.Mutex
	cmd  *exec.Cmd
	logs *bytes.Buffer
	done chan error
}

// newNode prepares (does not start) a node with fresh ports and data dir.
func newNode(t *testing.T) *node {
	t.Helper()
	return &node{t: t, DataDir: filepath.Join(shortTempDir(t), "data"),
		MQTT:    fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		WS:      fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		API:     fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		Cluster: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
	}
}

// env is what the node's processes run with: ports and data dir by env
// vars, the way an operator's container would set them.
func (n *node) env() []string {
	env := append(os.Environ(),
		"ROOST_NODE__DATA_DIR="+n.DataDir,
		"ROOST_LISTENERS__TCP__DEFAULT__BIND="+n.MQTT,
		"ROOST_LISTENERS__WS__DEFAULT__BIND="+n.WS,
		"ROOST_API__BIND="+n.API,
		"ROOST_CLUSTER__BIND="+n.Cluster,
	)
	return append(env, n.Env...)
}

// Start runs `roost start` and waits until the node answers `ctl status`.
func (n *node) Start() {
	n.t.Helper()
	if err := n.StartNoWait(); err != nil {
		n.t.Fatal(err)
	}
	n.WaitReady()
}

// StartNoWait starts the process and returns at once.
func (n *node) StartNoWait() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	args := append([]string{"start"}, n.Args...)
	cmd := exec.Command(roostBin, args...)
	cmd.Env = n.env()
	n.logs = &bytes.Buffer{}
	cmd.Stdout = &syncWriter{w: n.logs, mu: &n.mu}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return err
	}
	n.cmd = cmd
	done := make(chan error, 1)
	n.done = done
	go func() { done <- cmd.Wait() }()
	n.t.Cleanup(func() { n.Kill() })
	return nil
}

type syncWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// Logs returns what the process printed so far.
func (n *node) Logs() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.logs == nil {
		return ""
	}
	return n.logs.String()
}

// WaitReady polls until the MQTT port accepts and `ctl status` answers.
func (n *node) WaitReady() {
	n.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-n.done:
			n.done <- err
			n.t.Fatalf("roost exited before ready: %v\n%s", err, n.Logs())
		default:
		}
		if c, err := net.DialTimeout("tcp", n.MQTT, 200*time.Millisecond); err == nil {
			c.Close()
			if _, _, err := n.ctl("status"); err == nil {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.t.Fatalf("roost not ready after 30s\n%s", n.Logs())
}

// Stop sends SIGTERM and waits for a clean exit, returning the exit error.
func (n *node) Stop() error {
	n.t.Helper()
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		n.mu.Lock()
		n.cmd = nil
		n.mu.Unlock()
		return err
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		n.t.Fatalf("roost did not stop within 30s of SIGTERM\n%s", n.Logs())
		return nil
	}
}

// Kill sends SIGKILL (kill -9) and waits for the process to go.
func (n *node) Kill() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// ctl runs `roost ctl ARGS...` against this node's data dir.
func (n *node) ctl(args ...string) (stdout, stderr string, err error) {
	return n.run(append([]string{"ctl"}, args...)...)
}

// run runs the roost binary with the node's environment.
func (n *node) run(args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, roostBin, args...)
	cmd.Env = n.env()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// mustCtl runs a ctl command and fails the test if it fails.
func (n *node) mustCtl(args ...string) string {
	n.t.Helper()
	out, errOut, err := n.ctl(args...)
	if err != nil {
		n.t.Fatalf("roost ctl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}
