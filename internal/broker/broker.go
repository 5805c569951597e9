// Package broker is Roost's MQTT front: a mochi-mqtt server (MQTT 3.1,
// 3.1.1 and 5.0 over TCP, TLS and WebSocket) with Roost's hooks:
// authentication from the users table, authorization from ACL rules,
// banned clients, retained messages kept in the replicated store, and
// persistent sessions kept in a node-local bbolt file.
//
// Only this package imports mochi, so the engine can be replaced.
package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roostmq/roost/internal/store"
)

// User id types: what the users table is keyed by.
const (
	UserIDUsername = "username"
	UserIDClientID = "clientid"
	// UserIDBoth authenticates as EMQX 4's built-in database did: by the
	// client id's record or the user name's, whichever matches.
	UserIDBoth = "both"
)

// The default and the largest Options.MaxQueuedBytes.
const (
	DefaultMaxQueuedBytes = 4 << 20
	MaxQueuedBytesLimit   = 1 << 30
)

// Options configure a Broker. Zero values take the documented defaults.
type Options struct {
	Store *store.Store // required; must stay open until Close returns
	// Listeners to open. Empty: none (a broker without network access is
	// useful only in tests).
	Listeners []ListenerOptions
	// SessionsPath is the bbolt file for persistent sessions, e.g.
	// <data_dir>/sessions.db. Empty: sessions live in memory only and do
	// not survive a restart.
	SessionsPath string

	// AuthnEnable turns authentication on; off, every client is accepted
	// (and a warning is logged at start).
	AuthnEnable bool
	// AuthnUserIDType is what identifies a user: "username" (default),
	// "clientid" or "both" (either record admits the client). A cluster
	// config override of authn.user_id_type (the config table) takes
	// precedence while it exists.
	AuthnUserIDType string
	// AuthzNoMatch decides when no ACL rule matches: "allow" (default) or
	// "deny".
	AuthzNoMatch string

	// MaxPendingWrites bounds mochi's outbound channel of each client
	// (packets), in front of its write queue. Default 1024 (mochi's own
	// default, 8192, costs too much memory per connection).
	MaxPendingWrites int
	// MaxQueuedBytes bounds the memory of each client's write queue
	// (write_queue.go): what is written to the client and not yet taken by
	// the socket. Once it and the outbound channel are full, messages to
	// the client are dropped. Default 4 MiB.
	MaxQueuedBytes int
	// ReceiveMaximum is the number of QoS 1/2 publishes a client may have
	// unacknowledged towards the broker (CONNACK Receive Maximum).
	// Default 1024.
	ReceiveMaximum int
	// MaxInflight bounds the QoS 1/2 messages held per session (in flight
	// to the client or queued while it is offline). Default 8192, max 65535.
	MaxInflight int
	// MaxSessionExpiry caps the session expiry interval of MQTT 5 clients.
	// Default 2h.
	MaxSessionExpiry time.Duration
	// SessionExpiryV3 is how long an MQTT 3.1.1 session with clean session
	// false is kept after a disconnect. Default 2h; at most MaxSessionExpiry.
	SessionExpiryV3 time.Duration
	// MaxPacketSize is the largest packet accepted, in bytes. Default 1 MiB.
	MaxPacketSize int
	// MaxMessageExpiry caps the expiry of every message, retained and
	// queued (MQTT 5 message expiry interval). Default 0: no cap; messages
	// without an expiry interval never expire.
	MaxMessageExpiry time.Duration
	// ConnectTimeout is how long a new connection may take to send
	// CONNECT. Default 15s.
	ConnectTimeout time.Duration

	// RetainedBatchWindow is how long retained writes are collected before
	// they go to the store as one batch. Default 2ms.
	RetainedBatchWindow time.Duration
	// SessionFlushInterval is how long session changes are collected
	// before one bbolt transaction commits them. Default 5ms.
	SessionFlushInterval time.Duration
	// CleanupInterval is how often the raft leader deletes expired bans
	// and retained messages from the store. Default 30s.
	CleanupInterval time.Duration
	// UserCacheSize bounds the decoded users kept in memory. Default 100000.
	UserCacheSize int

	Logger *slog.Logger
}

func (o *Options) setDefaults() error {
	if o.Store == nil {
		return errors.New("broker: a store is required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.MaxPendingWrites, 1024)
	def(&o.MaxQueuedBytes, DefaultMaxQueuedBytes)
	def(&o.ReceiveMaximum, 1024)
	def(&o.MaxInflight, 8192)
	def(&o.MaxPacketSize, 1<<20)
	def(&o.UserCacheSize, 100000)
	defDur(&o.MaxSessionExpiry, 2*time.Hour)
	defDur(&o.SessionExpiryV3, 2*time.Hour)
	defDur(&o.ConnectTimeout, 15*time.Second)
	defDur(&o.RetainedBatchWindow, 2*time.Millisecond)
	defDur(&o.SessionFlushInterval, 5*time.Millisecond)
	defDur(&o.CleanupInterval, 30*time.Second)

	switch o.AuthnUserIDType {
	case "":
		o.AuthnUserIDType = UserIDUsername
	case UserIDUsername, UserIDClientID, UserIDBoth:
	default:
		return fmt.Errorf("broker: authn user id type %q: want username, clientid or both", o.AuthnUserIDType)
	}
	switch o.AuthzNoMatch {
	case "":
		o.AuthzNoMatch = "allow"
	case "allow", "deny":
	default:
		return fmt.Errorf("broker: authz no_match %q: want allow or deny", o.AuthzNoMatch)
	}
	switch {
	case o.MaxPendingWrites < 0 || o.MaxPendingWrites > math.MaxInt32:
		return fmt.Errorf("broker: max pending writes %d out of range", o.MaxPendingWrites)
	case o.MaxQueuedBytes < 0 || o.MaxQueuedBytes > MaxQueuedBytesLimit:
		return fmt.Errorf("broker: max queued bytes %d out of range 1..%d", o.MaxQueuedBytes, MaxQueuedBytesLimit)
	case o.ReceiveMaximum < 0 || o.ReceiveMaximum > math.MaxUint16:
		return fmt.Errorf("broker: receive maximum %d out of range 1..65535", o.ReceiveMaximum)
	case o.MaxInflight < 0 || o.MaxInflight > math.MaxUint16:
		return fmt.Errorf("broker: max inflight %d out of range 1..65535", o.MaxInflight)
	case o.MaxPacketSize < 0 || int64(o.MaxPacketSize) > math.MaxUint32:
		return fmt.Errorf("broker: max packet size %d out of range", o.MaxPacketSize)
	case o.MaxSessionExpiry < time.Second || o.MaxSessionExpiry/time.Second > math.MaxUint32:
		return fmt.Errorf("broker: max session expiry %s out of range", o.MaxSessionExpiry)
	case o.SessionExpiryV3 < 0:
		return fmt.Errorf("broker: v3 session expiry %s is negative", o.SessionExpiryV3)
	case o.MaxMessageExpiry < 0 || o.MaxMessageExpiry/time.Second > math.MaxUint32:
		return fmt.Errorf("broker: max message expiry %s out of range", o.MaxMessageExpiry)
	}
	names := map[string]bool{}
	for i := range o.Listeners {
		l := &o.Listeners[i]
		if l.Name == "" {
			l.Name = fmt.Sprintf("%s:%d", l.Type, i)
		}
		if names[l.Name] {
			return fmt.Errorf("broker: two listeners named %q", l.Name)
		}
		names[l.Name] = true
		if err := l.validate(); err != nil {
			return fmt.Errorf("broker: %w", err)
		}
	}
	return nil
}

// Broker is one node's MQTT broker.
type Broker struct {
	opts   Options
	log    *slog.Logger
	st     *store.Store
	server *mqtt.Server

	listeners []*listener
	users     *userCache
	idType    *userIDType
	acl       *aclSet
	bans      *banSet
	retained  *retainedSync
	sessions  *sessionStore // nil without SessionsPath
	mirrors   []*mirror
	banned    *bannedHook
	qos       qosHook // message counts by QoS (metrics.go)

	// Clustering (cluster_hook.go, takeover.go) and retained delivery
	// on subscribe (retained_deliver.go).
	cluster atomic.Pointer[ClusterHooks]
	routes  *localRoutes
	routing *routingHook
	order   *queueOrder // order of queued messages (queue_order.go)
	resumes resumes     // connections setting up their sessions (handoff.go)
	// Tests: called before a delivery to a client (paceHook), to hold it
	// where a race with a reconnect would otherwise be a matter of luck.
	beforeDelivery atomic.Pointer[func(cl *mqtt.Client, topic string)]
	queues         *writeQueues    // clients' write queues (write_queue.go)
	dropped        [3]atomic.Int64 // messages dropped for full queues, by QoS (drops.go)
	// dropLogEvery spaces the log lines about one client's drops.
	dropLogEvery time.Duration
	remotePool   sync.Pool   // inline clients of DeliverRemote
	running      atomic.Bool // between Start and Close: clients are served
	bgMu         sync.Mutex  // guards bgClosed and bgWG.Add
	bgClosed     bool
	bgWG         sync.WaitGroup // background deliveries

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	started bool
	closed  bool
}

// componentLog is the logger of one part of the broker: component=broker.NAME.
func (b *Broker) componentLog(name string) *slog.Logger {
	return b.opts.Logger.With("component", "broker."+name)
}

// New checks the options and builds a broker; Start opens it.
func New(opts Options) (*Broker, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	// Each part of the broker logs with one component key, derived from
	// the caller's logger (not from log, which already has one).
	log := opts.Logger.With("component", "broker")
	b := &Broker{opts: opts, log: log, st: opts.Store, queues: newWriteQueues(opts.MaxQueuedBytes),
		dropLogEvery: dropLogEvery}
	b.idType = newUserIDType(opts.AuthnUserIDType, b.componentLog("authn"))
	b.ctx, b.cancel = context.WithCancel(context.Background())

	for _, lo := range opts.Listeners {
		l, err := newListener(lo, opts.ConnectTimeout, b.queues)
		if err != nil {
			return nil, fmt.Errorf("broker: %w", err)
		}
		l.disconnectClients = b.disconnectListenerClients
		b.listeners = append(b.listeners, l)
	}

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = int32(opts.MaxPendingWrites)
	caps.ReceiveMaximum = uint16(opts.ReceiveMaximum)
	caps.MaximumInflight = uint16(opts.MaxInflight)
	caps.MaximumSessionExpiryInterval = uint32(opts.MaxSessionExpiry / time.Second)
	caps.MaximumPacketSize = uint32(opts.MaxPacketSize)
	caps.MaximumMessageExpiryInterval = int64(opts.MaxMessageExpiry / time.Second)
	// mochi builds the PUBACK of an accepted QoS 1 publish with its
	// SUBACK code for QoS 1 (0x01) and the publish's properties: with
	// user properties on the PUBLISH, the PUBACK echoed them and, having
	// properties, carried the reason code 0x01, which is not a PUBACK
	// code (clients read it as a failure). Without inherited properties
	// an accepted publish is acknowledged as success (the reason code is
	// left out); refusals keep their code and reason string (0x87 for a
	// denied MQTT 5 publish). See also routingHook.OnPacketEncode.
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	b.server = mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       b.componentLog("mqtt"),
		InlineClient: false,
	})
	b.routes = newLocalRoutes(func() func(string, bool) { return b.hooks().RoutesChanged })
	b.routing = &routingHook{b: b}
	b.order = newQueueOrder()
	b.remotePool.New = b.newRemoteClient
	return b, nil
}

// Start loads the replicated state (ACL rules, bans, retained messages),
// restores persistent sessions, and opens the listeners. The store need
// not have a leader yet: everything is read from the local state.
func (b *Broker) Start(ctx context.Context) (err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started || b.closed {
		return errors.New("broker: already started or closed")
	}
	b.started = true
	defer func() {
		if err != nil {
			b.abort()
		}
	}()

	b.users = newUserCache(b.st, b.opts.UserCacheSize)
	b.st.OnChange(b.users.onChange)

	b.acl = newACLSet(b.componentLog("authz"), b.opts.AuthzNoMatch == "allow")
	b.bans = newBanSet(b.componentLog("banned"))
	b.retained = newRetainedSync(b.server, b.st, b.componentLog("retained"),
		b.opts.RetainedBatchWindow, b.opts.MaxMessageExpiry)
	b.banned = &bannedHook{server: b.server, bans: b.bans}
	b.bans.added = func(bans []*store.Ban) { go b.banned.kick(bans) }

	b.mirrors = []*mirror{
		newMirror(b.st, store.TableACL, b.log, b.acl.apply, b.acl.load),
		newMirror(b.st, store.TableBanned, b.log, b.bans.apply, b.bans.load),
		newMirror(b.st, store.TableRetained, b.log, b.retained.apply, b.retained.load),
		newMirror(b.st, store.TableConfig, b.log, b.idType.apply, b.idType.load), // authn.user_id_type
	}
	for _, m := range b.mirrors {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := m.start(); err != nil {
			return fmt.Errorf("broker: %w", err)
		}
	}

	if b.opts.SessionsPath != "" {
		s, err := openSessionStore(b.opts.SessionsPath, b.server, b.order, b.componentLog("sessions"),
			b.opts.SessionFlushInterval)
		if err != nil {
			return fmt.Errorf("broker: %w", err)
		}
		s.resumes = &b.resumes
		b.sessions = s
	} else {
		b.log.Warn("no sessions path: persistent sessions will not survive a restart")
	}

	if !b.opts.AuthnEnable {
		b.log.Warn("authentication is disabled: any client may connect")
	}
	hooks := []mqtt.Hook{
		&b.qos, // first: counts every packet mochi counts, before any hook refuses one
		b.banned,
		&authnHook{server: b.server, users: b.users, enable: b.opts.AuthnEnable, idType: b.idType},
	}
	// Before authz: it waits before mochi queues a message to a client,
	// and leaves the decision to authz.
	if probe, err := newOutboundProbe(); err != nil {
		b.log.Error("publishers are not paced to slow client writers; bursts may be dropped", "err", err)
	} else {
		hooks = append(hooks, &paceHook{b: b, probe: probe})
	}
	hooks = append(hooks,
		&authzHook{acl: b.acl},
		b.retained,
		// Before routing, which delivers the messages of a session moved
		// from another node once this one has released the connection's
		// deliveries (OnSessionEstablished); before sessions, which
		// stores the order with each message.
		&orderHook{b: b},
		// After authz (forwards only authorised publishes, sees denied
		// subscriptions as failed), before sessions (which persists the
		// subscriptions as routing restores them in OnSubscribed).
		b.routing,
		&dropHook{b: b},
	)
	if b.sessions != nil {
		hooks = append(hooks, b.sessions)
	}
	for _, h := range hooks {
		if err := b.server.AddHook(h, nil); err != nil {
			return fmt.Errorf("broker: add hook %s: %w", h.ID(), err)
		}
	}

	for _, l := range b.listeners {
		if err := b.server.AddListener(l); err != nil {
			return fmt.Errorf("broker: %w", err)
		}
	}
	b.running.Store(true)
	if err := b.server.Serve(); err != nil { // restores sessions, then accepts clients
		b.running.Store(false)
		return fmt.Errorf("broker: start mqtt server: %w", err)
	}
	b.addRestoredRoutes()

	b.wg.Add(2)
	go func() { defer b.wg.Done(); b.retained.run() }()
	go func() { defer b.wg.Done(); b.housekeeping() }()

	for _, l := range b.listeners {
		b.log.Info("listening", "listener", l.ID(), "type", l.Protocol(), "addr", l.Address())
	}
	return nil
}

// addRestoredRoutes counts the subscriptions of the sessions mochi
// restored at start (it puts them in its topic index without a hook).
// Clients may already connect: mochi changes a client's subscriptions
// before it calls the hook, which waits for the scan, so a concurrent
// subscribe or unsubscribe comes out right.
func (b *Broker) addRestoredRoutes() {
	b.routes.addScanned(func() []routePair {
		var pairs []routePair
		for id, cl := range b.server.Clients.GetAll() {
			for f := range cl.State.Subscriptions.GetAll() {
				pairs = append(pairs, routePair{id, f})
			}
		}
		return pairs
	})
}

// abort undoes a failed Start.
func (b *Broker) abort() {
	for _, m := range b.mirrors {
		m.stop()
	}
	for _, l := range b.listeners {
		l.Close(func(string) {})
	}
	if b.sessions != nil {
		_ = b.sessions.close()
		b.sessions = nil
	}
	b.closed = true
	b.cancel()
}

// housekeeping runs the periodic jobs: deleting expired bans and retained
// messages (on the leader) and expiring MQTT 3.1.1 sessions.
func (b *Broker) housekeeping() {
	cleanup := time.NewTicker(b.opts.CleanupInterval)
	defer cleanup.Stop()
	var v3 <-chan time.Time
	if b.sessions != nil && b.opts.SessionExpiryV3 < b.opts.MaxSessionExpiry {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		v3 = t.C
	}
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-cleanup.C:
			leader := b.st.IsLeader()
			if leader {
				cleanExpiredBans(b.ctx, b.st, b.bans, b.componentLog("banned"))
			}
			b.retained.cleanExpired(b.ctx, leader)
		case <-v3:
			b.sessions.expireV3Sessions(b.opts.SessionExpiryV3)
		}
	}
}

// Close stops the listeners and disconnects every client, commits pending
// retained writes (the store must still be open) and session changes, and
// closes the sessions db.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if !b.started {
		b.cancel()
		return nil
	}
	b.running.Store(false)
	_ = b.server.Close()     // listeners, clients (their hooks run before it returns)
	b.queues.flushers.Wait() // the last bytes to clients, at most closeFlushWait
	b.retained.stop(10 * time.Second)
	b.cancel()
	b.wg.Wait()
	b.bgMu.Lock()
	b.bgClosed = true
	b.bgMu.Unlock()
	b.bgWG.Wait()
	for _, m := range b.mirrors {
		m.stop()
	}
	var err error
	if b.sessions != nil {
		err = b.sessions.close()
	}
	b.log.Info("broker stopped")
	return err
}

// ErrNoSessions is returned by WriteSessionsTo when sessions are not
// persisted (no SessionsPath) or the broker is not running.
var ErrNoSessions = errors.New("broker: no sessions db")

// WriteSessionsTo writes a consistent copy of the sessions db (a bbolt
// file, pending changes included) to w, while the broker runs: for node
// backups.
func (b *Broker) WriteSessionsTo(w io.Writer) (int64, error) {
	b.mu.Lock()
	s := b.sessions
	running := b.started && !b.closed
	b.mu.Unlock()
	if s == nil || !running {
		return 0, ErrNoSessions
	}
	n, err := s.writeTo(w)
	if err != nil {
		return n, fmt.Errorf("broker: copy sessions db: %w", err)
	}
	return n, nil
}

// UserIDType is what authenticates a CONNECT now: username, clientid or
// both. override says it is the cluster's config override
// (authn.user_id_type in the config table) rather than the node's
// config (Options.AuthnUserIDType).
func (b *Broker) UserIDType() (value string, override bool) { return b.idType.get() }

// DefaultUserKind is the kind of a user created without one (the API,
// roost ctl users): the user id type, or username when it is both.
func (b *Broker) DefaultUserKind() string {
	if v, _ := b.idType.get(); v == UserIDClientID {
		return store.KindClientID
	}
	return store.KindUsername
}

// Addrs returns the bound address of each listener by name (the actual
// port when the configured one was 0). Valid after Start.
func (b *Broker) Addrs() map[string]net.Addr {
	out := make(map[string]net.Addr, len(b.listeners))
	for _, l := range b.listeners {
		if l.ln != nil {
			out[l.ID()] = l.ln.Addr()
		}
	}
	return out
}

var _ io.Closer = (*Broker)(nil)

// disconnectListenerClients sends the clients of a listener that is
// closing a DISCONNECT (MQTT 5, server shutting down) and stops them. It
// stands in for mochi's closeListenerClients, whose Clients.GetByListener
// takes the clients' read lock twice and so deadlocks with a client
// being added or removed meanwhile (a writer waiting between the two).
func (b *Broker) disconnectListenerClients(listener string) {
	for _, cl := range b.server.Clients.GetAll() {
		if cl.Net.Listener == listener && !cl.Closed() {
			_ = b.server.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}
