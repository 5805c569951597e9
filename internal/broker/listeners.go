package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Listener types.
const (
	ListenerTCP = "tcp" // MQTT over TCP (EMQX: listeners.tcp)
	ListenerSSL = "ssl" // MQTT over TLS (EMQX: listeners.ssl)
	ListenerWS  = "ws"  // MQTT over WebSocket (EMQX: listeners.ws)
	ListenerWSS = "wss" // MQTT over WebSocket over TLS (EMQX: listeners.wss)
)

// ListenerOptions describe one network listener.
type ListenerOptions struct {
	// Name identifies the listener in logs and in Addrs, e.g. "tcp:default".
	// Default: "<type>:<index>".
	Name string
	Type string // tcp | ssl | ws | wss
	Bind string // host:port; port 0 picks a free port (see Broker.Addrs)
	// TLS (ssl, wss): server certificate and key (PEM files), and
	// optionally a CA bundle: when set, clients must present a
	// certificate signed by it.
	CertFile   string
	KeyFile    string
	CACertFile string
	// Listener, if set, is a socket already bound to Bind (a node binds
	// all its ports before it creates any state); the broker serves on it
	// and closes it, instead of binding Bind itself.
	Listener net.Listener
}

// Check reports what New would refuse about the listener: its options,
// and for TLS its certificate, key and CA files.
func (o ListenerOptions) Check() error {
	if err := o.validate(); err != nil {
		return err
	}
	if o.tls() {
		_, err := o.tlsConfig()
		return err
	}
	return nil
}

func (o ListenerOptions) tls() bool { return o.Type == ListenerSSL || o.Type == ListenerWSS }

func (o ListenerOptions) validate() error {
	switch o.Type {
	case ListenerTCP, ListenerWS, ListenerSSL, ListenerWSS:
	default:
		return fmt.Errorf("listener %s: unknown type %q (want tcp, ssl, ws or wss)", o.Name, o.Type)
	}
	if o.Bind == "" {
		return fmt.Errorf("listener %s: bind address is empty", o.Name)
	}
	if _, _, err := net.SplitHostPort(o.Bind); err != nil {
		return fmt.Errorf("listener %s: bad bind address %q: %w", o.Name, o.Bind, err)
	}
	if o.tls() && (o.CertFile == "" || o.KeyFile == "") {
		return fmt.Errorf("listener %s: %s needs certfile and keyfile", o.Name, o.Type)
	}
	return nil
}

// tlsConfig loads the listener's certificate (and client CA, if any).
func (o ListenerOptions) tlsConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("listener %s: load certificate %s / key %s: %w", o.Name, o.CertFile, o.KeyFile, err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if o.CACertFile != "" {
		pem, err := os.ReadFile(o.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("listener %s: read cacertfile: %w", o.Name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("listener %s: cacertfile %s holds no PEM certificate", o.Name, o.CACertFile)
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return conf, nil
}

// clientConn wraps every accepted connection. It carries what Roost's
// hooks learn about the client at CONNECT (mochi's Client has no place for
// it), and lives exactly as long as the connection: a session takeover
// gets a new clientConn, so no state leaks between the two.
type clientConn struct {
	net.Conn

	// Set during CONNECT, on the client's own goroutine, before any other
	// packet of the client is processed.
	superuser bool

	// Filters of the SUBSCRIBE being processed that the ACL denied; see
	// authzHook.OnSubscribe. Read from other goroutines, hence atomic.
	denied atomic.Pointer[map[string]struct{}]

	// done is closed when the connection's goroutine, and so mochi's
	// handling of the client (hooks included), has finished.
	done chan struct{}

	// The SUBSCRIBE being processed (routingHook.OnSubscribe to
	// OnPacketProcessed), and the last retained delivery started for
	// this connection, which the next one waits for. Only used on the
	// client's own goroutine.
	subscribing  []subscribeReq
	retainedTail chan struct{}

	// A session moved here from another node at CONNECT: its
	// subscriptions, to persist, and its queued messages, to deliver
	// after CONNACK. Only used on the client's own goroutine.
	movedSubs    []packets.Subscription
	movedPending []Message

	// The re-send of a resumed session (queue_order.go), from CONNACK to
	// OnSessionEstablished.
	resend atomic.Pointer[resendWindow]
	// Closed when new messages may be written to the client, after
	// CONNACK and the re-send (queue_order.go); nil once they may.
	hold atomic.Pointer[chan struct{}]

	// Set by TakeoverLocal before it disconnects the client.
	handover atomic.Pointer[handover]

	// What is written to the client (write_queue.go).
	wq         writeQueue
	direct     *directWriter // nil: TLS, WebSocket
	readClosed atomic.Bool
	closeOnce  sync.Once

	// Messages dropped for the client, not logged yet (drops.go), and
	// the writer paceHook gave up waiting for: wq.taken+1 then (pace.go).
	drops     dropLog
	paceStuck atomic.Uint64
}

func newClientConn(conn net.Conn, qs *writeQueues) *clientConn {
	c := &clientConn{Conn: conn, done: make(chan struct{}), direct: newDirectWriter(conn)}
	c.wq.init(qs)
	return c
}

// connState returns the Roost state of a client, or nil for a client
// without a live connection (a session restored from disk).
func connState(cl *mqtt.Client) *clientConn {
	c, _ := cl.Net.Conn.(*clientConn)
	return c
}

// listener implements mochi's listeners.Listener for TCP, TLS and
// WebSocket. It binds in Init, so the address is known (port 0) before
// Serve, and wraps connections in clientConn.
type listener struct {
	opts           ListenerOptions
	tlsConf        *tls.Config
	connectTimeout time.Duration
	queues         *writeQueues
	log            *slog.Logger

	ln     net.Listener
	http   *http.Server
	closed atomic.Bool
	once   sync.Once

	// Live connections, so that Close ends all of them (also those still
	// before CONNECT, which mochi does not know yet) and returns only once
	// their sessions have wound down. mochi's own wait for clients adds
	// to its WaitGroup from each connection's goroutine, which races with
	// its Wait unless no connection is left when it waits.
	connsMu sync.Mutex
	conns   map[*clientConn]struct{}
	active  sync.WaitGroup

	// Disconnects the listener's clients on Close, instead of mochi's
	// (Broker.disconnectListenerClients); nil: mochi's.
	disconnectClients func(listener string)
}

var _ listeners.Listener = (*listener)(nil)

func newListener(o ListenerOptions, connectTimeout time.Duration, queues *writeQueues) (*listener, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	l := &listener{opts: o, connectTimeout: connectTimeout, queues: queues, conns: map[*clientConn]struct{}{}}
	if o.tls() {
		conf, err := o.tlsConfig()
		if err != nil {
			return nil, err
		}
		l.tlsConf = conf
	}
	return l, nil
}

func (l *listener) ID() string       { return l.opts.Name }
func (l *listener) Protocol() string { return l.opts.Type }

// Address is the bound address once Init ran, else the configured one.
func (l *listener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.opts.Bind
}

func (l *listener) Init(log *slog.Logger) error {
	l.log = log
	ln := l.opts.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", l.opts.Bind); err != nil {
			return fmt.Errorf("listener %s: %w", l.opts.Name, err)
		}
	}
	if l.tlsConf != nil {
		ln = tls.NewListener(ln, l.tlsConf)
	}
	l.ln = ln
	if l.opts.Type == ListenerWS || l.opts.Type == ListenerWSS {
		l.http = &http.Server{ReadHeaderTimeout: 10 * time.Second}
	}
	return nil
}

func (l *listener) Serve(establish listeners.EstablishFn) {
	switch l.opts.Type {
	case ListenerWS, ListenerWSS:
		l.serveWS(establish)
	default:
		l.serveTCP(establish)
	}
}

func (l *listener) serveTCP(establish listeners.EstablishFn) {
	var backoff time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if l.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// E.g. out of file descriptors: wait and try again, as
			// net/http does, rather than stop listening.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.log.Error("accept failed; retrying", "err", err, "in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if l.closed.Load() {
			conn.Close()
			return
		}
		go l.establish(establish, conn)
	}
}

func (l *listener) establish(establish listeners.EstablishFn, conn net.Conn) {
	// mochi reads CONNECT without a deadline; a client that connects and
	// stays silent must not hold a goroutine forever. After CONNECT mochi
	// replaces the deadline with the keepalive one.
	_ = conn.SetDeadline(time.Now().Add(l.connectTimeout))
	cc := newClientConn(conn, l.queues)
	defer close(cc.done)
	// mochi closes the connection when it is done with the client; this
	// covers every other way out. The socket closes once what is queued
	// for the client is written (write_queue.go).
	defer cc.Close()
	l.connsMu.Lock()
	if l.closed.Load() {
		l.connsMu.Unlock()
		conn.Close()
		return
	}
	l.conns[cc] = struct{}{}
	l.active.Add(1)
	l.connsMu.Unlock()
	defer func() {
		l.connsMu.Lock()
		delete(l.conns, cc)
		l.connsMu.Unlock()
		l.active.Done()
	}()
	if err := establish(l.opts.Name, cc); err != nil && !errors.Is(err, io.EOF) {
		l.log.Debug("connection ended", "remote", conn.RemoteAddr().String(), "err", err)
	}
}

func (l *listener) serveWS(establish listeners.EstablishFn) {
	upgrader := &websocket.Upgrader{
		Subprotocols: []string{"mqtt", "mqttv3.1"},
		// Browsers' MQTT clients connect from pages on other origins; the
		// MQTT CONNECT itself is what gets authenticated.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade already answered with an HTTP error
		}
		// establish closes it, once what is queued for the client is written.
		l.establish(establish, &wsConn{Conn: ws.UnderlyingConn(), ws: ws})
	})
	l.http.Handler = handler
	if err := l.http.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !l.closed.Load() {
		l.log.Error("websocket listener stopped", "err", err)
	}
}

// Close stops accepting, disconnects the listener's clients (mochi sends
// MQTT 5 clients a DISCONNECT), closes every remaining connection and
// waits until their goroutines, and so mochi's hooks, have finished.
func (l *listener) Close(closeClients listeners.CloseFn) {
	l.once.Do(func() {
		l.closed.Store(true)
		if l.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = l.http.Shutdown(ctx) // hijacked websocket connections are not waited for
			cancel()
		}
		if l.ln != nil {
			_ = l.ln.Close()
		}
	})
	if l.disconnectClients != nil {
		l.disconnectClients(l.opts.Name)
	} else {
		closeClients(l.opts.Name)
	}
	l.connsMu.Lock()
	for c := range l.conns {
		_ = c.Close()
	}
	l.connsMu.Unlock()
	l.active.Wait()
}

// wsConn adapts a WebSocket to the byte stream mochi reads MQTT from: each
// binary message carries part of the stream (MQTT over WebSocket allows a
// packet to span messages and a message to hold several packets).
type wsConn struct {
	net.Conn
	ws *websocket.Conn
	r  io.Reader // the current message, nil between messages

	// gorilla's writer state, write deadline included, is not safe for
	// concurrent use; mochi sets deadlines from the reading goroutine
	// while another one writes.
	wmu sync.Mutex
}

var errWSNotBinary = errors.New("websocket: MQTT needs binary messages")

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			op, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errWSNotBinary
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// Write sends p as one binary message.
func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline is only called by the reading goroutine.
func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.SetWriteDeadline(t)
}
func (c *wsConn) Close() error { return c.ws.Close() }

// cutWrites sets the socket's write deadline, for the write in progress:
// gorilla sets its own deadline on the socket as each write starts, and
// SetWriteDeadline would wait for the write in progress to end.
func (c *wsConn) cutWrites(t time.Time) { _ = c.Conn.SetWriteDeadline(t) }
