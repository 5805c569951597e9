package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/rpc"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log sink the transport's goroutines may write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestHandshakeClusterID: with the same cookie, raft and forwarding
// streams between nodes of different clusters are refused on both sides
// (and logged once, naming both ids), control calls are not; the id is
// read on every handshake, so a node that adopts the other's id connects.
func TestHandshakeClusterID(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	var mu sync.Mutex
	bID := "cluster-b"
	a, err := Listen(TransportOptions{Bind: "127.0.0.1:0", Cookie: "secret-cookie-1234", ClusterID: fixedID("cluster-a"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Listen(TransportOptions{Bind: "127.0.0.1:0", Cookie: "secret-cookie-1234",
		ClusterID: func() string { mu.Lock(); defer mu.Unlock(); return bID }, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	served := make(chan byte, 10)
	for _, k := range []byte{StreamRPC, StreamForward} {
		a.Handle(k, func(c net.Conn) { served <- k; c.Close() })
	}
	go func() {
		rs := &raftStream{t: a}
		for {
			c, err := rs.Accept()
			if err != nil {
				return
			}
			served <- StreamRaft
			c.Close()
		}
	}()
	ctx := context.Background()

	for _, kind := range []byte{StreamRaft, StreamForward, StreamRaft} {
		_, err := b.Dial(ctx, a.Addr().String(), kind)
		var me *ClusterMismatchError
		if !errors.As(err, &me) {
			t.Fatalf("%s stream between clusters: %v, want a cluster mismatch", kindName(kind), err)
		}
		for _, want := range []string{"cluster-a", "cluster-b", "--force-new-cluster", "node.cookie"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("mismatch error does not name %q: %v", want, err)
			}
		}
	}
	c, err := b.Dial(ctx, a.Addr().String(), StreamRPC)
	if err != nil {
		t.Fatalf("control stream between clusters refused: %v", err)
	}
	c.Close()
	if k := <-served; k != StreamRPC {
		t.Fatalf("acceptor served a %s stream from another cluster", kindName(k))
	}
	// The acceptor logs the mismatch, naming both ids and the dialer's
	// address, once for the repeated attempts.
	waitFor(t, "the acceptor to log the mismatch", func() bool { return strings.Contains(logs.String(), "another cluster") })
	time.Sleep(100 * time.Millisecond)
	out := logs.String()
	if n := strings.Count(out, "peer is in another cluster"); n != 1 {
		t.Errorf("mismatch logged %d times, want once:\n%s", n, out)
	}
	for _, want := range []string{"cluster-a", "cluster-b", b.Advertise()} {
		if !strings.Contains(out, want) {
			t.Errorf("mismatch log does not name %q:\n%s", want, out)
		}
	}

	// b joins cluster-a: the next handshake carries the new id.
	mu.Lock()
	bID = "cluster-a"
	mu.Unlock()
	for _, kind := range []byte{StreamRaft, StreamForward} {
		c, err := b.Dial(ctx, a.Addr().String(), kind)
		if err != nil {
			t.Fatalf("%s stream within one cluster: %v", kindName(kind), err)
		}
		c.Close()
		if k := <-served; k != kind {
			t.Fatalf("served %s, want %s", kindName(k), kindName(kind))
		}
	}
}

// TestOtherClusterAtMemberAddress: a member that turns up in another
// cluster (as after `roost restore --force-new-cluster` while the old
// cluster runs) stays the leader of its own cluster, with its own data,
// and the old cluster lists it as unhealthy, naming both cluster ids.
func TestOtherClusterAtMemberAddress(t *testing.T) {
	nodes := make([]*testNode, 3)
	for i := range nodes {
		nodes[i] = startNode(t, fmt.Sprintf("n%d", i+1), filepath.Join(t.TempDir(), "d"), "127.0.0.1:0")
		defer nodes[i].close()
	}
	ctx := context.Background()
	for _, n := range nodes[1:] {
		if err := n.cl.Join(ctx, nodes[0].tr.Advertise()); err != nil {
			t.Fatalf("%s join: %v", n.name, err)
		}
	}
	waitFor(t, "3 voters everywhere", func() bool {
		for _, n := range nodes {
			if len(n.cl.voters()) != 3 {
				return false
			}
		}
		return true
	})
	// n3 is restarted as a new one-voter cluster at the same address and
	// node id (what --force-new-cluster does on disk).
	n3 := nodes[2]
	addr := n3.tr.Advertise()
	dir := filepath.Join(t.TempDir(), "d")
	n3.close()
	waitFor(t, "the address to be free again", func() bool {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		ln.Close()
		return true
	})
	restarted := startNodeWithID(t, "n3", dir, addr, "cid-restored")
	nodes[2] = restarted
	if err := putUser(t, restarted.st, "new-only"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // many heartbeats of the old leader
	if !restarted.st.IsLeader() || len(restarted.cl.voters()) != 1 || restarted.getClusterID() != "cid-restored" {
		t.Fatalf("restored node: leader %v, %d voters, cluster %s: taken over by its old cluster",
			restarted.st.IsLeader(), len(restarted.cl.voters()), restarted.getClusterID())
	}
	for _, m := range nodes[0].cl.Status(ctx) {
		if m.NodeID != "id-n3" {
			continue
		}
		if m.Healthy {
			t.Fatalf("the old cluster counts the restored node as healthy: %+v", m)
		}
		if !strings.Contains(m.Error, "cid-restored") || !strings.Contains(m.Error, "cid-n1") {
			t.Errorf("status error does not name both cluster ids: %s", m.Error)
		}
	}
	// Member-only control calls from the other cluster are refused.
	var reply ApplyReply
	err := restarted.cl.clients.call(ctx, nodes[0].tr.Advertise(), "Apply", ApplyArgs{ClusterID: restarted.getClusterID()}, &reply)
	if err == nil || !strings.Contains(err.Error(), "cid-restored") {
		t.Errorf("forwarded write from another cluster: %v", err)
	}
}

// TestJoinWrongClusterID: the leader refuses a join for another cluster
// id than its own, naming both.
func TestJoinWrongClusterID(t *testing.T) {
	a := startNode(t, "a", filepath.Join(t.TempDir(), "d"), "127.0.0.1:0")
	defer a.close()
	tr, _ := Listen(TransportOptions{Bind: "127.0.0.1:0", Cookie: "test-cookie-0123456789", ClusterID: fixedID("cid-x"), Logger: quietLog()})
	defer tr.Close()
	p := &rpcClients{t: tr, m: map[string]*rpc.Client{}}
	defer p.closeAll()
	var reply JoinReply
	err := p.call(context.Background(), a.tr.Advertise(), "Join", JoinArgs{NodeID: "id-x", Name: "x", Address: tr.Advertise(), ClusterID: "cid-stale"}, &reply)
	if err == nil || !strings.Contains(err.Error(), "cid-stale") || !strings.Contains(err.Error(), "cid-a") {
		t.Fatalf("join with a stale cluster id: %v", err)
	}
	if n := len(a.cl.voters()); n != 1 {
		t.Fatalf("%d voters after a refused join", n)
	}
}
