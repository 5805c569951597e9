package cluster

import (
	"bufio"
	"context"
	"encoding/gob"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roostmq/roost/internal/broker"
)

// LocalBroker is what message routing needs from this node's broker.
type LocalBroker interface {
	// LocalFilters lists the filters with local subscribers (shared ones
	// as "$share/group/filter").
	LocalFilters() []string
	// DeliverRemote delivers a message published on another node to the
	// local subscribers of matching plain filters and to the listed shared
	// subscriptions; it never forwards or stores it.
	DeliverRemote(msg broker.Message, shared []string)
	// TakeoverLocal disconnects the local client with this id, if any, and
	// returns its session (unless cleanStart), removing it here.
	TakeoverLocal(clientID string, cleanStart bool) (*broker.Session, bool)
}

// Frames on a forward link. Each link is one-way: the dialer sends its
// routes (a full set first, then deltas) and the messages it forwards.
const (
	frameHello   = 1 // From: the dialer's node id
	frameRoutes  = 2 // Filters: the dialer's full route set
	frameAdd     = 3 // Filters[0] gained its first subscriber on the dialer
	frameDel     = 4 // Filters[0] lost its last subscriber
	framePublish = 5 // Msg (and Shared: shared subscriptions the receiver serves)
)

type frame struct {
	Kind    byte
	From    string
	Filters []string
	Msg     *broker.Message
	Shared  []string
}

// linkQueue bounds the frames waiting for one peer; a publisher blocks
// (up to sendTimeout) rather than lose messages in a burst.
const (
	linkQueue   = 8192
	sendTimeout = 5 * time.Second
)

// router forwards messages to the nodes that have matching routes.
type router struct {
	c      *Cluster
	b      LocalBroker
	routes *routeTable

	mu    sync.Mutex
	links map[string]*link // outgoing, by node id
	// incoming connection generation per node, so that a stale
	// connection closing doesn't drop a newer one's routes
	inGen map[string]uint64
	gen   uint64

	// localShared is this node's shared filters, kept from RoutesChanged
	// so a publish need not scan every local filter.
	sharedMu    sync.Mutex
	sharedSet   map[string]bool
	localShared atomic.Pointer[[]string]
}

type link struct {
	nodeID, addr string
	ch           chan frame
	ready        bool // has sent its full route set: deltas may follow
	stop         chan struct{}
}

func newRouter(c *Cluster, b LocalBroker) *router {
	r := &router{c: c, b: b, routes: newRouteTable(), links: map[string]*link{}, inGen: map[string]uint64{},
		sharedSet: map[string]bool{}}
	for _, f := range b.LocalFilters() {
		if strings.HasPrefix(f, "$share/") {
			r.sharedSet[f] = true
		}
	}
	r.publishShared()
	return r
}

// publishShared snapshots sharedSet for lock-free reads. Call with
// sharedMu held (or before the router is shared).
func (r *router) publishShared() {
	list := make([]string, 0, len(r.sharedSet))
	for f := range r.sharedSet {
		list = append(list, f)
	}
	r.localShared.Store(&list)
}

// reconcile opens a link to every other member and closes links to nodes
// that are no longer members.
func (r *router) reconcile() {
	want := map[string]string{}
	for _, s := range r.c.voters() {
		if string(s.ID) != r.c.opts.NodeID {
			want[string(s.ID)] = string(s.Address)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, l := range r.links {
		if addr, ok := want[id]; !ok || addr != l.addr {
			close(l.stop)
			delete(r.links, id)
		}
	}
	for id, addr := range want {
		if _, ok := r.links[id]; !ok {
			l := &link{nodeID: id, addr: addr, ch: make(chan frame, linkQueue), stop: make(chan struct{})}
			r.links[id] = l
			r.c.wg.Add(1)
			go r.runLink(l)
		}
	}
}

func (r *router) closeLinks() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, l := range r.links {
		close(l.stop)
		delete(r.links, id)
	}
}

// runLink keeps one outgoing link connected, resending the full route set
// on every (re)connect.
func (r *router) runLink(l *link) {
	defer r.c.wg.Done()
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-l.stop:
			return
		case <-r.c.stop:
			return
		default:
		}
		err := r.serveLink(l)
		r.mu.Lock()
		l.ready = false
		r.mu.Unlock()
		if err != nil {
			r.c.log.Debug("forward link down", "peer", l.addr, "err", err)
		}
		select {
		case <-l.stop:
			return
		case <-r.c.stop:
			return
		case <-time.After(backoff):
		}
		if backoff < 2*time.Second {
			backoff *= 2
		}
	}
}

func (r *router) serveLink(l *link) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	conn, err := r.c.opts.Transport.Dial(ctx, l.addr, StreamForward)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close()
	bw := bufio.NewWriterSize(conn, 64<<10)
	enc := gob.NewEncoder(bw)
	// Drop frames queued while the link was down: the peer gets a fresh
	// full route set, and messages for a peer that was unreachable are
	// lost like any message to a node that is down.
drain:
	for {
		select {
		case <-l.ch:
		default:
			break drain
		}
	}
	r.mu.Lock()
	filters := r.b.LocalFilters()
	l.ready = true
	r.mu.Unlock()
	if err := enc.Encode(frame{Kind: frameHello, From: r.c.opts.NodeID}); err != nil {
		return err
	}
	if err := enc.Encode(frame{Kind: frameRoutes, Filters: filters}); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	// A reader notices the peer closing the connection.
	closed := make(chan struct{})
	go func() {
		var b [1]byte
		conn.Read(b[:])
		close(closed)
	}()
	for {
		select {
		case f := <-l.ch:
			if err := enc.Encode(f); err != nil {
				return err
			}
			// Batch whatever else is queued into the same write.
			for more := true; more; {
				select {
				case f := <-l.ch:
					if err := enc.Encode(f); err != nil {
						return err
					}
				default:
					more = false
				}
			}
			if err := bw.Flush(); err != nil {
				return err
			}
		case <-closed:
			return errors.New("peer closed the link")
		case <-l.stop:
			return nil
		case <-r.c.stop:
			return nil
		}
	}
}

// routeChanged sends a delta to every connected link.
func (r *router) routeChanged(filter string, added bool) {
	if strings.HasPrefix(filter, "$share/") {
		r.sharedMu.Lock()
		if added {
			r.sharedSet[filter] = true
		} else {
			delete(r.sharedSet, filter)
		}
		r.publishShared()
		r.sharedMu.Unlock()
	}
	kind := byte(frameDel)
	if added {
		kind = frameAdd
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.links {
		if !l.ready {
			continue // it sends the full set when it connects
		}
		select {
		case l.ch <- frame{Kind: kind, Filters: []string{filter}}:
		default:
			// A full queue: force a reconnect, which resends the full set.
			r.c.log.Warn("forward link queue full; resyncing routes", "peer", l.addr)
		}
	}
}

// forward sends msg to the nodes that need it and returns the local
// shared subscriptions another node serves.
func (r *router) forward(msg broker.Message) []string {
	targets, skip := r.routes.plan(r.c.opts.NodeID, msg.Topic, *r.localShared.Load())
	if len(targets) == 0 {
		return skip
	}
	m := msg
	r.mu.Lock()
	links := make(map[string]*link, len(targets))
	for id := range targets {
		if l, ok := r.links[id]; ok {
			links[id] = l
		}
	}
	r.mu.Unlock()
	for id, shared := range targets {
		l, ok := links[id]
		if !ok {
			continue
		}
		select {
		case l.ch <- frame{Kind: framePublish, Msg: &m, Shared: shared}:
		case <-time.After(sendTimeout):
			r.c.log.Warn("forward link stalled; message to peer dropped", "peer", l.addr, "topic", msg.Topic)
		}
	}
	return skip
}

// serveForward reads one incoming link: the dialer's routes and messages.
func (r *router) serveForward(conn net.Conn) {
	defer conn.Close()
	dec := gob.NewDecoder(bufio.NewReaderSize(conn, 64<<10))
	var hello frame
	if err := dec.Decode(&hello); err != nil || hello.Kind != frameHello || hello.From == "" {
		return
	}
	node := hello.From
	r.mu.Lock()
	r.gen++
	gen := r.gen
	r.inGen[node] = gen
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		if r.inGen[node] == gen {
			delete(r.inGen, node)
			r.routes.drop(node)
		}
		r.mu.Unlock()
	}()
	for {
		var f frame
		if err := dec.Decode(&f); err != nil {
			return
		}
		switch f.Kind {
		case frameRoutes:
			r.routes.replace(node, f.Filters)
		case frameAdd, frameDel:
			if len(f.Filters) == 1 {
				r.routes.update(node, f.Filters[0], f.Kind == frameAdd)
			}
		case framePublish:
			if f.Msg != nil {
				r.b.DeliverRemote(*f.Msg, f.Shared)
			}
		}
	}
}

// TakeoverArgs asks a node to give up a client id.
type TakeoverArgs struct {
	ClusterID  string // the caller's: a node of another cluster is refused
	ClientID   string
	CleanStart bool
}

// TakeoverReply carries the session given up, if there was one.
type TakeoverReply struct {
	Found   bool
	Session *broker.Session
}

// Takeover gives up a local client id to another node.
func (s *rpcService) Takeover(args TakeoverArgs, reply *TakeoverReply) error {
	if err := s.c.sameCluster("session takeover", args.ClusterID); err != nil {
		return err
	}
	r := s.c.router.Load()
	if r == nil {
		return nil
	}
	sess, ok := r.b.TakeoverLocal(args.ClientID, args.CleanStart)
	reply.Found, reply.Session = ok, sess
	return nil
}

// takeover makes clientID unique in the cluster before it connects here:
// every other node disconnects it, and the session (unless cleanStart)
// moves here. Nodes that cannot be reached hold no live connection that
// matters; their persisted copy of the session, if any, is not moved.
func (c *Cluster) takeover(ctx context.Context, clientID string, cleanStart bool) (*broker.Session, error) {
	var peers []string
	for _, s := range c.voters() {
		if string(s.ID) != c.opts.NodeID {
			peers = append(peers, string(s.Address))
		}
	}
	if len(peers) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var mu sync.Mutex
	var found *broker.Session
	var wg sync.WaitGroup
	for _, addr := range peers {
		wg.Add(1)
		go func(addr string) {
			defer wg.Done()
			var reply TakeoverReply
			if err := c.clients.call(ctx, addr, "Takeover", TakeoverArgs{ClusterID: c.opts.ClusterID(), ClientID: clientID, CleanStart: cleanStart}, &reply); err != nil {
				c.log.Debug("takeover: peer not reached", "peer", addr, "client_id", clientID, "err", err)
				return
			}
			if reply.Found && reply.Session != nil {
				mu.Lock()
				if found == nil {
					found = reply.Session
				}
				mu.Unlock()
			}
		}(addr)
	}
	wg.Wait()
	return found, nil
}

// AttachBroker connects message routing and session takeover to the local
// broker; set the returned hooks on it before it starts.
func (c *Cluster) AttachBroker(b LocalBroker) broker.ClusterHooks {
	r := newRouter(c, b)
	c.router.Store(r)
	c.opts.Transport.Handle(StreamForward, r.serveForward)
	return broker.ClusterHooks{
		Forward:       r.forward,
		RoutesChanged: r.routeChanged,
		Takeover:      c.takeover,
	}
}
