package e2e

// Helpers for the node_*_test.go tests: processes of a roost binary run
// with an exact environment, working dir and binary path (the harness's
// node always sets the data dir and uses roostBin), `roost paths` as JSON,
// REST calls, and exit-status checks.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cleanEnv is the test process's environment without any ROOST_*
// variable, so that nothing from the machine running the tests leaks
// into the rules under test.
var sigterm = syscall.SIGTERM

func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "ROOST_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// portEnv sets every listener of a node to a fresh loopback port.
type ports struct{ MQTT, WS, API, Cluster string }

func newPorts(t *testing.T) ports {
	t.Helper()
	p := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }
	return ports{MQTT: p(), WS: p(), API: p(), Cluster: p()}
}

func (p ports) env() []string {
	return []string{
		"ROOST_LISTENERS__TCP__DEFAULT__BIND=" + p.MQTT,
		"ROOST_LISTENERS__WS__DEFAULT__BIND=" + p.WS,
		"ROOST_API__BIND=" + p.API,
		"ROOST_CLUSTER__BIND=" + p.Cluster,
	}
}

// cmdResult is one finished run of the binary.
type cmdResult struct {
	Stdout, Stderr string
	Code           int // exit code; -1 when killed by a signal or not run
	Err            error
	Elapsed        time.Duration
}

func (r cmdResult) String() string {
	return fmt.Sprintf("exit %d (%v) after %s\nstdout:\n%s\nstderr:\n%s", r.Code, r.Err, r.Elapsed, r.Stdout, r.Stderr)
}

// runBin runs bin ARGS in dir with exactly env, bounded by timeout.
func runBin(t *testing.T, bin, dir string, env []string, timeout time.Duration, args ...string) cmdResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	if dir != "" {
		cmd.Env = append(append([]string{}, env...), "PWD="+dir)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	start := time.Now()
	err := cmd.Run()
	res := cmdResult{Stdout: o.String(), Stderr: e.String(), Err: err, Elapsed: time.Since(start), Code: exitCode(err)}
	if ctx.Err() != nil {
		t.Fatalf("%s %s did not finish within %s\n%s", bin, strings.Join(args, " "), timeout, res)
	}
	return res
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// pathsOut is `roost paths --output json` (config.Paths).
type pathsOut struct {
	Executable     string   `json:"executable"`
	InstallDir     string   `json:"install_dir"`
	ConfigFile     string   `json:"config_file"`
	ConfigRule     string   `json:"config_rule"`
	ConfigSearched []string `json:"config_searched"`
	DataDir        string   `json:"data_dir"`
	DataDirRule    string   `json:"data_dir_rule"`
	BackupDir      string   `json:"backup_dir"`
	Log            string   `json:"log"`
}

// pathsJSON runs `bin paths --output json [extra...]` in dir with env.
func pathsJSON(t *testing.T, bin, dir string, env []string, extra ...string) pathsOut {
	t.Helper()
	res := runBin(t, bin, dir, env, 20*time.Second, append([]string{"paths", "--output", "json"}, extra...)...)
	if res.Code != 0 {
		t.Fatalf("roost paths failed: %s", res)
	}
	var p pathsOut
	if err := json.Unmarshal([]byte(res.Stdout), &p); err != nil {
		t.Fatalf("roost paths --output json: %v\n%s", err, res)
	}
	return p
}

// realPath resolves symlinks of an existing path (the temp dir may sit
// behind one), so paths compare as the binary sees them.
func realPath(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// installBinary puts a copy of roostBin at dst (a hard link when the file
// system allows: the binary resolves symlinks, not hard links).
func installBinary(t *testing.T, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(roostBin, dst); err == nil {
		return
	}
	src, err := os.Open(roostBin)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, src); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// proc is a `roost start` process with an exact binary, working dir and
// environment; ctl and paths run the same way, so they find the node by
// the same rules.
type proc struct {
	t    *testing.T
	bin  string
	dir  string
	env  []string
	args []string
	mqtt string // host:port to dial for readiness
	// ctlArgs go before every ctl command's own (e.g. --config FILE, so
	// that ctl finds the data dir the way start did).
	ctlArgs []string

	mu   sync.Mutex
	out  bytes.Buffer
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func newProc(t *testing.T, bin, dir string, env []string, mqtt string, args ...string) *proc {
	return &proc{t: t, bin: bin, dir: dir, env: env, mqtt: mqtt, args: args}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (p *proc) start() {
	p.t.Helper()
	cmd := exec.Command(p.bin, append([]string{"start"}, p.args...)...)
	cmd.Dir = p.dir
	cmd.Env = p.env
	if p.dir != "" {
		cmd.Env = append(append([]string{}, p.env...), "PWD="+p.dir)
	}
	w := lockedWriter{mu: &p.mu, b: &p.out}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.cmd = cmd
	p.done = make(chan struct{})
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	p.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
}

func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ctl runs `roost ctl ARGS` with the process's binary, dir and env.
func (p *proc) ctl(args ...string) cmdResult {
	p.t.Helper()
	full := append(append([]string{"ctl"}, p.ctlArgs...), args...)
	return runBin(p.t, p.bin, p.dir, p.env, 30*time.Second, full...)
}

// waitReady polls until the MQTT port accepts and `ctl status` answers.
func (p *proc) waitReady() {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if p.exited() {
			p.t.Fatalf("roost exited before ready: %v\n%s", p.err, p.logs())
		}
		if c, err := net.DialTimeout("tcp", p.mqtt, 200*time.Millisecond); err == nil {
			c.Close()
			if r := p.ctl("status"); r.Code == 0 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("roost not ready after 30s\n%s", p.logs())
}

// signal sends sig and waits for the exit; it returns the exit code.
func (p *proc) signal(sig os.Signal) int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("roost did not stop within 30s of %v\n%s", sig, p.logs())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return exitCode(p.err)
}

// signalNode stops a harness node with sig (Stop always uses SIGTERM)
// and returns the exit error, as Stop does.
func signalNode(n *node, sig os.Signal) error {
	n.t.Helper()
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		n.t.Fatal("node not running")
	}
	if err := cmd.Process.Signal(sig); err != nil {
		n.t.Fatalf("signal %v: %v", sig, err)
	}
	select {
	case err := <-done:
		n.mu.Lock()
		n.cmd = nil
		n.mu.Unlock()
		return err
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		n.t.Fatalf("roost did not stop within 30s of %v\n%s", sig, n.Logs())
		return nil
	}
}

// identity is <data_dir>/node.json.
type identity struct {
	FormatVersion int    `json:"format_version"`
	Name          string `json:"name"`
	NodeID        string `json:"node_id"`
	ClusterID     string `json:"cluster_id"`
	CreatedAt     string `json:"created_at"`
}

func readIdentity(t *testing.T, dataDir string) (identity, []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "node.json"))
	if err != nil {
		t.Fatalf("node.json: %v", err)
	}
	var id identity
	if err := json.Unmarshal(b, &id); err != nil {
		t.Fatalf("node.json is not JSON: %v\n%s", err, b)
	}
	return id, b
}

// ctlStatus is the part of `roost ctl status --output json` the tests read.
type ctlStatus struct {
	Node      string `json:"node"`
	NodeID    string `json:"node_id"`
	ClusterID string `json:"cluster_id"`
	Version   string `json:"version"`
	Raft      struct {
		State  string `json:"state"`
		Voters int    `json:"voters"`
	} `json:"raft"`
	Listeners []struct {
		Name    string `json:"name"`
		Type    string `json:"type"`
		Bind    string `json:"bind"`
		Running bool   `json:"running"`
	} `json:"listeners"`
}

func parseStatus(t *testing.T, out string) ctlStatus {
	t.Helper()
	var s ctlStatus
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, out)
	}
	return s
}

func (s ctlStatus) bind(name string) string {
	for _, l := range s.Listeners {
		if l.Name == name {
			return l.Bind
		}
	}
	return ""
}

// apiCall is one REST request to a node's api.bind.
type apiCall struct {
	Method, Path string
	Body         string // sent as application/json when not empty
	BasicUser    string // with BasicPass: HTTP basic auth
	BasicPass    string
	Bearer       string
}

type apiResp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r apiResp) String() string { return fmt.Sprintf("HTTP %d %s", r.Status, r.Body) }

var apiClient = &http.Client{Timeout: 20 * time.Second}

func doAPI(t *testing.T, addr string, c apiCall) apiResp {
	t.Helper()
	var body io.Reader
	if c.Body != "" {
		body = strings.NewReader(c.Body)
	}
	req, err := http.NewRequest(c.Method, "http://"+addr+c.Path, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.Body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.BasicUser != "" {
		req.SetBasicAuth(c.BasicUser, c.BasicPass)
	}
	if c.Bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.Bearer)
	}
	res, err := apiClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", c.Method, c.Path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return apiResp{Status: res.StatusCode, Header: res.Header, Body: b}
}

// wantAPIError checks an error answer: the status, a JSON body of exactly
// {"code","message"} with the code, and a message containing each of
// msgParts.
func wantAPIError(t *testing.T, what string, r apiResp, status int, code string, msgParts ...string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: got %s, want HTTP %d", what, r, status)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	var e map[string]any
	if err := json.Unmarshal(r.Body, &e); err != nil {
		t.Errorf("%s: error body is not JSON: %v: %s", what, err, r.Body)
		return
	}
	if len(e) != 2 {
		t.Errorf("%s: error body has fields %v, want exactly code and message", what, e)
	}
	gotCode, _ := e["code"].(string)
	msg, _ := e["message"].(string)
	if gotCode != code {
		t.Errorf("%s: code %q, want %q (%s)", what, gotCode, code, r.Body)
	}
	if msg == "" {
		t.Errorf("%s: empty message: %s", what, r.Body)
	}
	for _, p := range msgParts {
		if !strings.Contains(msg, p) {
			t.Errorf("%s: message %q does not contain %q", what, msg, p)
		}
	}
}

// waitGone polls until path no longer exists.
func waitGone(t *testing.T, path string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still exists after %s", path, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// portClosed reports whether nothing accepts on addr.
func portClosed(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err != nil {
		return errors.Is(err, syscall.ECONNREFUSED)
	}
	c.Close()
	return false
}

func mustContain(t *testing.T, what, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("%s does not contain %q:\n%s", what, p, s)
		}
	}
}
