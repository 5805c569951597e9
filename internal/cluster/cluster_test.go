package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/rpc"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/roostmq/roost/internal/store"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func fixedID(id string) func() string { return func() string { return id } }

func TestHandshakeCookie(t *testing.T) {
	a, err := Listen(TransportOptions{Bind: "127.0.0.1:0", Cookie: "secret-cookie-1234", ClusterID: fixedID("c1"), Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	got := make(chan string, 1)
	a.Handle(StreamRPC, func(c net.Conn) {
		buf := make([]byte, 5)
		io.ReadFull(c, buf)
		got <- string(buf)
		c.Close()
	})
	good, _ := Listen(TransportOptions{Bind: "127.0.0.1:0", Cookie: "secret-cookie-1234", ClusterID: fixedID("c1"), Logger: quietLog()})
	defer good.Close()
	bad, _ := Listen(TransportOptions{Bind: "127.0.0.1:0", Cookie: "wrong-cookie-5678", ClusterID: fixedID("c1"), Logger: quietLog()})
	defer bad.Close()
	ctx := context.Background()

	c, err := good.Dial(ctx, a.Addr().String(), StreamRPC)
	if err != nil {
		t.Fatalf("good cookie refused: %v", err)
	}
	c.Write([]byte("hello"))
	if s := <-got; s != "hello" {
		t.Fatalf("got %q", s)
	}
	c.Close()

	if _, err := bad.Dial(ctx, a.Addr().String(), StreamRPC); err == nil {
		t.Fatal("wrong cookie accepted")
	}
	// A raw connection that never authenticates gets nothing.
	raw, err := net.Dial("tcp", a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	raw.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	raw.SetReadDeadline(time.Now().Add(6 * time.Second))
	if n, _ := raw.Read(make([]byte, 100)); n != 0 {
		t.Fatalf("unauthenticated peer got %d bytes", n)
	}
	raw.Close()
}

type testNode struct {
	name      string
	tr        *Transport
	st        *store.Store
	cl        *Cluster
	mu        sync.Mutex
	clusterID string
}

func (n *testNode) getClusterID() string { n.mu.Lock(); defer n.mu.Unlock(); return n.clusterID }

func (n *testNode) setClusterID(id string) { n.mu.Lock(); n.clusterID = id; n.mu.Unlock() }

func startNode(t *testing.T, name string, dir string, bind string) *testNode {
	t.Helper()
	return startNodeWithID(t, name, dir, bind, "cid-"+name)
}

// startNodeWithID starts a one-voter cluster with the given cluster id.
func startNodeWithID(t *testing.T, name, dir, bind, clusterID string) *testNode {
	t.Helper()
	n := &testNode{name: name, clusterID: clusterID}
	tr, err := Listen(TransportOptions{Bind: bind, Cookie: "test-cookie-0123456789", ClusterID: n.getClusterID, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	n.tr = tr
	n.cl = New(Options{Transport: tr, NodeID: "id-" + name, NodeName: name, Version: "test",
		ClusterID:    n.getClusterID,
		SetClusterID: func(id string) error { n.setClusterID(id); return nil },
		IgnoredAdmin: "admin", Logger: quietLog()})
	st, err := store.Open(store.Options{Dir: dir, NodeID: "id-" + name, Advertise: tr.Advertise(),
		Transport: tr.RaftTransport(quietLog()), Bootstrap: true, Forward: n.cl.ForwardApply, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	n.st = st
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	n.cl.Start(context.Background(), st)
	return n
}

func (n *testNode) close() {
	n.cl.Close()
	n.st.Close()
	n.tr.Close()
}

func putUser(t *testing.T, st *store.Store, id string) error {
	op, err := store.Put(store.TableUsers, store.UserKey("username", id), store.User{V: 1, Kind: "username", ID: id})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = st.Apply(ctx, op)
	return err
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func digestOf(st *store.Store) string {
	_, d, _ := st.Digest()
	return fmt.Sprint(d)
}

func TestJoinForwardLeave(t *testing.T) {
	nodes := make([]*testNode, 3)
	for i := range nodes {
		nodes[i] = startNode(t, fmt.Sprintf("n%d", i+1), filepath.Join(t.TempDir(), "d"), "127.0.0.1:0")
		defer nodes[i].close()
	}
	a := nodes[0]
	if err := putUser(t, a.st, "before-join"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// A node holding data must not join (it would lose it).
	if err := a.cl.Join(ctx, nodes[1].tr.Advertise()); err == nil {
		t.Fatal("a node with data joined another cluster")
	}
	for _, n := range nodes[1:] {
		if err := n.cl.Join(ctx, a.tr.Advertise()); err != nil {
			t.Fatalf("%s join: %v", n.name, err)
		}
		if id := n.getClusterID(); id != "cid-n1" {
			t.Fatalf("%s cluster id %q after join", n.name, id)
		}
	}
	// Writes on followers are forwarded to the leader and reach everyone.
	for i, n := range nodes {
		if err := putUser(t, n.st, fmt.Sprintf("u%d", i)); err != nil {
			t.Fatalf("write on %s: %v", n.name, err)
		}
	}
	waitFor(t, "digests to converge", func() bool {
		d := digestOf(nodes[0].st)
		return d == digestOf(nodes[1].st) && d == digestOf(nodes[2].st)
	})
	var count int
	nodes[2].st.View(func(tx *store.Tx) error { count = tx.Count(store.TableUsers); return nil })
	if count != 4 {
		t.Fatalf("users on n3: %d want 4", count)
	}
	st := a.cl.Status(ctx)
	if len(st) != 3 {
		t.Fatalf("status: %+v", st)
	}
	leaders := 0
	for _, m := range st {
		if !m.Healthy || m.Name == "" {
			t.Fatalf("member %+v", m)
		}
		if m.Role == "leader" {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("leaders: %d (%+v)", leaders, st)
	}

	// Leave: n3 goes back to an empty single-node cluster.
	if err := nodes[2].cl.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n1 to see 2 voters", func() bool { return len(a.cl.voters()) == 2 })
	nodes[2].st.View(func(tx *store.Tx) error { count = tx.Count(store.TableUsers); return nil })
	if count != 0 {
		t.Fatalf("left node kept %d users", count)
	}
	if err := putUser(t, nodes[2].st, "standalone"); err != nil {
		t.Fatalf("left node cannot write on its own: %v", err)
	}
}

func TestWrongCookieCannotJoin(t *testing.T) {
	a := startNode(t, "a", filepath.Join(t.TempDir(), "d"), "127.0.0.1:0")
	defer a.close()
	tr, _ := Listen(TransportOptions{Bind: "127.0.0.1:0", Cookie: "not-the-cookie-xxxx", ClusterID: fixedID("cid-a"), Logger: quietLog()})
	defer tr.Close()
	p := &rpcClients{t: tr, m: map[string]*rpc.Client{}}
	var info NodeInfo
	err := p.call(context.Background(), a.tr.Advertise(), "Info", struct{}{}, &info)
	if err == nil || !errors.Is(err, ErrBadCookie) && info.NodeID != "" {
		t.Fatalf("wrong cookie got info: %+v (%v)", info, err)
	}
	if info.NodeID != "" {
		t.Fatal("wrong cookie read node info")
	}
}
