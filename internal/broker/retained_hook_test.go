package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
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

// served returns the retained messages this node serves for filter
// (topic → payload), read as a subscriber's delivery reads them.
func (n *node) served(filter string) map[string]string {
	n.t.Helper()
	rd := n.b.newRetainedReader(filter)
	out := map[string]string{}
	for {
		pks, more, err := rd.next()
		if err != nil {
			n.t.Fatal(err)
		}
		for _, pk := range pks {
			if _, dup := out[pk.TopicName]; dup {
				n.t.Fatalf("%s served twice for %s", pk.TopicName, filter)
			}
			out[pk.TopicName] = string(pk.Payload)
		}
		if !more {
			return out
		}
	}
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

// A write the store refused is served by this node until a state reset
// (raft snapshot restore) reloads the table: the store decides then.
func TestRetainedReloadOnReset(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	pub := mustV5(t, n.tcp(), "pub", "", "")
	pub.mustPub("z/kept", "1", 1, true)
	eventually(t, "stored", func() bool { return n.retainedCount() == 1 })
	r := n.b.retained
	rec := store.Retained{V: 1, Topic: "z/stray", Payload: []byte("x"), Created: time.Now().UTC()}
	r.mu.Lock()
	r.unstored["z/stray"] = &retainedWrite{topic: "z/stray", value: []byte("{}"), pk: packetFromRecord(&rec, 0)}
	r.mu.Unlock()
	if got := n.served("z/#"); len(got) != 2 {
		t.Fatalf("before the reset: served %v, want z/kept and z/stray", got)
	}
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

// "#" also matches the parent level ("a/#" matches "a"), for retained
// messages as for live ones; a leading wildcard does not match topics
// starting with "$".
func TestRetainedParentLevelWildcard(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	pub := mustV5(t, n.tcp(), "pub", "", "")
	for _, topic := range []string{"home", "home/kitchen", "home/kitchen/temp", "$app/x"} {
		pub.mustPub(topic, "v:"+topic, 1, true)
	}
	for filter, want := range map[string]string{
		"home/kitchen/#": "home/kitchen home/kitchen/temp",
		"home/#":         "home home/kitchen home/kitchen/temp",
		"+/kitchen/#":    "home/kitchen home/kitchen/temp",
		"+/#":            "home home/kitchen home/kitchen/temp",
		"#":              "home home/kitchen home/kitchen/temp",
		"+":              "home",
		"$app/#":         "$app/x",
	} {
		var topics []string
		for _, m := range retainedOn(t, n, filter) {
			if !strings.HasPrefix(m.Topic, "marker/") {
				topics = append(topics, m.Topic)
			}
		}
		slices.Sort(topics)
		if got := strings.Join(topics, " "); got != want {
			t.Errorf("retained for %s: %s, want %s", filter, got, want)
		}
	}
}

// untilFraction sleeps until the wall clock is frac into a second.
func untilFraction(frac time.Duration) {
	now := time.Now()
	next := now.Truncate(time.Second).Add(frac)
	if !next.After(now) {
		next = next.Add(time.Second)
	}
	time.Sleep(time.Until(next))
}

// A retained message expires exactly after its expiry interval, counted
// from its publication (not from the second it was published in), and
// subscribers get the exact time left, rounded up.
func TestRetainedExpiryExact(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	pub := mustV5(t, n.tcp(), "pub", "", "")
	// Late in a second: counted in whole seconds, the message would
	// expire up to a second early.
	untilFraction(850 * time.Millisecond)
	published := time.Now()
	exp := uint32(2)
	if _, err := pub.pub(&paho.Publish{Topic: "x/exp", Payload: []byte("x"), QoS: 1, Retain: true,
		Properties: &paho.PublishProperties{MessageExpiry: &exp}}); err != nil {
		t.Fatal(err)
	}
	acked := time.Now()
	check := func(at time.Duration, want uint32) {
		t.Helper()
		time.Sleep(time.Until(published.Add(at)))
		got := retainedOn(t, n, "x/#")
		if len(got) != 1 {
			t.Fatalf("%s after publishing (expiry 2s): %d retained messages, want 1", at, len(got))
		}
		if e := got[0].Properties.MessageExpiry; e == nil || *e != want {
			t.Errorf("%s after publishing (expiry 2s): message expiry %v, want %d", at, e, want)
		}
	}
	check(200*time.Millisecond, 2)
	check(1200*time.Millisecond, 1)
	time.Sleep(time.Until(acked.Add(2*time.Second + 20*time.Millisecond)))
	if got := retainedOn(t, n, "x/#"); len(got) != 0 {
		t.Fatalf("delivered %s after its expiry", time.Since(acked.Add(2*time.Second)))
	}
}

// The race of a retained publish with the commit of an older write of the
// topic: mochi puts the new message in its map, the older commit is
// applied, then mochi calls OnRetainMessage. The node must serve the new
// message (the publisher gets its PUBACK next), and keep it; mochi's map
// must not keep it.
func TestRetainedPublishRacesOlderCommit(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	pub := mustV5(t, n.tcp(), "pub", "", "")
	pub.mustPub("race/t", "v1", 1, true)
	eventually(t, "v1 stored", func() bool { _, ok := n.storedRetained("race/t"); return ok })
	v1, _ := n.storedRetained("race/t")
	cl, _ := n.b.server.Clients.Get("pub")
	mirror := n.b.mirrors[2]
	tree := func() string {
		t.Helper()
		if pk, ok := n.b.server.Topics.Retained.Get("race/t"); ok {
			t.Fatalf("mochi's retained map holds %q", pk.Payload)
		}
		v, ok := n.served("race/t")["race/t"]
		if !ok {
			return "<none>"
		}
		return v
	}
	lateCommit := func(rec store.Retained) {
		val, err := json.Marshal(&rec)
		if err != nil {
			t.Fatal(err)
		}
		mirror.onChange([]store.Change{{Type: store.OpPut, Table: store.TableRetained, Key: "race/t",
			Value: val, Index: n.st.AppliedIndex()}})
	}
	publish := func(payload string) {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
			TopicName: "race/t", Payload: []byte(payload), Created: time.Now().Unix(), ProtocolVersion: 5}
		n.b.server.Topics.RetainMessage(pk.Copy(false)) // mochi's retainMessage ...
		lateCommit(v1)                                  // ... an older commit ...
		n.b.retained.OnRetainMessage(cl, pk, 1)         // ... then the hook
	}

	publish("v2")
	if got := tree(); got != "v2" {
		t.Fatalf("tree holds %s after the publish of v2", got)
	}
	eventually(t, "v2 stored", func() bool { r, _ := n.storedRetained("race/t"); return string(r.Payload) == "v2" })
	if got := tree(); got != "v2" {
		t.Fatalf("tree holds %s once v2 is stored", got)
	}

	publish("") // delete
	if got := tree(); got != "<none>" {
		t.Fatalf("tree holds %s after the delete", got)
	}
	eventually(t, "delete stored", func() bool { _, ok := n.storedRetained("race/t"); return !ok })
	if got := tree(); got != "<none>" {
		t.Fatalf("tree holds %s once the delete is stored", got)
	}
}

// On a follower, the store can report a local write committed before
// this node has applied the commit; changes of the topic committed before
// it, applied meanwhile, must not be served instead of it.
func TestRetainedLocalWriteAnsweredBeforeApplied(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) {
		o.AuthnEnable = false
		o.RetainedBatchWindow = time.Hour // the test submits by hand
	})
	r := n.b.retained
	put := func(payload string) store.Retained {
		return store.Retained{V: 1, Topic: "f/t", Payload: []byte(payload), Created: time.Now().UTC()}
	}
	commit := func(val []byte) {
		if _, err := n.st.Apply(t.Context(), store.Op{Type: store.OpPut, Table: store.TableRetained,
			Key: "f/t", Value: val}); err != nil {
			t.Fatal(err)
		}
	}
	encode := func(rec store.Retained) []byte {
		b, err := json.Marshal(&rec)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tree := func() string { return n.served("f/t")["f/t"] }
	commit(encode(put("old")))
	pub := mustV5(t, n.tcp(), "pub", "", "")
	cl, _ := n.b.server.Clients.Get("pub")
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
		TopicName: "f/t", Payload: []byte("mine"), Created: time.Now().Unix(), ProtocolVersion: 5}
	n.b.server.Topics.RetainMessage(pk.Copy(false))
	r.OnRetainMessage(cl, pk, 1)
	// Submitted, and answered: committed at an index not applied here yet.
	r.mu.Lock()
	w := r.queue["f/t"]
	delete(r.queue, "f/t")
	w.gen = r.gen
	r.submitted["f/t"] = w
	r.mu.Unlock()
	r.answered([]*retainedWrite{w}, &store.Result{Index: n.st.AppliedIndex() + 10}, nil)

	commit(encode(put("older, from another node")))
	if got := tree(); got != "mine" {
		t.Fatalf("tree holds %q before this node applied its own commit", got)
	}
	commit(w.value)
	if got := tree(); got != "mine" {
		t.Fatalf("tree holds %q after its own commit", got)
	}
	commit(encode(put("newer")))
	if got := tree(); got != "newer" {
		t.Fatalf("tree holds %q after a newer commit", got)
	}
	pub.close()
}

// What the node serves converges to the retained table through state resets (raft
// snapshot restores, a store reset as on join) that happen while other
// writers commit changes, some of them during the reloads.
func TestRetainedMirrorConvergesThroughResets(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	mirror := n.b.mirrors[2]
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				topic := fmt.Sprintf("conv/%d", (i*7+w)%40)
				var op store.Op
				if i%5 == 4 {
					op = store.Delete(store.TableRetained, topic)
				} else {
					op, _ = store.Put(store.TableRetained, topic, store.Retained{V: 1, Topic: topic,
						Payload: fmt.Appendf(nil, "%d-%d", w, i), Created: time.Now().UTC()})
				}
				wctx, cancel := context.WithTimeout(ctx, time.Second)
				_, _ = n.st.Apply(wctx, op) // fails while the store resets
				cancel()
			}
		}()
	}
	// A local publisher too.
	pub := mustV5(t, n.tcp(), "pub", "", "")
	for round := range 6 {
		for i := range 20 {
			pub.mustPub(fmt.Sprintf("conv/%d", (round*20+i)%40), fmt.Sprintf("local-%d-%d", round, i), 0, true)
		}
		if round == 3 {
			if err := n.st.Reset(true); err != nil {
				t.Fatal(err)
			}
			wctx, cancel := context.WithTimeout(ctx, waitFor)
			if err := n.st.WaitLeader(wctx); err != nil {
				t.Fatal(err)
			}
			cancel()
		} else {
			mirror.onChange([]store.Change{{Index: n.st.AppliedIndex()}}) // as a snapshot restore
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	wg.Wait()
	pub.close()

	deadline := time.Now().Add(waitFor)
	for {
		stored := map[string]string{}
		_ = n.st.View(func(tx *store.Tx) error {
			return tx.ForEach(store.TableRetained, func(key string, val []byte) error {
				rec, err := decodeRetained(key, val)
				if err == nil {
					stored[key] = string(rec.Payload)
				}
				return nil
			})
		})
		served := n.served("conv/#")
		if maps.Equal(stored, served) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node does not serve the retained table:\nstore  %v\nserved %v", stored, served)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The store reader serves, for every filter, exactly the stored topics
// the filter matches: the literal prefix range, the parent level of a
// trailing "#", "$" topics only for filters that name them, across many
// chunks.
func TestRetainedReaderMatchesFilters(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	topics := []string{"a", "a/b", "a/b/c", "a/b/c/d", "a/bc", "a/b#", "ab", "a//b", "/a", "b/a/c",
		"$x/a", "$x", "c/a/b", "sport/tennis/player1", "sport/tennis/player1/ranking", "sport/tennis"}
	for i := range 3000 {
		topics = append(topics, fmt.Sprintf("big/%d/v", i))
	}
	var ops []store.Op
	for _, topic := range topics {
		ops = append(ops, mustOp(t)(store.Put(store.TableRetained, topic, store.Retained{V: store.RecordVersion,
			Topic: topic, Payload: []byte("v:" + topic), Created: time.Now().UTC()})))
	}
	for len(ops) > 0 {
		k := min(len(ops), 1000)
		if _, err := n.st.Apply(t.Context(), ops[:k]...); err != nil {
			t.Fatal(err)
		}
		ops = ops[k:]
	}
	for _, filter := range []string{"#", "+", "a", "a/#", "a/+", "a/+/c", "+/b", "+/+", "/#", "+/a",
		"$x/#", "$x", "$x/+", "+/#", "big/#", "big/+/v", "big/17/v", "big/+", "sport/tennis/+", "sport/#",
		"sport/tennis/player1/#", "a/b/c/d/#", "nothing/#", "a/b#"} {
		want := map[string]string{}
		for _, topic := range topics {
			if MatchTopic(filter, topic) {
				want[topic] = "v:" + topic
			}
		}
		if got := n.served(filter); !maps.Equal(got, want) {
			t.Errorf("filter %q: served %d topics, want %d\ngot  %v\nwant %v", filter, len(got), len(want),
				firstKeys(got, 10), firstKeys(want, 10))
		}
	}
	// mochi's own retained map holds none of them.
	if n.b.server.Topics.Retained.Len() > 0 {
		for topic := range n.b.server.Topics.Retained.GetAll() {
			if !strings.HasPrefix(topic, sysPrefix) {
				t.Fatalf("mochi's retained map holds %s", topic)
			}
		}
	}
}

func firstKeys(m map[string]string, k int) []string {
	keys := slices.Sorted(maps.Keys(m))
	return keys[:min(k, len(keys))]
}

// Retained publishes leave mochi's in-memory retained map as they found it
// (it holds only mochi's $SYS topics), and subscribers still get them.
func TestRetainedNotInMochiMap(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	pub := mustV5(t, n.tcp(), "pub", "", "")
	for i := range 50 {
		pub.mustPub(fmt.Sprintf("m/%d", i), "x", byte(i%2), true)
	}
	for topic := range n.b.server.Topics.Retained.GetAll() {
		if !strings.HasPrefix(topic, sysPrefix) {
			t.Fatalf("mochi's retained map holds %s", topic)
		}
	}
	if got := retainedOn(t, n, "m/#"); len(got) != 50 {
		t.Fatalf("subscriber got %d retained messages, want 50", len(got))
	}
	eventually(t, "stored", func() bool { return n.b.Metrics().Retained == 50 })
}
