package broker

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"

	bolt "go.etcd.io/bbolt"
)

// storedSessions lists the client ids in the sessions db (node stopped).
func storedSessions(t *testing.T, path string) map[string]int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]int{}
	_ = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).ForEachBucket(func(k []byte) error {
			n := 0
			if b := tx.Bucket(bucketSessions).Bucket(k).Bucket(bucketInflight); b != nil {
				n = b.Stats().KeyN
			}
			out[string(k)] = n
			return nil
		})
	})
	return out
}

// A 3.1.1 subscriber with clean session false gets the QoS 1 messages
// published while it was away, across a restart of the whole node.
func TestPersistentSessionV3AcrossRestart(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	url := "tcp://" + n.tcp()
	sub, _, err := dialV3(t, url, "keeper", "", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code := sub.sub("q/#", 1); code != 1 {
		t.Fatalf("subscribe: %d", code)
	}
	sub.c.Disconnect(100)
	eventually(t, "subscriber offline", func() bool { return n.b.Metrics().Connections == 0 })

	pub := mustV3(t, n.tcp(), "pub", "", "")
	for i := range 10 {
		if err := pub.pub(fmt.Sprintf("q/%d", i), fmt.Sprint(i), 1, false); err != nil {
			t.Fatal(err)
		}
	}
	pub.c.Disconnect(100)
	eventually(t, "messages queued", func() bool { return n.b.Metrics().Inflight >= 10 })

	n.stop()
	if got := storedSessions(t, n.opts.SessionsPath); got["keeper"] != 10 || len(got) != 1 {
		t.Fatalf("sessions db holds %v; want keeper with 10 messages and no clean-session client", got)
	}
	n.start()

	// Reconnect without subscribing again: the session brings the
	// subscription and the queued messages.
	sub2, _, err := dialV3(t, "tcp://"+n.tcp(), "keeper", "", "", false, func(o *pahov3.ClientOptions) {})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for len(got) < 10 {
		m := sub2.next()
		got[m.Topic()] = true
	}
	// And the subscription still works for new messages.
	pub2 := mustV3(t, n.tcp(), "pub2", "", "")
	if err := pub2.pub("q/new", "n", 1, false); err != nil {
		t.Fatal(err)
	}
	for m := sub2.next(); m.Topic() != "q/new"; m = sub2.next() {
		if !got[m.Topic()] {
			t.Fatalf("unexpected %s", m.Topic())
		}
	}
}

// The same with MQTT 5 (session expiry > 0), and a reconnect without a
// restart in between.
func TestPersistentSessionV5(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	connect := func() *v5Client {
		t.Helper()
		c, ca, err := dialV5(t, n.tcp(), "keeper5", v5Opts{sessionExpiry: 3600})
		if err != nil {
			t.Fatal(err)
		}
		_ = ca
		return c
	}
	sub := connect()
	sub.mustSub("q5/#", 1)
	sub.close()
	pub := mustV5(t, n.tcp(), "pub", "", "")
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			pub.mustPub(fmt.Sprintf("q5/%d", i), fmt.Sprint(i), 1, false)
		}
	}
	collect := func(c *v5Client, want int) {
		t.Helper()
		got := map[string]bool{}
		for len(got) < want {
			got[c.next().Topic] = true
		}
	}

	publish(0, 5)
	sub = connect() // reconnect, no restart
	collect(sub, 5)
	sub.close()

	publish(5, 15)
	pub.close()
	n.restart()
	sub = connect()
	collect(sub, 10)
}

// Clean sessions are never written; a clean reconnect removes a stored
// session; an expired session is removed.
func TestSessionCleanupRules(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	c, _, err := dialV5(t, n.tcp(), "clean5", v5Opts{clean: true})
	if err != nil {
		t.Fatal(err)
	}
	c.mustSub("x", 1)
	c.close()
	p, _, err := dialV5(t, n.tcp(), "later-clean", v5Opts{sessionExpiry: 3600})
	if err != nil {
		t.Fatal(err)
	}
	p.mustSub("x", 1)
	p.close()
	s, _, err := dialV5(t, n.tcp(), "short", v5Opts{sessionExpiry: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.mustSub("y/#", 1)
	s.close()
	// "later-clean" comes back with a clean start and no expiry.
	p2, _, err := dialV5(t, n.tcp(), "later-clean", v5Opts{clean: true})
	if err != nil {
		t.Fatal(err)
	}
	p2.close()
	// "short" expires (mochi checks every second).
	eventually(t, "short session expired", func() bool {
		_, ok := n.b.server.Clients.Get("short")
		return !ok
	})
	if m := n.b.Metrics(); m.Subscriptions != 0 {
		t.Errorf("%d subscriptions left after the sessions ended", m.Subscriptions)
	}
	n.stop()
	if got := storedSessions(t, n.opts.SessionsPath); len(got) != 0 {
		t.Fatalf("sessions db holds %v; want nothing", got)
	}
}

// 3.1.1 sessions expire after SessionExpiryV3 when it is shorter than
// the MQTT 5 cap.
func TestSessionExpiryV3(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) {
		o.AuthnEnable = false
		o.SessionExpiryV3 = time.Second
	})
	c, _, err := dialV3(t, "tcp://"+n.tcp(), "v3-short", "", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.sub("z", 1)
	c.c.Disconnect(100)
	eventually(t, "v3 session expired", func() bool {
		_, ok := n.b.server.Clients.Get("v3-short")
		return !ok
	})
	n.stop()
	if got := storedSessions(t, n.opts.SessionsPath); len(got) != 0 {
		t.Fatalf("sessions db holds %v", got)
	}
}

// Session events are written in batches, not one transaction each.
func TestSessionWritesAreBatched(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	sub, _, err := dialV5(t, n.tcp(), "batched", v5Opts{sessionExpiry: 600})
	if err != nil {
		t.Fatal(err)
	}
	sub.mustSub("bt/#", 1)
	sub.close()
	pub := mustV5(t, n.tcp(), "pub", "", "")
	eventually(t, "idle", func() bool { return len(n.b.sessions.pendingIDs()) == 0 })
	before := n.b.sessions.flushes.Load()
	const msgs = 500
	for i := range msgs {
		pub.mustPub(fmt.Sprintf("bt/%d", i), "x", 1, false)
	}
	eventually(t, "queued messages written", func() bool { return len(n.b.sessions.pendingIDs()) == 0 })
	flushes := n.b.sessions.flushes.Load() - before
	t.Logf("%d queued messages written in %d transactions", msgs, flushes)
	if flushes > msgs/5 {
		t.Fatalf("%d transactions for %d messages: not batched", flushes, msgs)
	}
	n.stop()
	if got := storedSessions(t, n.opts.SessionsPath); got["batched"] != msgs {
		t.Fatalf("stored %v", got)
	}
}

func TestWriteSessionsTo(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	c, _, err := dialV3(t, "tcp://"+n.tcp(), "backed-up", "", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.sub("b/#", 1)
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	f, err := os.Create(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.b.WriteSessionsTo(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := storedSessions(t, copyPath); len(got) != 1 {
		t.Fatalf("copy holds %v", got)
	}
	b := n.b
	n.stop()
	if _, err := b.WriteSessionsTo(io.Discard); err == nil {
		t.Fatal("WriteSessionsTo after Close: want an error")
	}
}
