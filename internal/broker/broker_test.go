package broker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/roostmq/roost/internal/broker/authn"
	"github.com/roostmq/roost/internal/store"
)

// Test harness: a real store in a temp dir and a real broker on loopback
// ports, driven by real MQTT clients (paho.golang for MQTT 5,
// paho.mqtt.golang for 3.1.1).

const waitFor = 10 * time.Second

func testLogger() *slog.Logger {
	if os.Getenv("ROOST_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type node struct {
	t    *testing.T
	dir  string
	opts Options
	st   *store.Store
	b    *Broker
	// cluster, if set, is given to every broker started on the node;
	// onNew sees each broker before it starts.
	cluster *ClusterHooks
	onNew   func(*Broker)
}

// startNode opens a store in dir and a broker on it with one TCP
// listener on 127.0.0.1:0; mod adjusts the options.
func startNode(t *testing.T, dir string, mod func(*Options)) *node {
	t.Helper()
	return startClusterNode(t, dir, nil, mod)
}

// startClusterNode is startNode with cluster hooks.
func startClusterNode(t *testing.T, dir string, hooks *ClusterHooks, mod func(*Options)) *node {
	t.Helper()
	n := &node{t: t, dir: dir, cluster: hooks}
	n.opts = Options{
		Listeners:       []ListenerOptions{{Name: "tcp", Type: ListenerTCP, Bind: "127.0.0.1:0"}},
		SessionsPath:    filepath.Join(dir, "sessions.db"),
		AuthnEnable:     true,
		CleanupInterval: 100 * time.Millisecond,
		Logger:          testLogger(),
	}
	if mod != nil {
		mod(&n.opts)
	}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *node) start() {
	n.t.Helper()
	st, err := store.Open(store.Options{Dir: n.dir, NodeID: "n1", Advertise: "n1", Bootstrap: true,
		Logger: n.opts.Logger})
	if err != nil {
		n.t.Fatalf("open store: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := st.WaitLeader(ctx); err != nil {
		st.Close()
		n.t.Fatal(err)
	}
	opts := n.opts
	opts.Store = st
	opts.Listeners = append([]ListenerOptions(nil), n.opts.Listeners...)
	b, err := New(opts)
	if err != nil {
		st.Close()
		n.t.Fatalf("new broker: %v", err)
	}
	if n.cluster != nil {
		b.SetClusterHooks(*n.cluster)
	}
	if n.onNew != nil {
		n.onNew(b)
	}
	if err := b.Start(ctx); err != nil {
		st.Close()
		n.t.Fatalf("start broker: %v", err)
	}
	n.st, n.b = st, b
}

func (n *node) stop() {
	if n.b == nil {
		return
	}
	if err := n.b.Close(); err != nil {
		n.t.Errorf("close broker: %v", err)
	}
	if err := n.st.Close(); err != nil {
		n.t.Errorf("close store: %v", err)
	}
	n.b, n.st = nil, nil
}

// restart closes broker and store and opens both again on the same dir.
func (n *node) restart() {
	n.t.Helper()
	n.stop()
	n.start()
}

func (n *node) addr(name string) string {
	n.t.Helper()
	a, ok := n.b.Addrs()[name]
	if !ok {
		n.t.Fatalf("no listener %q", name)
	}
	return a.String()
}

func (n *node) tcp() string { return n.addr("tcp") }

func (n *node) apply(ops ...store.Op) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := n.st.Apply(ctx, ops...); err != nil {
		n.t.Fatalf("store apply: %v", err)
	}
}

func mustOp(t *testing.T) func(store.Op, error) store.Op {
	return func(op store.Op, err error) store.Op {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return op
	}
}

func (n *node) addUser(kind, id, password string, p authn.HashParams, superuser bool) {
	n.t.Helper()
	u, err := authn.NewCredential(kind, id, password, p, superuser)
	if err != nil {
		n.t.Fatal(err)
	}
	n.apply(mustOp(n.t)(store.Put(store.TableUsers, store.UserKey(kind, id), u)))
}

func (n *node) addRule(kind, value, topic, action, permission string) {
	n.t.Helper()
	r := store.ACLRule{V: 1, Kind: kind, Value: value, Topic: topic, Action: action, Permission: permission}
	n.apply(mustOp(n.t)(store.Append(store.TableACL, r)))
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// --- MQTT 5 client (paho.golang) ---

type v5Client struct {
	t    *testing.T
	c    *paho.Client
	id   string
	msgs chan *paho.Publish
	mu   sync.Mutex
	seq  int
}

type v5Opts struct {
	user, pass    string
	noCreds       bool
	clean         bool
	sessionExpiry uint32
	will          *paho.WillMessage
	dial          func() (net.Conn, error)
	manualAck     bool                   // the test acknowledges messages (Ack)
	onDisconnect  func(*paho.Disconnect) // DISCONNECT from the broker
	msgBuffer     int                    // capacity of msgs; default 1000
}

// dialV5 connects an MQTT 5 client; on a refused CONNECT it returns the
// CONNACK and an error.
func dialV5(t *testing.T, addr, clientID string, o v5Opts) (*v5Client, *paho.Connack, error) {
	t.Helper()
	var conn net.Conn
	var err error
	if o.dial != nil {
		conn, err = o.dial()
	} else {
		conn, err = net.DialTimeout("tcp", addr, waitFor)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	if o.msgBuffer == 0 {
		o.msgBuffer = 1000
	}
	vc := &v5Client{t: t, id: clientID, msgs: make(chan *paho.Publish, o.msgBuffer)}
	vc.c = paho.NewClient(paho.ClientConfig{
		Conn:          conn,
		PacketTimeout: waitFor,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			vc.msgs <- pr.Packet
			return true, nil
		}},
		EnableManualAcknowledgment: o.manualAck,
		OnServerDisconnect:         o.onDisconnect,
	})
	cp := &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: o.clean, WillMessage: o.will}
	if !o.noCreds {
		cp.Username, cp.UsernameFlag = o.user, o.user != ""
		cp.Password, cp.PasswordFlag = []byte(o.pass), o.pass != ""
	}
	if o.sessionExpiry > 0 {
		se := o.sessionExpiry
		cp.Properties = &paho.ConnectProperties{SessionExpiryInterval: &se}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ca, err := vc.c.Connect(ctx, cp)
	if err != nil {
		return nil, ca, err
	}
	t.Cleanup(func() { vc.close() })
	return vc, ca, nil
}

// mustV5 connects with a clean start and fails the test on refusal.
func mustV5(t *testing.T, addr, clientID, user, pass string) *v5Client {
	t.Helper()
	c, ca, err := dialV5(t, addr, clientID, v5Opts{user: user, pass: pass, clean: true})
	if err != nil {
		code := -1
		if ca != nil {
			code = int(ca.ReasonCode)
		}
		t.Fatalf("connect %s: %v (reason 0x%02x)", clientID, err, code)
	}
	return c
}

func (c *v5Client) close() {
	_ = c.c.Disconnect(&paho.Disconnect{ReasonCode: 0})
	select {
	case <-c.c.Done():
	case <-time.After(waitFor):
	}
}

func (c *v5Client) sub(filter string, qos byte) (*paho.Suback, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	return c.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}})
}

func (c *v5Client) mustSub(filter string, qos byte) {
	c.t.Helper()
	if _, err := c.sub(filter, qos); err != nil {
		c.t.Fatalf("%s: subscribe %s: %v", c.id, filter, err)
	}
}

func (c *v5Client) pub(p *paho.Publish) (*paho.PublishResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	return c.c.Publish(ctx, p)
}

func (c *v5Client) mustPub(topic, payload string, qos byte, retain bool) {
	c.t.Helper()
	if _, err := c.pub(&paho.Publish{Topic: topic, Payload: []byte(payload), QoS: qos, Retain: retain}); err != nil {
		c.t.Fatalf("%s: publish %s: %v", c.id, topic, err)
	}
}

// next waits for the next message.
func (c *v5Client) next() *paho.Publish {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitFor):
		c.t.Fatalf("%s: no message within %s", c.id, waitFor)
		return nil
	}
}

// until reads messages until one on topic arrives and fails the test if
// a message on a topic in unwanted arrives first.
func (c *v5Client) until(topic string, unwanted ...string) *paho.Publish {
	c.t.Helper()
	for {
		m := c.next()
		if m.Topic == topic {
			return m
		}
		for _, u := range unwanted {
			if m.Topic == u {
				c.t.Fatalf("%s: received %s (%q), which should have been dropped", c.id, m.Topic, m.Payload)
			}
		}
	}
}

// sync makes everything the broker queued for this client before now
// arrive, and returns it: it subscribes to a private marker topic,
// publishes to it and collects messages until the marker comes back.
func (c *v5Client) sync() []*paho.Publish {
	c.t.Helper()
	c.mu.Lock()
	c.seq++
	marker := fmt.Sprintf("marker/%s/%d", c.id, c.seq)
	c.mu.Unlock()
	c.mustSub(marker, 0)
	c.mustPub(marker, "m", 0, false)
	var got []*paho.Publish
	for {
		m := c.next()
		if m.Topic == marker {
			return got
		}
		got = append(got, m)
	}
}

// --- MQTT 3.1.1 client (paho.mqtt.golang) ---

type v3Client struct {
	t    *testing.T
	c    pahov3.Client
	id   string
	msgs chan pahov3.Message
}

// dialV3 connects an MQTT 3.1.1 client and returns the CONNACK return code.
func dialV3(t *testing.T, url, clientID, user, pass string, clean bool, tweak func(*pahov3.ClientOptions)) (*v3Client, byte, error) {
	t.Helper()
	vc := &v3Client{t: t, id: clientID, msgs: make(chan pahov3.Message, 1000)}
	o := pahov3.NewClientOptions().AddBroker(url).SetClientID(clientID).SetUsername(user).SetPassword(pass).
		SetCleanSession(clean).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(waitFor).SetOrderMatters(false).SetKeepAlive(30 * time.Second).
		SetDefaultPublishHandler(func(_ pahov3.Client, m pahov3.Message) { vc.msgs <- m })
	if tweak != nil {
		tweak(o)
	}
	vc.c = pahov3.NewClient(o)
	tok := vc.c.Connect()
	if !tok.WaitTimeout(waitFor) {
		t.Fatalf("v3 connect %s: timeout", clientID)
	}
	code := tok.(*pahov3.ConnectToken).ReturnCode()
	if err := tok.Error(); err != nil {
		return nil, code, err
	}
	t.Cleanup(func() { vc.c.Disconnect(100) })
	return vc, code, nil
}

func mustV3(t *testing.T, addr, clientID, user, pass string) *v3Client {
	t.Helper()
	c, code, err := dialV3(t, "tcp://"+addr, clientID, user, pass, true, nil)
	if err != nil {
		t.Fatalf("v3 connect %s: %v (code %d)", clientID, err, code)
	}
	return c
}

// sub subscribes and returns the granted code (0x80: refused).
func (c *v3Client) sub(filter string, qos byte) byte {
	c.t.Helper()
	tok := c.c.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(waitFor) {
		c.t.Fatalf("%s: subscribe %s: timeout", c.id, filter)
	}
	return tok.(*pahov3.SubscribeToken).Result()[filter]
}

func (c *v3Client) pub(topic, payload string, qos byte, retain bool) error {
	tok := c.c.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(waitFor) {
		return fmt.Errorf("%s: publish %s: timeout", c.id, topic)
	}
	return tok.Error()
}

func (c *v3Client) next() pahov3.Message {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitFor):
		c.t.Fatalf("%s: no message within %s", c.id, waitFor)
		return nil
	}
}

// --- tests of the broker's life cycle ---

func TestStartAddrsMetricsClose(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	addr := n.tcp()
	if _, port, _ := net.SplitHostPort(addr); port == "0" {
		t.Fatalf("Addrs returned the configured port 0: %s", addr)
	}
	sub := mustV5(t, addr, "m-sub", "", "")
	sub.mustSub("m/#", 1)
	pub := mustV3(t, addr, "m-pub", "", "")
	if err := pub.pub("m/1", "x", 1, true); err != nil {
		t.Fatal(err)
	}
	if m := sub.next(); string(m.Payload) != "x" {
		t.Fatalf("got %q", m.Payload)
	}
	eventually(t, "metrics", func() bool {
		m := n.b.Metrics()
		return m.Connections == 2 && m.Subscriptions >= 1 && m.MessagesReceived >= 1 &&
			m.MessagesSent >= 1 && m.Retained == 1 && m.BytesReceived > 0 && m.BytesSent > 0
	})

	// Close disconnects clients and is idempotent.
	n.stop()
	select {
	case <-sub.c.Done():
	case <-time.After(waitFor):
		t.Fatal("client still connected after Close")
	}
}

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	st := &store.Store{}
	bad := []Options{
		{},
		{Store: st, AuthnUserIDType: "email"},
		{Store: st, AuthzNoMatch: "maybe"},
		{Store: st, Listeners: []ListenerOptions{{Type: "quic", Bind: ":1"}}},
		{Store: st, Listeners: []ListenerOptions{{Type: ListenerTCP, Bind: "nope"}}},
		{Store: st, Listeners: []ListenerOptions{{Type: ListenerSSL, Bind: ":1"}}},
		{Store: st, Listeners: []ListenerOptions{{Name: "a", Type: ListenerTCP, Bind: ":1"}, {Name: "a", Type: ListenerWS, Bind: ":2"}}},
		{Store: st, MaxInflight: 70000},
	}
	for i, o := range bad {
		if _, err := New(o); err == nil {
			t.Errorf("options %d: want an error", i)
		}
	}
}
