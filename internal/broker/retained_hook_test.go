package broker

import (
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roostmq/roost/internal/store"
)

func (n *node) storedRetained(topic string) (store.Retained, bool) {
	n.t.Helper()
	var rec store.Retained
	var ok bool
	err := n.st.View(func(tx *store.Tx) error {
		var err error
		rec, ok, err = store.Get[store.Retained](tx, store.TableRetained, topic)
		return err
	})
	if err != nil {
		n.t.Fatal(err)
	}
	return rec, ok
}

func (n *node) retainedCount() int {
	var c int
	_ = n.st.View(func(tx *store.Tx) error {
		c = tx.Count(store.TableRetained)
		return nil
	})
	return c
}

// retainedOn subscribes a fresh MQTT 5 client to filter and returns the
// retained messages it gets. It subscribes with QoS 0: with QoS 1
// deliveries in flight, the client's next SUBSCRIBE could reuse a packet
// id the broker uses, which mochi refuses (its upstream issue 545).
func retainedOn(t *testing.T, n *node, filter string) []*paho.Publish {
	t.Helper()
	c := mustV5(t, n.tcp(), fmt.Sprintf("r-%d", time.Now().UnixNano()), "", "")
	defer c.close()
	c.mustSub(filter, 0)
	return c.sync()
}

func TestRetainedSurvivesRestart(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	pub := mustV5(t, n.tcp(), "pub", "", "")
	pf := byte(1)
	_, err := pub.pub(&paho.Publish{Topic: "r/props", Payload: []byte(`{"t":1}`), QoS: 1, Retain: true,
		Properties: &paho.PublishProperties{PayloadFormat: &pf, ContentType: "application/json",
			ResponseTopic: "r/reply", CorrelationData: []byte("cd"),
			User: paho.UserProperties{{Key: "k", Value: "v1"}, {Key: "k", Value: "v2"}}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		pub.mustPub(fmt.Sprintf("r/many/%d", i), fmt.Sprint(i), 1, true)
	}
	pub.mustPub("r/gone", "x", 1, true)
	pub.mustPub("r/gone", "", 1, true) // empty payload deletes
	p3 := mustV3(t, n.tcp(), "pub3", "", "")
	if err := p3.pub("r/v3", "from 3.1.1", 1, true); err != nil {
		t.Fatal(err)
	}
	pub.close()
	p3.c.Disconnect(0)
	// r/v3 is written last: once it is in, the deletion of r/gone is too
	// (52 retained messages could also be r/gone not yet deleted and r/v3
	// not yet stored).
	eventually(t, "retained stored", func() bool {
		_, v3 := n.storedRetained("r/v3")
		return v3 && n.retainedCount() == 52
	})
	if _, ok := n.storedRetained("r/gone"); ok {
		t.Fatal("empty retained payload did not delete")
	}
	rec, _ := n.storedRetained("r/props")
	if rec.ContentType != "application/json" || rec.PayloadFormat == nil || *rec.PayloadFormat != 1 ||
		len(rec.UserProperties) != 2 || rec.UserProperties[1].Val != "v2" || rec.From != "pub" || rec.QoS != 1 {
		t.Fatalf("stored record: %+v", rec)
	}

	n.restart()

	got := retainedOn(t, n, "r/#")
	byTopic := map[string]*paho.Publish{}
	for _, m := range got {
		if !m.Retain {
			t.Errorf("%s: retain flag not set on a retained delivery", m.Topic)
		}
		byTopic[m.Topic] = m
	}
	if len(byTopic) != 52 {
		t.Fatalf("after restart got %d retained messages, want 52", len(byTopic))
	}
	m := byTopic["r/props"]
	if string(m.Payload) != `{"t":1}` || m.Properties.ContentType != "application/json" ||
		m.Properties.ResponseTopic != "r/reply" || string(m.Properties.CorrelationData) != "cd" ||
		m.Properties.PayloadFormat == nil || *m.Properties.PayloadFormat != 1 ||
		len(m.Properties.User) != 2 || m.Properties.User.Get("k") != "v1" {
		t.Fatalf("properties after restart: %+v %+v", m, m.Properties)
	}
	if string(byTopic["r/v3"].Payload) != "from 3.1.1" {
		t.Fatalf("v3 retained: %+v", byTopic["r/v3"])
	}
	if _, ok := byTopic["r/gone"]; ok {
		t.Fatal("deleted retained message came back")
	}
	if got := n.b.Metrics().Retained; got != 52 {
		t.Fatalf("metrics retained %d", got)
	}
}

func TestRetainedExpiry(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	pub := mustV5(t, n.tcp(), "pub", "", "")
	exp := uint32(1)
	if _, err := pub.pub(&paho.Publish{Topic: "e/short", Payload: []byte("x"), QoS: 1, Retain: true,
		Properties: &paho.PublishProperties{MessageExpiry: &exp}}); err != nil {
		t.Fatal(err)
	}
	pub.mustPub("e/keep", "y", 1, true)
	eventually(t, "stored", func() bool { return n.retainedCount() == 2 })
	if rec, _ := n.storedRetained("e/short"); rec.MessageExpiry != 1 {
		t.Fatalf("stored expiry %d", rec.MessageExpiry)
	}
	// Expired: deleted from the store by the leader, and not delivered.
	eventually(t, "expired retained deleted", func() bool {
		_, ok := n.storedRetained("e/short")
		return !ok
	})
	got := retainedOn(t, n, "e/#")
	if len(got) != 1 || got[0].Topic != "e/keep" {
		t.Fatalf("after expiry got %d messages: %v", len(got), got)
	}
}

func TestRetainedExpiredAtLoadIsDroppedAndDeleted(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	old := store.Retained{V: 1, Topic: "x/old", Payload: []byte("stale"), MessageExpiry: 5,
		Created: time.Now().Add(-time.Minute).UTC()}
	n.apply(mustOp(t)(store.Put(store.TableRetained, "x/old", old)))
	if got := retainedOn(t, n, "x/#"); len(got) != 0 {
		t.Fatalf("expired message delivered: %v", got)
	}
	n.restart()
	if got := retainedOn(t, n, "x/#"); len(got) != 0 {
		t.Fatalf("expired message delivered after restart: %v", got)
	}
	eventually(t, "expired record deleted", func() bool { _, ok := n.storedRetained("x/old"); return !ok })
}

// Changes committed to the store by someone else (another node, an
// import) reach the tree.
func TestRetainedFollowsStore(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	sub := mustV5(t, n.tcp(), "sub", "", "")
	rec := store.Retained{V: 1, Topic: "s/remote", Payload: []byte("from afar"), QoS: 1, Created: time.Now().UTC()}
	n.apply(mustOp(t)(store.Put(store.TableRetained, "s/remote", rec)))
	sub.mustSub("s/#", 1)
	if m := sub.until("s/remote"); string(m.Payload) != "from afar" {
		t.Fatalf("got %q", m.Payload)
	}
	n.apply(store.Delete(store.TableRetained, "s/remote"))
	if got := retainedOn(t, n, "s/#"); len(got) != 0 {
		t.Fatalf("deleted in store but still served: %v", got)
	}
	pub := mustV5(t, n.tcp(), "pub", "", "")
	pub.mustPub("s/a", "1", 1, true)
	pub.mustPub("s/b", "2", 1, true)
	eventually(t, "stored", func() bool { return n.retainedCount() == 2 })
	n.apply(store.Clear(store.TableRetained))
	if got := retainedOn(t, n, "s/#"); len(got) != 0 {
		t.Fatalf("cleared in store but still served: %v", got)
	}
}

// A state reset (raft snapshot restore) reloads the tree from the store.
func TestRetainedReloadOnReset(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	pub := mustV5(t, n.tcp(), "pub", "", "")
	pub.mustPub("z/kept", "1", 1, true)
	eventually(t, "stored", func() bool { return n.retainedCount() == 1 })
	// Something only in the tree (as if the store lost it in a restore)
	n.b.server.Topics.RetainMessage(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
		TopicName: "z/stray", Payload: []byte("x")})
	m := n.b.mirrors[2]
	m.onChange([]store.Change{{Index: n.st.AppliedIndex()}}) // Reset
	eventually(t, "reload", func() bool {
		got := retainedOn(t, n, "z/#")
		return len(got) == 1 && got[0].Topic == "z/kept"
	})
}

func TestRetainedManyPublishesBatch(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	before := n.st.AppliedIndex()
	pub := mustV5(t, n.tcp(), "pub", "", "")
	const total = 2000
	for i := range total {
		if _, err := pub.c.PublishWithOptions(t.Context(), &paho.Publish{Topic: fmt.Sprintf("b/%d", i),
			Payload: []byte("x"), QoS: 0, Retain: true}, paho.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "all stored", func() bool { return n.retainedCount() == total })
	entries := n.st.AppliedIndex() - before
	t.Logf("%d retained publishes took %d raft entries", total, entries)
	if entries > total/4 {
		t.Fatalf("%d raft entries for %d retained publishes: writes are not batched", entries, total)
	}
}
