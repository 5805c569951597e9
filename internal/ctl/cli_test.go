package ctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/roostmq/roost/internal/api"
	"github.com/roostmq/roost/internal/broker/authn"
	"github.com/roostmq/roost/internal/ctl"
	"github.com/roostmq/roost/internal/store"
)

// node is a store and an API server on a unix socket in a short temp dir
// (unix socket paths are limited to ~107 bytes), like a running node.
type node struct {
	t      *testing.T
	dir    string
	st     *store.Store
	srv    *api.Server
	remote *httptest.Server
}

func startNode(t *testing.T) *node {
	t.Helper()
	dir, err := os.MkdirTemp("", "r")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(store.Options{Dir: dir, NodeID: "n1", Advertise: "127.0.0.1:4370", Bootstrap: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	srv := api.New(api.Options{Store: st, Logger: log, HashParams: authn.HashParams{Algorithm: "sha256"},
		Status: func() api.Status {
			return api.Status{Node: "roost@test", NodeID: "n1", ClusterID: "c1", Version: "test", StartedAt: time.Now().Add(-time.Minute),
				Listeners: []api.Listener{{Name: "tcp:default", Type: "tcp", Bind: "127.0.0.1:1883", Running: true}}}
		}})
	ln, err := api.ListenUnix(filepath.Join(dir, ctl.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln, srv.LocalHandler()) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	remote := httptest.NewServer(srv.Handler())
	t.Cleanup(remote.Close)
	return &node{t: t, dir: dir, st: st, srv: srv, remote: remote}
}

// ctl runs `roost ctl args…` against the node and returns its output.
func (n *node) ctl(args ...string) (string, error) {
	n.t.Helper()
	return runCtl(n.dir, args...)
}

func runCtl(dir string, args ...string) (string, error) {
	cmd := ctl.NewCommand(func() (string, error) { return dir, nil })
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), err
}

func (n *node) ok(args ...string) string {
	n.t.Helper()
	out, err := n.ctl(args...)
	if err != nil {
		n.t.Fatalf("roost ctl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (n *node) fails(want string, args ...string) {
	n.t.Helper()
	out, err := n.ctl(args...)
	if err == nil {
		n.t.Fatalf("roost ctl %s succeeded: %s", strings.Join(args, " "), out)
	}
	if !strings.Contains(err.Error(), want) {
		n.t.Fatalf("roost ctl %s: error %q, want it to contain %q", strings.Join(args, " "), err, want)
	}
}

func (n *node) jsonOut(v any, args ...string) {
	n.t.Helper()
	out := n.ok(append(args, "--output", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		n.t.Fatalf("roost ctl %s: not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// hasRow checks that some line of a table holds these cells, separated
// by the table's padding.
func hasRow(t *testing.T, table string, cells ...string) {
	t.Helper()
	parts := make([]string, len(cells))
	for i, c := range cells {
		parts[i] = regexp.QuoteMeta(c)
	}
	re := regexp.MustCompile(`(?m)^` + strings.Join(parts, `\s{2,}`) + `(\s|$)`)
	if !re.MatchString(table) {
		t.Fatalf("no row %q in:\n%s", cells, table)
	}
}

func TestCtlUsers(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	out := n.ok("users", "add", "alice", "pw1", "--superuser")
	hasRow(t, out, "KIND", "USER", "SUPERUSER", "ALGORITHM", "CREATED")
	hasRow(t, out, "username", "alice", "yes", "sha256")
	n.ok("users", "add", "dev-1", "pw2", "--clientid")
	n.fails("already exists", "users", "add", "alice", "x")
	n.fails("missing argument PASSWORD", "users", "add", "alice")
	n.fails("none of the others can be", "users", "add", "bob", "x", "--clientid", "--username")

	out = n.ok("users", "list")
	hasRow(t, out, "clientid", "dev-1", "no", "sha256")
	hasRow(t, out, "username", "alice", "yes", "sha256")
	var users []ctl.User
	n.jsonOut(&users, "users", "list")
	if len(users) != 2 || users[0].UserID != "dev-1" || users[1].Kind != "username" || !users[1].IsSuperuser {
		t.Fatalf("users list json: %+v", users)
	}

	out = n.ok("users", "passwd", "alice", "pw-new")
	if !strings.Contains(out, "changed the password of username alice") {
		t.Fatalf("passwd: %q", out)
	}
	var rec store.User
	_ = n.st.View(func(tx *store.Tx) (err error) {
		rec, _, err = store.Get[store.User](tx, store.TableUsers, "username:alice")
		return err
	})
	if !authn.Verify(&rec, "pw-new") || !rec.Superuser {
		t.Fatalf("after passwd: %+v", rec)
	}

	n.fails("no user username:dev-1", "users", "del", "dev-1")
	out = n.ok("users", "del", "dev-1", "--clientid")
	if strings.TrimSpace(out) != "deleted user dev-1" {
		t.Fatalf("del: %q", out)
	}
	var res map[string]string
	n.jsonOut(&res, "users", "del", "alice")
	if res["result"] != "ok" {
		t.Fatalf("del json: %v", res)
	}
	n.jsonOut(&users, "users", "list")
	if len(users) != 0 {
		t.Fatalf("left: %+v", users)
	}
	n.fails("--output \"yaml\"", "users", "list", "--output", "yaml")

	// Ids that HTTP path cleaning would change.
	for _, id := range []string{"..", "a/b", "/lead", "sp ace#"} {
		n.ok("users", "add", id, "p")
		n.ok("users", "passwd", id, "q")
		n.ok("users", "del", id)
	}
}

func TestCtlUsersManyPages(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	cl := ctl.NewLocal(filepath.Join(n.dir, ctl.SocketName))
	var in []ctl.UserInput
	for i := range 2500 {
		in = append(in, ctl.UserInput{UserID: "u" + string(rune('a'+i%26)) + strings.Repeat("x", i/26), Password: "p"})
	}
	if _, err := cl.AddUsers(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	var users []ctl.User
	n.jsonOut(&users, "users", "list")
	if len(users) != 2500 {
		t.Fatalf("listed %d users over pages, want 2500", len(users))
	}
}

func TestCtlACL(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	out := n.ok("acl", "add", "--username", "alice", "--topic", "a/#", "--action", "publish", "--permission", "allow")
	hasRow(t, out, "ID", "KIND", "VALUE", "TOPIC", "ACTION", "PERMISSION")
	hasRow(t, out, "1", "username", "alice", "a/#", "publish", "allow")
	n.ok("acl", "add", "--clientid", "c1", "--topic", "eq x/+", "--action", "subscribe", "--permission", "deny")
	var r ctl.ACLRule
	n.jsonOut(&r, "acl", "add", "--all", "--topic", "#", "--action", "all", "--permission", "deny")
	if r.ID != 3 || r.Kind != "all" || r.Value != "" {
		t.Fatalf("acl add json: %+v", r)
	}

	out = n.ok("acl", "list")
	hasRow(t, out, "2", "clientid", "c1", "eq x/+", "subscribe", "deny")
	hasRow(t, out, "3", "all", "-", "#", "all", "deny")
	if strings.Index(out, "alice") > strings.Index(out, "c1") {
		t.Fatalf("rules out of order:\n%s", out)
	}

	n.ok("acl", "del", "2")
	n.fails("no ACL rule 2", "acl", "del", "2")
	n.fails("want a positive integer", "acl", "del", "two")
	var rules []ctl.ACLRule
	n.jsonOut(&rules, "acl", "list")
	if len(rules) != 2 || rules[0].ID != 1 || rules[1].ID != 3 {
		t.Fatalf("after del: %+v", rules)
	}

	n.fails("at least one of the flags in the group [username clientid all] is required",
		"acl", "add", "--topic", "a", "--action", "publish", "--permission", "allow")
	n.fails("none of the others can be", "acl", "add", "--all", "--username", "u", "--topic", "a", "--action", "publish", "--permission", "allow")
	n.fails(`required flag(s) "permission" not set`, "acl", "add", "--all", "--topic", "a", "--action", "publish")
	n.fails(`--action "read"`, "acl", "add", "--all", "--topic", "a", "--action", "read", "--permission", "allow")
	n.fails(`field "topic": topic filter "a/#/b": # must be the last level`, "acl", "add", "--all", "--topic", "a/#/b", "--action", "all", "--permission", "allow")
}

func TestCtlBanned(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	out := n.ok("banned", "add", "--peerhost", "10.1.2.3/8", "--reason", "scanner", "--until", "1h")
	hasRow(t, out, "KIND", "VALUE", "REASON", "BY", "AT", "UNTIL")
	hasRow(t, out, "peerhost", "10.0.0.0/8", "scanner", "local:ctl")
	n.ok("banned", "add", "--clientid", "evil")
	n.ok("banned", "add", "--username", "mallory", "--until", "2099-01-01T00:00:00Z")
	n.fails("already banned", "banned", "add", "--clientid", "evil")
	n.fails(`field "value": not an IP address or CIDR block`, "banned", "add", "--peerhost", "300.1.1.1")
	n.fails(`field "until"`, "banned", "add", "--clientid", "x", "--until", "later")

	out = n.ok("banned", "list")
	hasRow(t, out, "clientid", "evil", "-", "local:ctl")
	if !strings.Contains(out, "never") {
		t.Fatalf("no 'never' for a ban without expiry:\n%s", out)
	}
	var bans []ctl.Ban
	n.jsonOut(&bans, "banned", "list")
	if len(bans) != 3 || bans[1].Kind != "peerhost" || bans[2].Until.Year() != 2099 {
		t.Fatalf("banned list json: %+v", bans)
	}

	n.ok("banned", "del", "peerhost", "10.0.0.0/8")
	n.ok("banned", "del", "clientid", "evil")
	n.fails("no ban clientid:evil", "banned", "del", "clientid", "evil")
	n.fails(`ban kind "ip"`, "banned", "del", "ip", "1.2.3.4")
	n.jsonOut(&bans, "banned", "list")
	if len(bans) != 1 {
		t.Fatalf("after del: %+v", bans)
	}
}

func TestCtlRetained(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	for _, topic := range []string{"a/b", "a/c", "a//b", "x/y"} {
		op, _ := store.Put(store.TableRetained, topic, store.Retained{V: 1, Topic: topic, Payload: []byte("hello"), QoS: 1, From: "pub1", Created: time.Now()})
		if _, err := n.st.Apply(context.Background(), op); err != nil {
			t.Fatal(err)
		}
	}
	out := n.ok("retained", "list", "--topic", "a/+")
	hasRow(t, out, "TOPIC", "QOS", "SIZE", "FROM", "CREATED")
	hasRow(t, out, "a/b", "1", "5", "pub1")
	hasRow(t, out, "a/c", "1", "5", "pub1")
	if strings.Contains(out, "x/y") || strings.Contains(out, "a//b") {
		t.Fatalf("filter a/+ listed too much:\n%s", out)
	}
	var msgs []ctl.RetainedSummary
	n.jsonOut(&msgs, "retained", "list")
	if len(msgs) != 4 {
		t.Fatalf("retained list json: %+v", msgs)
	}
	n.ok("retained", "del", "a//b")
	n.ok("retained", "del", "a/b")
	n.fails(`no retained message on "a/b"`, "retained", "del", "a/b")
	n.fails(`not a valid topic filter`, "retained", "list", "--topic", "a/#/b")
	n.jsonOut(&msgs, "retained", "list")
	if len(msgs) != 2 {
		t.Fatalf("after del: %+v", msgs)
	}
}

func TestCtlStatusMetricsDigest(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	n.ok("users", "add", "u", "p")
	out := n.ok("status")
	hasRow(t, out, "node:", "roost@test")
	hasRow(t, out, "raft state:", "Leader")
	hasRow(t, out, "voters:", "1")
	hasRow(t, out, "tcp:default", "tcp", "127.0.0.1:1883", "yes")
	var st ctl.Status
	n.jsonOut(&st, "status")
	if st.NodeID != "n1" || st.Raft.State != "Leader" || st.UptimeSeconds < 60 {
		t.Fatalf("status json: %+v", st)
	}

	out = n.ok("metrics")
	hasRow(t, out, "retained messages:", "0")
	var m ctl.Metrics
	n.jsonOut(&m, "metrics")

	out = n.ok("data", "digest")
	hasRow(t, out, "TABLE", "COUNT", "SHA256")
	hasRow(t, out, "users", "1")
	var d ctl.Digest
	n.jsonOut(&d, "data", "digest")
	idx, tables, _ := n.st.Digest()
	if d.Index != idx || len(d.Tables) != len(tables) || d.Tables[0].SHA256 != tables[0].SHA256 {
		t.Fatalf("digest %+v, want %d %+v", d, idx, tables)
	}
}

func TestCtlAPIKeysAndRemote(t *testing.T) {
	n := startNode(t) // not parallel: sets ROOST_API_KEY
	out := n.ok("apikeys", "create", "ops", "--desc", "on-call")
	m := regexp.MustCompile(`(?m)^secret:\s+(\S+)$`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "shown only now") {
		t.Fatalf("apikeys create:\n%s", out)
	}
	secret := m[1]
	var k ctl.APIKeyCreated
	n.jsonOut(&k, "apikeys", "create", "ci", "--expires", "720h")
	if k.Secret == "" || k.ExpiresAt.IsZero() {
		t.Fatalf("apikeys create json: %+v", k)
	}
	out = n.ok("apikeys", "list")
	hasRow(t, out, "NAME", "ENABLED", "EXPIRES", "CREATED", "DESC")
	hasRow(t, out, "ci", "yes")
	if strings.Contains(out, secret) || strings.Contains(out, k.Secret) {
		t.Fatalf("list shows a secret:\n%s", out)
	}
	n.fails(`API key "ops" already exists`, "apikeys", "create", "ops")

	// A remote node, by URL with the key.
	remote := func(args ...string) (string, error) {
		return runCtl("/nonexistent", append(args, "--host", n.remote.URL)...)
	}
	out, err := remote("status", "--api-key", "ops:"+secret)
	if err != nil || !strings.Contains(out, "roost@test") {
		t.Fatalf("remote status: %v\n%s", err, out)
	}
	out, err = remote("users", "add", "r", "p", "--api-key", "ops:"+secret)
	if err != nil || !strings.Contains(out, "username") {
		t.Fatalf("remote users add: %v\n%s", err, out)
	}
	if _, err := remote("status", "--api-key", "ops:wrong"); err == nil || !strings.Contains(err.Error(), "invalid API key") {
		t.Fatalf("wrong secret: %v", err)
	}
	if _, err := remote("status"); err == nil || !strings.Contains(err.Error(), "--host needs an API key") {
		t.Fatalf("no key: %v", err)
	}
	t.Setenv(ctl.APIKeyEnv, "ops:"+secret)
	if out, err := remote("status"); err != nil || !strings.Contains(out, "roost@test") {
		t.Fatalf("key from $%s: %v", ctl.APIKeyEnv, err)
	}

	out = n.ok("apikeys", "disable", "ops")
	hasRow(t, out, "ops", "no")
	if _, err := remote("status"); err == nil || !strings.Contains(err.Error(), `API key "ops" is disabled`) {
		t.Fatalf("disabled key: %v", err)
	}
	n.ok("apikeys", "enable", "ops")
	n.ok("apikeys", "del", "ops")
	if _, err := remote("status"); err == nil || !strings.Contains(err.Error(), "invalid API key") {
		t.Fatalf("deleted key: %v", err)
	}
	n.fails(`no API key "ops"`, "apikeys", "del", "ops")

	// A node that is not there.
	if _, err := runCtl("/nonexistent", "status", "--host", "127.0.0.1:1", "--api-key", "a:b"); err == nil || !strings.Contains(err.Error(), "cannot reach the node at http://127.0.0.1:1") {
		t.Fatalf("unreachable remote: %v", err)
	}
	n.fails("--api-key is for a remote node", "status", "--api-key", "a:b")
}

func TestCtlNoLocalNode(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "r")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, ctl.SocketName)
	_, err = runCtl(dir, "status")
	want := "cannot reach the local node: no socket at " + sock + " (is `roost start` running with this data dir?)"
	if err == nil || err.Error() != want {
		t.Fatalf("no socket: %v\nwant: %s", err, want)
	}

	// A socket left behind by a node that died.
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := runCtl(dir, "users", "list"); err == nil || !strings.Contains(err.Error(), "nothing listens on "+sock) {
		t.Fatalf("stale socket: %v", err)
	}

	if _, err := runCtl(dir, "status", "--output", "yaml"); err == nil || !strings.Contains(err.Error(), "want table or json") {
		t.Fatalf("bad output: %v", err)
	}
}

func TestClientNonJSONError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream exploded", http.StatusBadGateway)
	}))
	defer srv.Close()
	cl, err := ctl.NewRemote(srv.URL, "k:s")
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.Status(context.Background())
	var e *ctl.Error
	if err == nil || !errors.As(err, &e) || e.Status != http.StatusBadGateway || err.Error() != "HTTP 502: upstream exploded" {
		t.Fatalf("err = %v", err)
	}
	if _, err := ctl.NewRemote("http://h:1", "nocolon"); err == nil {
		t.Fatal("a key without a secret was accepted")
	}
	for in, want := range map[string]string{"a/b": "a%2Fb", "..": "%2E%2E", ".": "%2E", "a.b": "a.b", "a b#": "a%20b%23"} {
		if got := ctl.PathEscape(in); got != want {
			t.Errorf("PathEscape(%q) = %q, want %q", in, got, want)
		}
	}
}
