package broker

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/roostmq/roost/internal/store"
)

// clusterRecorder is a stand-in for the cluster package: it records what
// the broker hands it and, when peer is set, delivers forwarded messages
// to another broker and takes sessions over from it.
type clusterRecorder struct {
	t *testing.T

	mu     sync.Mutex
	fwd    []Message
	routes []string               // "+filter" / "-filter", in order
	skip   func(Message) []string // Forward's answer

	self atomic.Pointer[Broker] // for the RoutesChanged contract check
	peer atomic.Pointer[Broker]
}

func newRecorder(t *testing.T) *clusterRecorder { return &clusterRecorder{t: t} }

func (r *clusterRecorder) hooks() *ClusterHooks {
	return &ClusterHooks{
		Forward: func(m Message) []string {
			r.mu.Lock()
			r.fwd = append(r.fwd, m)
			skip := r.skip
			r.mu.Unlock()
			if p := r.peer.Load(); p != nil {
				p.DeliverRemote(m, nil)
			}
			if skip != nil {
				return skip(m)
			}
			return nil
		},
		RoutesChanged: func(f string, added bool) {
			// The contract: the change is visible when we hear of it.
			if self := r.self.Load(); self != nil && slices.Contains(self.LocalFilters(), f) != added {
				r.t.Errorf("RoutesChanged(%q, %v) called before LocalFilters shows it", f, added)
			}
			sign := "-"
			if added {
				sign = "+"
			}
			r.mu.Lock()
			r.routes = append(r.routes, sign+f)
			r.mu.Unlock()
		},
		Takeover: func(_ context.Context, id string, clean bool) (*Session, error) {
			if p := r.peer.Load(); p != nil {
				s, _ := p.TakeoverLocal(id, clean)
				return s, nil
			}
			return nil, nil
		},
	}
}

func (r *clusterRecorder) forwarded() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.fwd)
}

func (r *clusterRecorder) forwardedOn(prefix string) []Message {
	var out []Message
	for _, m := range r.forwarded() {
		if strings.HasPrefix(m.Topic, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// routeEvents returns the route events about filters starting with
// prefix.
func (r *clusterRecorder) routeEvents(prefix string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.routes {
		if strings.HasPrefix(e[1:], prefix) {
			out = append(out, e)
		}
	}
	return out
}

// clusterNode starts a node (authentication off) wired to a recorder.
func clusterNode(t *testing.T, dir string, r *clusterRecorder, mod func(*Options)) *node {
	t.Helper()
	n := &node{t: t, dir: dir, cluster: r.hooks(), onNew: func(b *Broker) { r.self.Store(b) }}
	n.opts = Options{
		Listeners:       []ListenerOptions{{Name: "tcp", Type: ListenerTCP, Bind: "127.0.0.1:0"}},
		SessionsPath:    dir + "/sessions.db",
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

func (n *node) sessionKnown(id string) bool {
	s := n.b.sessions
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.known[id]
	return ok
}

func userProps(m *paho.Publish) string {
	if m.Properties == nil {
		return ""
	}
	var parts []string
	for _, u := range m.Properties.User {
		parts = append(parts, u.Key+"="+u.Value)
	}
	return strings.Join(parts, ",")
}

func (c *v5Client) subWith(opts ...paho.SubscribeOptions) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	sa, err := c.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: opts})
	if err != nil {
		c.t.Fatalf("%s: subscribe: %v", c.id, err)
	}
	for i, code := range sa.Reasons {
		if code >= 0x80 {
			c.t.Fatalf("%s: subscribe %s refused: 0x%02x", c.id, opts[i].Topic, code)
		}
	}
}

func (c *v5Client) unsub(filters ...string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := c.c.Unsubscribe(ctx, &paho.Unsubscribe{Topics: filters}); err != nil {
		c.t.Fatalf("%s: unsubscribe: %v", c.id, err)
	}
}

// nothingOn checks that the client got no message on a topic starting
// with prefix up to now.
func (c *v5Client) nothingOn(prefix string) {
	c.t.Helper()
	for _, m := range c.sync() {
		if strings.HasPrefix(m.Topic, prefix) {
			c.t.Fatalf("%s: unexpected message on %s (%q)", c.id, m.Topic, m.Payload)
		}
	}
}

// Forward gets every message a local client publishes, once, with its
// properties, before local delivery; not denied ones, not messages from
// other nodes, not $SYS; will messages too.
func TestForwardOncePerPublish(t *testing.T) {
	t.Parallel()
	r := newRecorder(t)
	n := clusterNode(t, t.TempDir(), r, nil)
	n.addRule(store.KindAll, "", "denied/#", "publish", "deny")

	sub := mustV5(t, n.tcp(), "f-sub", "", "")
	sub.mustSub("f/#", 2)
	pub := mustV5(t, n.tcp(), "f-pub", "", "")
	pf, exp := byte(1), uint32(60)
	before := time.Now().Add(-time.Second)
	if _, err := pub.pub(&paho.Publish{Topic: "f/0", Payload: []byte("zero"), QoS: 0,
		Properties: &paho.PublishProperties{PayloadFormat: &pf, MessageExpiry: &exp, ContentType: "text/plain",
			ResponseTopic: "f/reply", CorrelationData: []byte{1, 2, 3},
			User: paho.UserProperties{{Key: "k", Value: "v1"}, {Key: "k", Value: "v2"}}}}); err != nil {
		t.Fatal(err)
	}
	pub.mustPub("f/1", "one", 1, true)
	pub.mustPub("f/2", "two", 2, false)
	if _, err := pub.pub(&paho.Publish{Topic: "denied/x", Payload: []byte("no"), QoS: 1}); err == nil {
		t.Log("denied publish acknowledged (expected a 0x87 PUBACK)")
	}
	for _, want := range []string{"f/0", "f/1", "f/2"} {
		sub.until(want)
	}

	got := r.forwardedOn("f/")
	if len(got) != 3 {
		t.Fatalf("forwarded %d messages on f/, want 3: %+v", len(got), got)
	}
	m := got[0]
	if m.Topic != "f/0" || string(m.Payload) != "zero" || m.QoS != 0 || m.Retain || m.From != "f-pub" ||
		m.PayloadFormat == nil || *m.PayloadFormat != 1 || m.MessageExpiry != 60 || m.ContentType != "text/plain" ||
		m.ResponseTopic != "f/reply" || !bytes.Equal(m.CorrelationData, []byte{1, 2, 3}) ||
		len(m.UserProperties) != 2 || m.UserProperties[1] != (store.UserProperty{Key: "k", Val: "v2"}) ||
		m.Created.Before(before) || m.Created.After(time.Now()) {
		t.Errorf("forwarded f/0 = %+v", m)
	}
	if m := got[1]; m.Topic != "f/1" || m.QoS != 1 || !m.Retain || m.PayloadFormat != nil || m.MessageExpiry != 0 {
		t.Errorf("forwarded f/1 = %+v", m)
	}
	if m := got[2]; m.Topic != "f/2" || m.QoS != 2 || m.Retain {
		t.Errorf("forwarded f/2 = %+v", m)
	}
	if d := r.forwardedOn("denied/"); len(d) != 0 {
		t.Errorf("a denied publish was forwarded: %+v", d)
	}

	// A message from another node reaches the local subscriber and is
	// not forwarded again.
	n.b.DeliverRemote(Message{Topic: "f/remote", Payload: []byte("r"), QoS: 1, From: "elsewhere",
		Created: time.Now()}, nil)
	if m := sub.until("f/remote"); string(m.Payload) != "r" {
		t.Errorf("remote message payload %q", m.Payload)
	}

	// A will message is forwarded once.
	var raw net.Conn
	_, _, err := dialV5(t, n.tcp(), "f-will", v5Opts{clean: true,
		will: &paho.WillMessage{Topic: "f/will", Payload: []byte("gone"), QoS: 1},
		dial: func() (net.Conn, error) {
			c, err := net.Dial("tcp", n.tcp())
			raw = c
			return c, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	raw.Close() // no DISCONNECT: the will goes out
	sub.until("f/will")

	// $SYS topics (published every second) are never forwarded.
	time.Sleep(1100 * time.Millisecond)
	sub.sync()
	got = r.forwarded()
	var topics []string
	for _, m := range got {
		if strings.HasPrefix(m.Topic, "f/") {
			topics = append(topics, m.Topic)
		}
		if strings.HasPrefix(m.Topic, "$") {
			t.Errorf("forwarded %s", m.Topic)
		}
	}
	if want := []string{"f/0", "f/1", "f/2", "f/will"}; !slices.Equal(topics, want) {
		t.Errorf("forwarded %v, want %v (no remote message, each once)", topics, want)
	}
	if w := r.forwardedOn("f/will"); len(w) != 1 || w[0].From != "f-will" || w[0].QoS != 1 {
		t.Errorf("forwarded will: %+v", w)
	}
}

// DeliverRemote: QoS downgrade, retain as published, properties, expiry,
// offline sessions; no retained store write, no forward.
func TestDeliverRemote(t *testing.T) {
	t.Parallel()
	r := newRecorder(t)
	n := clusterNode(t, t.TempDir(), r, nil)

	rap := mustV5(t, n.tcp(), "d-rap", "", "")
	rap.subWith(paho.SubscribeOptions{Topic: "d/#", QoS: 1, RetainAsPublished: true})
	plain := mustV5(t, n.tcp(), "d-plain", "", "")
	plain.mustSub("d/#", 0)
	v3 := mustV3(t, n.tcp(), "d-v3", "", "")
	if code := v3.sub("d/#", 2); code != 2 {
		t.Fatalf("v3 subscribe: %d", code)
	}
	off, _, err := dialV5(t, n.tcp(), "d-off", v5Opts{sessionExpiry: 3600})
	if err != nil {
		t.Fatal(err)
	}
	off.mustSub("d/#", 1)
	off.close()

	pf := byte(1)
	received := n.b.Metrics().MessagesReceived
	n.b.DeliverRemote(Message{Topic: "d/1", Payload: []byte("hello"), QoS: 1, Retain: true, PayloadFormat: &pf,
		MessageExpiry: 60, ContentType: "text/plain", ResponseTopic: "d/reply", CorrelationData: []byte("cd"),
		UserProperties: []store.UserProperty{{Key: "a", Val: "1"}, {Key: "b", Val: "2"}},
		From:           "other-node-client", Created: time.Now().Add(-2 * time.Second)}, nil)

	check := func(who string, m *paho.Publish, qos byte, retain bool) {
		t.Helper()
		p := m.Properties
		if string(m.Payload) != "hello" || m.QoS != qos || m.Retain != retain || p == nil ||
			p.ContentType != "text/plain" || p.ResponseTopic != "d/reply" || string(p.CorrelationData) != "cd" ||
			p.PayloadFormat == nil || *p.PayloadFormat != 1 || p.MessageExpiry == nil ||
			*p.MessageExpiry > 59 || *p.MessageExpiry < 55 || userProps(m) != "a=1,b=2" {
			t.Errorf("%s got qos %d retain %v %q props %+v (expiry %v)", who, m.QoS, m.Retain, m.Payload, p,
				func() any {
					if p != nil && p.MessageExpiry != nil {
						return *p.MessageExpiry
					}
					return nil
				}())
		}
	}
	check("retain-as-published subscriber", rap.until("d/1"), 1, true)
	check("plain subscriber", plain.until("d/1"), 0, false)
	if m := v3.next(); m.Topic() != "d/1" || m.Qos() != 1 || m.Retained() || string(m.Payload()) != "hello" {
		t.Errorf("v3 got %s qos %d retained %v", m.Topic(), m.Qos(), m.Retained())
	}
	if m := n.b.Metrics(); m.MessagesReceived != received {
		t.Errorf("messages received %d → %d: a remote delivery counted as a client publish", received, m.MessagesReceived)
	}

	// Expired on arrival: dropped.
	n.b.DeliverRemote(Message{Topic: "d/expired", Payload: []byte("x"), QoS: 1, MessageExpiry: 5,
		Created: time.Now().Add(-10 * time.Second)}, nil)
	plain.nothingOn("d/expired")

	// The offline session got it queued.
	off, ca, err := dialV5(t, n.tcp(), "d-off", v5Opts{sessionExpiry: 3600})
	if err != nil || !ca.SessionPresent {
		t.Fatalf("reconnect: %v, session present %v", err, ca != nil && ca.SessionPresent)
	}
	if m := off.until("d/1"); m.QoS != 1 || m.Retain {
		t.Errorf("queued: qos %d retain %v", m.QoS, m.Retain)
	}

	// Nothing retained, nothing forwarded.
	time.Sleep(50 * time.Millisecond) // several retained batch windows
	if _, ok := n.storedRetained("d/1"); ok {
		t.Error("a message from another node was written to the retained store")
	}
	if got := retainedOn(t, n, "d/#"); len(got) != 0 {
		t.Errorf("a message from another node is in the retained tree: %v", got[0].Topic)
	}
	if f := r.forwardedOn("d/"); len(f) != 0 {
		t.Errorf("forwarded %d messages from another node", len(f))
	}
}

// Shared subscriptions: DeliverRemote serves only the listed groups (one
// member each); a local publish skips the groups Forward names.
func TestSharedSubscriptionsAcrossNodes(t *testing.T) {
	t.Parallel()
	r := newRecorder(t)
	n := clusterNode(t, t.TempDir(), r, nil)
	g1 := mustV5(t, n.tcp(), "s-g1", "", "")
	g1.mustSub("$share/g/s/#", 1)
	g2 := mustV5(t, n.tcp(), "s-g2", "", "")
	g2.mustSub("$share/g/s/#", 1)
	h1 := mustV5(t, n.tcp(), "s-h1", "", "")
	h1.mustSub("$share/h/s/#", 1)
	p := mustV5(t, n.tcp(), "s-p", "", "")
	p.mustSub("s/#", 1)

	lf := n.b.LocalFilters()
	for _, want := range []string{"$share/g/s/#", "$share/h/s/#", "s/#"} {
		if !slices.Contains(lf, want) {
			t.Errorf("LocalFilters %v lacks %s", lf, want)
		}
	}

	count := func(c *v5Client, topic string) int {
		k := 0
		for _, m := range c.sync() {
			if m.Topic == topic {
				k++
			}
		}
		return k
	}
	for i := range 4 {
		topic := fmt.Sprintf("s/remote/%d", i)
		n.b.DeliverRemote(Message{Topic: topic, Payload: []byte("x"), QoS: 1, Created: time.Now()},
			[]string{"$share/g/s/#"})
		if k := count(g1, topic) + count(g2, topic); k != 1 {
			t.Errorf("%s: group g got it %d times, want once", topic, k)
		}
		if k := count(h1, topic); k != 0 {
			t.Errorf("%s: group h (not listed) got it", topic)
		}
		if k := count(p, topic); k != 1 {
			t.Errorf("%s: plain subscriber got it %d times", topic, k)
		}
	}

	// Another node serves group g for local publishes.
	r.mu.Lock()
	r.skip = func(Message) []string { return []string{"$share/g/s/#"} }
	r.mu.Unlock()
	pub := mustV5(t, n.tcp(), "s-pub", "", "")
	pub.mustPub("s/local", "y", 1, false)
	// mochi acknowledges before it delivers: wait for the deliveries.
	h1.until("s/local")
	p.until("s/local")
	if k := count(g1, "s/local") + count(g2, "s/local"); k != 0 {
		t.Errorf("group g, served elsewhere, got the local message %d times", k)
	}
	if k := count(h1, "s/local"); k != 0 {
		t.Errorf("group h got the local message %d more times", k)
	}
	if k := count(p, "s/local"); k != 0 {
		t.Errorf("plain subscriber got the local message %d more times", k)
	}
}

// TakeoverLocal disconnects a connected MQTT 5 client with 0x8E and hands
// over its subscriptions and unacknowledged messages; an offline session
// is handed over and removed the same way.
func TestTakeoverLocal(t *testing.T) {
	t.Parallel()
	r := newRecorder(t)
	n := clusterNode(t, t.TempDir(), r, nil)

	if s, found := n.b.TakeoverLocal("nobody", false); found || s != nil {
		t.Fatalf("TakeoverLocal of an unknown client: %v %v", s, found)
	}

	reason := make(chan byte, 1)
	c, _, err := dialV5(t, n.tcp(), "tk", v5Opts{sessionExpiry: 3600, manualAck: true,
		onDisconnect: func(d *paho.Disconnect) { reason <- d.ReasonCode }})
	if err != nil {
		t.Fatal(err)
	}
	c.subWith(paho.SubscribeOptions{Topic: "tk/a", QoS: 1, NoLocal: true},
		paho.SubscribeOptions{Topic: "tk/b/#", QoS: 2, RetainAsPublished: true, RetainHandling: 1})
	pub := mustV5(t, n.tcp(), "tk-pub", "", "")
	for i := range 3 {
		pub.mustPub("tk/a", fmt.Sprint(i), 1, false)
	}
	for range 3 {
		c.next() // received, never acknowledged
	}

	s, found := n.b.TakeoverLocal("tk", false)
	if !found || s == nil {
		t.Fatalf("TakeoverLocal: %v %v", s, found)
	}
	select {
	case code := <-reason:
		if code != 0x8E {
			t.Errorf("DISCONNECT reason 0x%02x, want 0x8E", code)
		}
	case <-time.After(waitFor):
		t.Fatal("the client got no DISCONNECT")
	}
	want := []Subscription{{Filter: "tk/a", QoS: 1, NoLocal: true},
		{Filter: "tk/b/#", QoS: 2, RetainAsPublished: true, RetainHandling: 1}}
	if s.ClientID != "tk" || s.ExpiryInterval != 3600 || !slices.Equal(s.Subscriptions, want) {
		t.Errorf("session %+v, want subscriptions %+v", s, want)
	}
	var payloads []string
	for _, m := range s.Pending {
		payloads = append(payloads, string(m.Payload))
		if m.Topic != "tk/a" || m.QoS != 1 || m.From != "tk-pub" {
			t.Errorf("pending %+v", m)
		}
	}
	if !slices.Equal(payloads, []string{"0", "1", "2"}) {
		t.Errorf("pending payloads %v, want 0 1 2 in order", payloads)
	}
	// Gone from here.
	if _, ok := n.b.server.Clients.Get("tk"); ok {
		t.Error("the client is still known")
	}
	if lf := n.b.LocalFilters(); slices.Contains(lf, "tk/a") || slices.Contains(lf, "tk/b/#") {
		t.Errorf("LocalFilters still has the session's filters: %v", lf)
	}
	if n.sessionKnown("tk") {
		t.Error("the session is still in the sessions db")
	}
	if m := n.b.Metrics(); m.Inflight != 0 {
		t.Errorf("inflight %d after takeover", m.Inflight)
	}

	// An offline 3.1.1 session with queued messages.
	v3, _, err := dialV3(t, "tcp://"+n.tcp(), "tk3", "", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code := v3.sub("tk3/#", 1); code != 1 {
		t.Fatalf("subscribe: %d", code)
	}
	v3.c.Disconnect(100)
	eventually(t, "tk3 offline", func() bool {
		cl, ok := n.b.server.Clients.Get("tk3")
		return ok && cl.Closed()
	})
	for i := range 5 {
		pub.mustPub(fmt.Sprintf("tk3/%d", i), fmt.Sprint(i), 1, false)
	}
	// The session's own count: the inflight gauge also counts, for a
	// moment, each QoS 1 publish being acknowledged.
	eventually(t, "queued", func() bool {
		cl, ok := n.b.server.Clients.Get("tk3")
		return ok && cl.State.Inflight.Len() == 5
	})
	s, found = n.b.TakeoverLocal("tk3", false)
	if !found || s == nil || len(s.Subscriptions) != 1 || s.Subscriptions[0].Filter != "tk3/#" {
		t.Fatalf("offline takeover: %+v %v", s, found)
	}
	payloads = nil
	for _, m := range s.Pending {
		payloads = append(payloads, string(m.Payload))
	}
	if !slices.Equal(payloads, []string{"0", "1", "2", "3", "4"}) {
		t.Errorf("pending %v", payloads)
	}
	if s.ExpiryInterval == 0 {
		t.Error("3.1.1 persistent session handed over with expiry 0")
	}
	if _, ok := n.b.server.Clients.Get("tk3"); ok || n.sessionKnown("tk3") || n.b.Metrics().Inflight != 0 {
		t.Error("the offline session is still here")
	}

	// Clean start: disconnected, removed, no session returned.
	c2, _, err := dialV5(t, n.tcp(), "tk-clean", v5Opts{sessionExpiry: 3600})
	if err != nil {
		t.Fatal(err)
	}
	c2.mustSub("tkc/#", 1)
	if s, found := n.b.TakeoverLocal("tk-clean", true); !found || s != nil {
		t.Errorf("clean start takeover: %v %v", s, found)
	}
	select {
	case <-c2.c.Done():
	case <-time.After(waitFor):
		t.Error("clean-start takeover left the client connected")
	}
	if slices.Contains(n.b.LocalFilters(), "tkc/#") {
		t.Error("clean-start takeover left the route")
	}
}

// Routes: counted per filter over subscribe, unsubscribe, disconnect,
// session expiry, and sessions restored at start.
func TestRoutesRefcount(t *testing.T) {
	t.Parallel()
	r := newRecorder(t)
	n := clusterNode(t, t.TempDir(), r, nil)
	has := func(f string) bool { return slices.Contains(n.b.LocalFilters(), f) }
	events := func(want ...string) {
		t.Helper()
		if got := r.routeEvents("r/"); !slices.Equal(got, want) {
			t.Fatalf("route events %v, want %v", got, want)
		}
	}

	c1 := mustV5(t, n.tcp(), "r-c1", "", "")
	c1.mustSub("r/1", 1)
	events("+r/1")
	c2 := mustV5(t, n.tcp(), "r-c2", "", "")
	c2.mustSub("r/1", 0)
	c2.mustSub("r/1", 1) // again: no change
	events("+r/1")
	c1.unsub("r/1")
	events("+r/1")
	if !has("r/1") {
		t.Fatal("r/1 lost while c2 still subscribes")
	}
	c2.close() // clean session: its subscriptions go
	eventually(t, "r/1 removed", func() bool { return !has("r/1") })
	events("+r/1", "-r/1")

	// Shared subscriptions count in their $share form; mochi's $SHARE
	// spelling is the same route.
	c3 := mustV5(t, n.tcp(), "r-c3", "", "")
	c3.mustSub("$share/g/r/#", 1)
	c1.mustSub("$SHARE/g/r/#", 1)
	if r.routeEvents("$share/g/r/") == nil || !has("$share/g/r/#") || slices.Contains(n.b.LocalFilters(), "$SHARE/g/r/#") {
		t.Fatalf("shared route: events %v filters %v", r.routeEvents("$share/"), n.b.LocalFilters())
	}
	c3.unsub("$share/g/r/#")
	if !has("$share/g/r/#") {
		t.Fatal("shared route lost while c1 still subscribes")
	}
	c1.unsub("$SHARE/g/r/#")
	if has("$share/g/r/#") {
		t.Fatal("shared route kept after the last member left")
	}

	// A persistent session keeps its routes while offline, until it
	// expires.
	p, _, err := dialV5(t, n.tcp(), "r-p", v5Opts{sessionExpiry: 1})
	if err != nil {
		t.Fatal(err)
	}
	p.mustSub("r/p", 1)
	p.close()
	time.Sleep(200 * time.Millisecond)
	if !has("r/p") {
		t.Fatal("an offline persistent session lost its route")
	}
	eventually(t, "expired session's route removed", func() bool { return !has("r/p") })
	events("+r/1", "-r/1", "+r/p", "-r/p")

	// Sessions restored at start bring their routes.
	q, _, err := dialV5(t, n.tcp(), "r-q", v5Opts{sessionExpiry: 3600})
	if err != nil {
		t.Fatal(err)
	}
	q.mustSub("r/q/#", 1)
	q.close()
	n.restart()
	if !has("r/q/#") {
		t.Fatalf("restored session's route missing: %v", n.b.LocalFilters())
	}
	events("+r/1", "-r/1", "+r/p", "-r/p", "+r/q/#", "+r/q/#")
	// ...and lose them like any other.
	q, _, err = dialV5(t, n.tcp(), "r-q", v5Opts{clean: true})
	if err != nil {
		t.Fatal(err)
	}
	if has("r/q/#") {
		t.Fatal("clean start kept the old session's route")
	}
	q.close()
}

// Two brokers wired through their hooks, as the cluster package does:
// messages cross once in each direction, and a client moving from one to
// the other takes its session along.
func TestTwoBrokersWired(t *testing.T) {
	t.Parallel()
	ra, rb := newRecorder(t), newRecorder(t)
	a := clusterNode(t, t.TempDir(), ra, nil)
	b := clusterNode(t, t.TempDir(), rb, nil)
	ra.peer.Store(b.b)
	rb.peer.Store(a.b)

	// Publish on A, subscribers on both.
	sa := mustV5(t, a.tcp(), "w-sa", "", "")
	sa.mustSub("e/#", 1)
	sb := mustV5(t, b.tcp(), "w-sb", "", "")
	sb.mustSub("e/#", 1)
	pub := mustV5(t, a.tcp(), "w-pub", "", "")
	for i := range 20 {
		_, err := pub.pub(&paho.Publish{Topic: fmt.Sprintf("e/%d", i), Payload: []byte(fmt.Sprint(i)), QoS: 1,
			Properties: &paho.PublishProperties{ContentType: "c", User: paho.UserProperties{{Key: "i", Value: fmt.Sprint(i)}}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	for name, c := range map[string]*v5Client{"A": sa, "B": sb} {
		var got []string
		for len(got) < 20 {
			m := c.next()
			got = append(got, string(m.Payload))
			if m.Properties == nil || m.Properties.ContentType != "c" || userProps(m) != "i="+string(m.Payload) {
				t.Errorf("%s: properties lost: %+v", name, m.Properties)
			}
		}
		for _, m := range c.sync() {
			if strings.HasPrefix(m.Topic, "e/") {
				got = append(got, string(m.Payload))
			}
		}
		if len(got) != 20 {
			t.Fatalf("subscriber on %s got %d messages, want 20 (each once): %v", name, len(got), got)
		}
		for i, p := range got {
			if p != fmt.Sprint(i) {
				t.Fatalf("subscriber on %s: out of order: %v", name, got)
			}
		}
	}
	if n := len(rb.forwardedOn("e/")); n != 0 {
		t.Errorf("B forwarded %d messages it got from A", n)
	}

	// A client with an offline session and queued messages on A
	// connects on B: the session moves.
	x, _, err := dialV5(t, a.tcp(), "mover", v5Opts{sessionExpiry: 3600})
	if err != nil {
		t.Fatal(err)
	}
	x.mustSub("x/#", 1)
	x.close()
	eventually(t, "mover offline on A", func() bool {
		cl, ok := a.b.server.Clients.Get("mover")
		return ok && cl.Closed()
	})
	for i := range 5 {
		pub.mustPub(fmt.Sprintf("x/%d", i), fmt.Sprint(i), 1, false)
	}
	eventually(t, "queued on A", func() bool {
		cl, ok := a.b.server.Clients.Get("mover")
		return ok && cl.State.Inflight.Len() == 5
	})

	x2, ca, err := dialV5(t, b.tcp(), "mover", v5Opts{sessionExpiry: 3600})
	if err != nil {
		t.Fatal(err)
	}
	if !ca.SessionPresent {
		t.Error("CONNACK on B: session present = false for a moved session")
	}
	for i := range 5 {
		if m := x2.next(); m.Topic != fmt.Sprintf("x/%d", i) || string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("moved message %d: %s %q", i, m.Topic, m.Payload)
		}
	}
	if _, ok := a.b.server.Clients.Get("mover"); ok || slices.Contains(a.b.LocalFilters(), "x/#") {
		t.Error("the session is still on A")
	}
	if !slices.Contains(b.b.LocalFilters(), "x/#") {
		t.Error("B has no route for the moved subscription")
	}
	// The subscription works on B, for messages from both nodes.
	pub.mustPub("x/from-a", "a", 1, false)
	x2.until("x/from-a")
	pb := mustV5(t, b.tcp(), "w-pub-b", "", "")
	pb.mustPub("x/from-b", "b", 1, false)
	x2.until("x/from-b")

	// And back to A while connected on B: B's connection gets 0x8E.
	reasonB := make(chan byte, 1)
	x2.close()
	if _, _, err := dialV5(t, b.tcp(), "mover", v5Opts{sessionExpiry: 3600,
		onDisconnect: func(d *paho.Disconnect) { reasonB <- d.ReasonCode }}); err != nil {
		t.Fatal(err)
	}
	x4, ca, err := dialV5(t, a.tcp(), "mover", v5Opts{sessionExpiry: 3600})
	if err != nil || !ca.SessionPresent {
		t.Fatalf("back to A: %v (session present %v)", err, ca != nil && ca.SessionPresent)
	}
	select {
	case code := <-reasonB:
		if code != 0x8E {
			t.Errorf("B's connection got reason 0x%02x", code)
		}
	case <-time.After(waitFor):
		t.Error("B's connection was not taken over")
	}
	pb.mustPub("x/again", "b", 1, false)
	x4.until("x/again")

	// The moved session was persisted on A: it survives a restart.
	x4.close()
	ra.peer.Store(nil)
	rb.peer.Store(nil)
	a.restart()
	x5, ca, err := dialV5(t, a.tcp(), "mover", v5Opts{sessionExpiry: 3600})
	if err != nil || !ca.SessionPresent {
		t.Fatalf("after restart: %v (session present %v)", err, ca != nil && ca.SessionPresent)
	}
	p2 := mustV5(t, a.tcp(), "w-pub2", "", "")
	p2.mustPub("x/restart", "r", 1, false)
	x5.until("x/restart")
}

// A wildcard subscriber gets every one of many retained messages, QoS 0
// and QoS 1 (mochi dropped what did not fit its outbound queue).
func TestRetainedManyToWildcard(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	const total = 5000
	for start := 0; start < total; start += 1000 {
		var ops []store.Op
		for i := start; i < start+1000; i++ {
			topic := fmt.Sprintf("bench/retained/%d", i)
			ops = append(ops, mustOp(t)(store.Put(store.TableRetained, topic, store.Retained{V: store.RecordVersion,
				Topic: topic, Payload: bytes.Repeat([]byte{'x'}, 100), QoS: 1, Created: time.Now().UTC()})))
		}
		n.apply(ops...)
	}
	eventually(t, "retained loaded", func() bool { return n.b.Metrics().Retained == total })

	for _, qos := range []byte{0, 1} {
		c, _, err := dialV5(t, n.tcp(), fmt.Sprintf("many-%d", qos), v5Opts{clean: true, msgBuffer: total + 10})
		if err != nil {
			t.Fatal(err)
		}
		c.mustSub("bench/retained/#", qos)
		got := map[string]bool{}
		deadline := time.After(20 * time.Second)
		for len(got) < total {
			select {
			case m := <-c.msgs:
				if !m.Retain || m.QoS != qos {
					t.Fatalf("qos %d: got retain %v qos %d", qos, m.Retain, m.QoS)
				}
				got[m.Topic] = true
			case <-deadline:
				t.Fatalf("qos %d: got %d of %d retained messages", qos, len(got), total)
			}
		}
		c.close()
	}
	if d := n.b.Metrics().MessagesDropped; d != 0 {
		t.Errorf("%d messages dropped", d)
	}
}

// Retain handling still works with Roost's retained delivery, and the
// sessions db keeps the requested value.
func TestRetainHandling(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	pub := mustV5(t, n.tcp(), "rh-pub", "", "")
	pub.mustPub("rh/1", "one", 1, true)
	eventually(t, "stored", func() bool { _, ok := n.storedRetained("rh/1"); return ok })

	count := func(c *v5Client) int {
		k := 0
		for _, m := range c.sync() {
			if m.Topic == "rh/1" {
				k++
			}
		}
		return k
	}
	c, _, err := dialV5(t, n.tcp(), "rh", v5Opts{sessionExpiry: 3600})
	if err != nil {
		t.Fatal(err)
	}
	c.subWith(paho.SubscribeOptions{Topic: "rh/#", QoS: 0, RetainHandling: 1})
	if k := count(c); k != 1 {
		t.Errorf("retain handling 1, new subscription: %d retained", k)
	}
	c.subWith(paho.SubscribeOptions{Topic: "rh/#", QoS: 0, RetainHandling: 1})
	if k := count(c); k != 0 {
		t.Errorf("retain handling 1, existing subscription: %d retained", k)
	}
	c.subWith(paho.SubscribeOptions{Topic: "rh/+", QoS: 0, RetainHandling: 2})
	if k := count(c); k != 0 {
		t.Errorf("retain handling 2: %d retained", k)
	}
	c.subWith(paho.SubscribeOptions{Topic: "$share/g/rh/#", QoS: 0})
	if k := count(c); k != 0 {
		t.Errorf("shared subscription: %d retained", k)
	}
	if sub, ok := func() (Subscription, bool) {
		cl, _ := n.b.server.Clients.Get("rh")
		s, ok := cl.State.Subscriptions.Get("rh/+")
		return Subscription{RetainHandling: s.RetainHandling}, ok
	}(); !ok || sub.RetainHandling != 2 {
		t.Errorf("subscription rh/+ holds retain handling %d, want 2", sub.RetainHandling)
	}
	c.close()
	n.restart()
	cl, ok := n.b.server.Clients.Get("rh")
	if !ok {
		t.Fatal("session not restored")
	}
	for f, want := range map[string]byte{"rh/#": 1, "rh/+": 2} {
		if s, ok := cl.State.Subscriptions.Get(f); !ok || s.RetainHandling != want {
			t.Errorf("restored %s: retain handling %d, want %d", f, s.RetainHandling, want)
		}
	}
}
