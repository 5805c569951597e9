package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"strings"
	"sync"
	"time"

	"github.com/roostmq/roost/internal/store"
)

// rpcName is the net/rpc service name of the control calls.
const rpcName = "Roost"

// ApplyArgs carries forwarded writes to the leader.
type ApplyArgs struct {
	ClusterID string // the caller's: a node of another cluster is refused
	Ops       []store.Op
}

// ApplyReply is the leader's answer to a forwarded write.
type ApplyReply struct {
	Index uint64
	Keys  []string
}

// JoinArgs asks the leader to add a node as a voter.
type JoinArgs struct {
	NodeID  string
	Name    string
	Address string
	// ClusterID is the id of the cluster the node asks to join, which it
	// has already taken as its own: the leader's raft traffic reaches it
	// as soon as it is a voter, and the transport refuses raft streams
	// between nodes whose cluster ids differ.
	ClusterID string
}

// JoinReply tells a joining node which cluster it is now in.
type JoinReply struct {
	ClusterID string
	Leader    string
}

// RemoveArgs asks the leader to remove a node.
type RemoveArgs struct {
	ClusterID string // the caller's: a node of another cluster is refused
	NodeID    string
}

// NodeInfo is what a node says about itself.
type NodeInfo struct {
	Name         string
	NodeID       string
	ClusterID    string
	Version      string
	Address      string
	RaftState    string
	Leader       string
	Voters       int
	AppliedIndex uint64
	LastContact  time.Duration // since this node last heard from the leader; 0 on the leader
	Empty        bool          // holds no replicated data of its own
}

// errNotLeaderPrefix marks a net/rpc error string (errors cross the wire
// as text) that means "ask the leader".
const errNotLeaderPrefix = "not leader"

// rpcService is the server side of the control calls.
type rpcService struct{ c *Cluster }

// Apply commits forwarded ops if this node leads.
func (s *rpcService) Apply(args ApplyArgs, reply *ApplyReply) error {
	if err := s.c.sameCluster("forwarded write", args.ClusterID); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.c.st.ApplyHere(ctx, args.Ops...)
	if errors.Is(err, store.ErrNotLeader) {
		return errors.New(errNotLeaderPrefix)
	}
	if err != nil {
		return err
	}
	reply.Index, reply.Keys = res.Index, res.Keys
	return nil
}

// Join adds a node as a voter (leader only).
func (s *rpcService) Join(args JoinArgs, reply *JoinReply) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.c.addVoter(ctx, args, reply)
}

// Remove removes a node from the cluster (leader only).
func (s *rpcService) Remove(args RemoveArgs, reply *struct{}) error {
	if err := s.c.sameCluster("remove", args.ClusterID); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.c.removeServer(ctx, args.NodeID)
}

// Info describes this node.
func (s *rpcService) Info(_ struct{}, reply *NodeInfo) error {
	*reply = s.c.localInfo()
	return nil
}

// sameCluster refuses a control call that only a member may make when the
// caller says it is in another cluster.
func (c *Cluster) sameCluster(what, callerCluster string) error {
	if local := c.opts.ClusterID(); callerCluster != local {
		return fmt.Errorf("%s refused: the calling node is in cluster %s, this node in cluster %s "+
			"(a node restored with `roost restore --force-new-cluster` while its old cluster still runs, "+
			"or a node of another cluster with the same node.cookie?)", what, quoteID(callerCluster), quoteID(local))
	}
	return nil
}

// rpcClients keeps one multiplexed net/rpc connection per peer.
type rpcClients struct {
	t  *Transport
	mu sync.Mutex
	m  map[string]*rpc.Client
}

func (p *rpcClients) get(ctx context.Context, addr string) (*rpc.Client, error) {
	p.mu.Lock()
	if c, ok := p.m[addr]; ok {
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	conn, err := p.t.Dial(ctx, addr, StreamRPC)
	if err != nil {
		return nil, err
	}
	c := rpc.NewClient(conn)
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.m[addr]; ok {
		c.Close()
		return old, nil
	}
	p.m[addr] = c
	return c, nil
}

func (p *rpcClients) drop(addr string, c *rpc.Client) {
	p.mu.Lock()
	if p.m[addr] == c {
		delete(p.m, addr)
	}
	p.mu.Unlock()
	c.Close()
}

// call makes one control call to addr, bounded by ctx.
func (p *rpcClients) call(ctx context.Context, addr, method string, args, reply any) error {
	c, err := p.get(ctx, addr)
	if err != nil {
		return err
	}
	call := c.Go(rpcName+"."+method, args, reply, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
		if errors.Is(call.Error, rpc.ErrShutdown) {
			p.drop(addr, c)
			return fmt.Errorf("cluster: %s on %s: connection lost", method, addr)
		}
		if call.Error != nil {
			if strings.HasPrefix(call.Error.Error(), errNotLeaderPrefix) {
				return store.ErrNotLeader
			}
			return fmt.Errorf("cluster: %s on %s: %w", method, addr, call.Error)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cluster: %s on %s: %w", method, addr, ctx.Err())
	}
}

func (p *rpcClients) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, c := range p.m {
		c.Close()
		delete(p.m, a)
	}
}

// serveRPC serves control calls on one authenticated connection.
func (c *Cluster) serveRPC(conn net.Conn) {
	c.rpcServer.ServeConn(conn)
}
