package broker

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// holdDelivery makes the next delivery of topic to the client that holds
// clientID's session now wait until the returned release is called;
// held is closed once it waits.
func holdDelivery(t *testing.T, n *node, clientID, topic string) (held <-chan struct{}, release func()) {
	t.Helper()
	old, ok := n.b.server.Clients.Get(clientID)
	if !ok {
		t.Fatalf("no session for %s", clientID)
	}
	heldCh, releaseCh := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f := func(cl *mqtt.Client, tp string) {
		if cl != old || tp != topic {
			return
		}
		once.Do(func() {
			close(heldCh)
			select {
			case <-releaseCh:
			case <-time.After(waitFor):
			}
		})
	}
	n.b.beforeDelivery.Store(&f)
	t.Cleanup(func() { n.b.beforeDelivery.Store(nil) })
	var rel sync.Once
	return heldCh, func() { rel.Do(func() { close(releaseCh) }) }
}

// publishAsync publishes at QoS 1 without waiting (the delivery may be
// held) and reports the result on the channel.
func publishAsync(pub *v5Client, topic, payload string) <-chan error {
	errc := make(chan error, 1)
	go func() {
		_, err := pub.pub(&paho.Publish{Topic: topic, Payload: []byte(payload), QoS: 1})
		errc <- err
	}()
	return errc
}

func waitClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitFor):
		t.Fatalf("%s: not within %s", what, waitFor)
	}
}

// encodeHook runs fn for each packet encoded for a client, after Roost's
// hooks (tests add it once the broker runs).
type encodeHook struct {
	mqtt.HookBase
	fn func(cl *mqtt.Client, pk packets.Packet)
}

func (h *encodeHook) ID() string { return "test-encode" }

func (h *encodeHook) Provides(b byte) bool { return b == mqtt.OnPacketEncode }

func (h *encodeHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	h.fn(cl, pk)
	return pk
}

// A publisher that looked the client id up before a reconnect delivers to
// the old client after mochi has copied its session to the new one: the
// message reaches the new connection all the same, once.
func TestLateDeliveryToTakenOverClient(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	connect := func() *v5Client {
		t.Helper()
		c, _, err := dialV5(t, n.tcp(), "late", v5Opts{sessionExpiry: 3600})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := connect()
	c.mustSub("late/#", 1)
	c.close()
	pub := mustV5(t, n.tcp(), "late-pub", "", "")
	pub.mustPub("late/q", "queued", 1, false)

	held, release := holdDelivery(t, n, "late", "late/x")
	errc := publishAsync(pub, "late/x", "late")
	waitClosed(t, "delivery held", held)
	c = connect() // takes the session over while the delivery waits
	release()
	if err := <-errc; err != nil {
		t.Fatalf("publish: %v", err)
	}
	if got := collectOrdered(c, 2); !slices.Equal(got, []string{"queued", "late"}) {
		t.Fatalf("got %v, want [queued late]", got)
	}
	select {
	case m := <-c.msgs:
		t.Fatalf("a message twice: %s", m.Payload)
	case <-time.After(300 * time.Millisecond):
	}
	eventually(t, "all acknowledged", func() bool {
		cl, ok := n.b.server.Clients.Get("late")
		return ok && cl.State.Inflight.Len() == 0
	})
}

// The same while mochi re-sends the session's queued messages: a message
// handed over after mochi has listed them is written before the
// deliveries held meanwhile, after the queued ones.
func TestLateDeliveryDuringResend(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	c, _, err := dialV5(t, n.tcp(), "resend", v5Opts{sessionExpiry: 3600})
	if err != nil {
		t.Fatal(err)
	}
	c.mustSub("rs/#", 1)
	c.close()
	pub := mustV5(t, n.tcp(), "rs-pub", "", "")
	pub.mustPub("rs/q", "queued", 1, false)

	held, release := holdDelivery(t, n, "resend", "rs/x")
	errc := publishAsync(pub, "rs/x", "late")
	waitClosed(t, "delivery held", held)

	// When mochi re-sends the queued message, the held delivery goes on:
	// the new client is in the middle of its re-send.
	adopted := make(chan struct{})
	var once sync.Once
	if err := n.b.server.AddHook(&encodeHook{fn: func(cl *mqtt.Client, pk packets.Packet) {
		if cl.ID != "resend" || pk.FixedHeader.Type != packets.Publish || !pk.FixedHeader.Dup || string(pk.Payload) != "queued" {
			return
		}
		once.Do(func() {
			release()
			deadline := time.Now().Add(waitFor)
			for cl.State.Inflight.Len() < 2 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			close(adopted)
		})
	}}, nil); err != nil {
		t.Fatal(err)
	}
	c, _, err = dialV5(t, n.tcp(), "resend", v5Opts{sessionExpiry: 3600})
	if err != nil {
		t.Fatal(err)
	}
	waitClosed(t, "late message handed over during the re-send", adopted)
	if err := <-errc; err != nil {
		t.Fatalf("publish: %v", err)
	}
	pub.mustPub("rs/y", "after", 1, false)
	if got := collectOrdered(c, 3); !slices.Equal(got, []string{"queued", "late", "after"}) {
		t.Fatalf("got %v, want [queued late after]", got)
	}
	select {
	case m := <-c.msgs:
		t.Fatalf("a message twice: %s", m.Payload)
	case <-time.After(300 * time.Millisecond):
	}
}

// A message handed over is stored with the new connection's session: it
// survives a restart before the client has acknowledged it.
func TestLateDeliverySurvivesRestart(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	connect := func(manualAck bool) *v5Client {
		t.Helper()
		c, _, err := dialV5(t, n.tcp(), "late-db", v5Opts{sessionExpiry: 3600, manualAck: manualAck})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := connect(false)
	c.mustSub("ldb/#", 1)
	c.close()
	pub := mustV5(t, n.tcp(), "ldb-pub", "", "")
	held, release := holdDelivery(t, n, "late-db", "ldb/x")
	errc := publishAsync(pub, "ldb/x", "late")
	waitClosed(t, "delivery held", held)
	c = connect(true) // receives it, does not acknowledge
	release()
	if err := <-errc; err != nil {
		t.Fatalf("publish: %v", err)
	}
	if got := collectOrdered(c, 1); !slices.Equal(got, []string{"late"}) {
		t.Fatalf("got %v", got)
	}
	c.close()
	pub.close()
	n.restart()
	c = connect(false)
	if got := collectOrdered(c, 1); !slices.Equal(got, []string{"late"}) {
		t.Fatalf("after a restart: %v", got)
	}
	select {
	case m := <-c.msgs:
		t.Fatalf("a message twice: %s", m.Payload)
	case <-time.After(300 * time.Millisecond):
	}
}
