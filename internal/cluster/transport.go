package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/roostmq/roost/internal/store"
)

// Transport owns the cluster port: it accepts connections, authenticates
// them with the cookie, and hands each to the handler of its stream kind.
type Transport struct {
	ln        net.Listener
	cookie    []byte
	clusterID func() string // read on every handshake: a join changes it
	advertise string
	serverTLS *tls.Config // nil: plain TCP
	clientTLS *tls.Config
	log       *slog.Logger

	mu       sync.Mutex
	handlers map[byte]func(net.Conn)
	raftCh   chan net.Conn
	closed   chan struct{}
	wg       sync.WaitGroup

	mismatchMu     sync.Mutex
	mismatchLogged map[string]time.Time // peer + both ids → last logged
}

// mismatchLogEvery bounds how often a cluster id mismatch with one peer is
// logged: raft retries all the time, the operator needs to read it once.
const mismatchLogEvery = 10 * time.Minute

// TransportOptions configure Listen.
type TransportOptions struct {
	Bind string // host:port to listen on
	// Listener, if set, is a socket already bound to Bind (a node binds
	// its ports before it creates any state); Listen takes it over.
	Listener  net.Listener
	Advertise string // address the other nodes dial
	Cookie    string
	// ClusterID returns this node's current cluster id (node.json). It is
	// called on every handshake, as joining or leaving changes it.
	ClusterID func() string
	ServerTLS *tls.Config
	ClientTLS *tls.Config
	Logger    *slog.Logger
}

// Listen opens the cluster port.
func Listen(opts TransportOptions) (*Transport, error) {
	if len(opts.Cookie) == 0 {
		return nil, errors.New("cluster: node.cookie is empty")
	}
	if opts.ClusterID == nil {
		return nil, errors.New("cluster: transport needs the node's cluster id (TransportOptions.ClusterID)")
	}
	ln := opts.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", opts.Bind); err != nil {
			return nil, fmt.Errorf("cluster.bind %s: %w", opts.Bind, err)
		}
	}
	if opts.ServerTLS != nil {
		ln = tls.NewListener(ln, opts.ServerTLS)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	t := &Transport{ln: ln, cookie: []byte(opts.Cookie), clusterID: opts.ClusterID, advertise: opts.Advertise,
		serverTLS: opts.ServerTLS, clientTLS: opts.ClientTLS, log: opts.Logger.With("component", "cluster"),
		handlers: map[byte]func(net.Conn){}, raftCh: make(chan net.Conn, 16), closed: make(chan struct{}),
		mismatchLogged: map[string]time.Time{}}
	if t.advertise == "" {
		t.advertise = ln.Addr().String()
	}
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

// Addr is the bound address of the cluster port.
func (t *Transport) Addr() net.Addr { return t.ln.Addr() }

// Advertise is the address other nodes dial to reach this one.
func (t *Transport) Advertise() string { return t.advertise }

// Handle sets the handler for connections of kind (StreamRPC, StreamForward).
// The handler owns the connection and must close it.
func (t *Transport) Handle(kind byte, h func(net.Conn)) {
	t.mu.Lock()
	t.handlers[kind] = h
	t.mu.Unlock()
}

func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if err != nil {
			select {
			case <-t.closed:
				return
			default:
			}
			t.log.Warn("cluster accept", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go t.serve(c)
	}
}

func (t *Transport) serve(c net.Conn) {
	local := t.clusterID()
	p, err := serverHandshake(c, t.cookie, local)
	if err != nil {
		// Loud on purpose: a wrong cookie is an operator mistake or an
		// intruder, and either way somebody should look.
		t.log.Warn("cluster: refused connection", "remote", c.RemoteAddr().String(), "reason", err)
		c.Close()
		return
	}
	kind := p.kind
	if sameClusterOnly(kind) && p.cluster != local {
		peer := p.addr
		if peer == "" {
			peer = c.RemoteAddr().String()
		}
		t.logMismatch(&ClusterMismatchError{Peer: peer, PeerCluster: p.cluster, LocalCluster: local, Kind: kind}, c.RemoteAddr().String())
		c.Close()
		return
	}
	if kind == StreamRaft {
		select {
		case t.raftCh <- c:
		case <-t.closed:
			c.Close()
		}
		return
	}
	t.mu.Lock()
	h := t.handlers[kind]
	t.mu.Unlock()
	if h == nil {
		c.Close()
		return
	}
	h(c)
}

// Dial opens an authenticated connection of kind to a node's cluster port.
func (t *Transport) Dial(ctx context.Context, addr string, kind byte) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	var c net.Conn
	var err error
	if t.clientTLS != nil {
		td := tls.Dialer{NetDialer: &d, Config: t.clientTLS}
		c, err = td.DialContext(ctx, "tcp", addr)
	} else {
		c, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: dial %s: %w", addr, err)
	}
	local := t.clusterID()
	peerCluster, err := clientHandshake(c, t.cookie, kind, local, t.advertise)
	if err != nil {
		c.Close()
		return nil, err
	}
	if sameClusterOnly(kind) && peerCluster != local {
		c.Close()
		e := &ClusterMismatchError{Peer: addr, PeerCluster: peerCluster, LocalCluster: local, Kind: kind}
		t.logMismatch(e, "")
		return nil, e
	}
	return c, nil
}

// logMismatch logs a refused cross-cluster stream, at most once per peer
// and pair of ids every mismatchLogEvery.
func (t *Transport) logMismatch(e *ClusterMismatchError, remote string) {
	key := e.Peer + "|" + e.PeerCluster + "|" + e.LocalCluster
	now := time.Now()
	t.mismatchMu.Lock()
	last, seen := t.mismatchLogged[key]
	if seen && now.Sub(last) < mismatchLogEvery {
		t.mismatchMu.Unlock()
		return
	}
	t.mismatchLogged[key] = now
	for k, at := range t.mismatchLogged {
		if now.Sub(at) >= mismatchLogEvery {
			delete(t.mismatchLogged, k)
		}
	}
	t.mismatchMu.Unlock()
	attrs := []any{"peer", e.Peer, "peer_cluster_id", e.PeerCluster, "cluster_id", e.LocalCluster,
		"stream", kindName(e.Kind), "err", e.Error(), "repeats_suppressed_for", mismatchLogEvery.String()}
	if remote != "" && remote != e.Peer {
		attrs = append(attrs, "remote", remote)
	}
	t.log.Error("cluster: peer is in another cluster; refusing its raft and forwarding traffic", attrs...)
}

// Close stops accepting; connections already handed out are their owners'.
func (t *Transport) Close() error {
	select {
	case <-t.closed:
		return nil
	default:
	}
	close(t.closed)
	err := t.ln.Close()
	t.wg.Wait()
	return err
}

// RaftTransport returns a raft transport that runs over this port.
func (t *Transport) RaftTransport(logger *slog.Logger) raft.Transport {
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  &raftStream{t: t},
		Logger:  store.NewRaftLogger(logger.With("component", "cluster.raft")),
		MaxPool: 3,
		Timeout: 10 * time.Second,
	})
}

// raftStream is raft.StreamLayer over the authenticated cluster port.
type raftStream struct{ t *Transport }

func (s *raftStream) Accept() (net.Conn, error) {
	select {
	case c := <-s.t.raftCh:
		return c, nil
	case <-s.t.closed:
		return nil, net.ErrClosed
	}
}

func (s *raftStream) Close() error { return nil } // the Transport owns the listener

func (s *raftStream) Addr() net.Addr { return advertiseAddr(s.t.advertise) }

func (s *raftStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.t.Dial(ctx, string(addr), StreamRaft)
}

type advertiseAddr string

func (a advertiseAddr) Network() string { return "tcp" }
func (a advertiseAddr) String() string  { return string(a) }
