package broker

import (
	"testing"
	"time"

	"github.com/roostmq/roost/internal/store"
)

func (n *node) ban(kind, value string, until time.Time) {
	n.t.Helper()
	b := store.Ban{V: 1, Kind: kind, Value: value, Reason: "test", By: "tester", At: time.Now().UTC(), Until: until}
	n.apply(mustOp(n.t)(store.Put(store.TableBanned, store.BanKey(kind, value), b)))
}

func TestBanned(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) {
		o.AuthnEnable = false
		o.CleanupInterval = time.Hour // the cleaner is tested separately
	})
	n.ban(store.KindClientID, "bad-client", time.Time{})
	n.ban(store.KindUsername, "bad-user", time.Now().Add(time.Hour))
	n.ban(store.KindClientID, "was-bad", time.Now().Add(-time.Minute)) // expired: ignored

	refusedV5 := func(id, user string) {
		t.Helper()
		_, ca, err := dialV5(t, n.tcp(), id, v5Opts{user: user, pass: "x", clean: true})
		if err == nil || ca == nil || ca.ReasonCode != 0x8A {
			t.Fatalf("%s/%s: %v %+v; want CONNACK 0x8A", id, user, err, ca)
		}
	}
	refusedV3 := func(id, user string) {
		t.Helper()
		_, code, err := dialV3(t, "tcp://"+n.tcp(), id, user, "x", true, nil)
		if err == nil || code != 5 {
			t.Fatalf("v3 %s/%s: %v code %d; want 5", id, user, err, code)
		}
	}
	refusedV5("bad-client", "")
	refusedV3("bad-client", "u")
	refusedV5("ok-client", "bad-user")
	refusedV3("ok-client", "bad-user")
	mustV5(t, n.tcp(), "was-bad", "", "").close()
	mustV5(t, n.tcp(), "ok-client", "good-user", "x").close()

	// Peer address: a CIDR containing 127.0.0.1 bans everyone here.
	n.ban(store.KindPeerhost, "127.0.0.0/8", time.Time{})
	refusedV5("ok-client", "")
	refusedV3("ok-client", "u")
	n.apply(store.Delete(store.TableBanned, store.BanKey(store.KindPeerhost, "127.0.0.0/8")))
	n.ban(store.KindPeerhost, "127.0.0.1", time.Time{})
	refusedV5("ok-client", "")
	n.apply(store.Delete(store.TableBanned, store.BanKey(store.KindPeerhost, "127.0.0.1")))
	n.ban(store.KindPeerhost, "10.0.0.0/8", time.Time{})
	mustV5(t, n.tcp(), "ok-client", "", "").close()
}

func TestBanKicksConnectedClient(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	c5 := mustV5(t, n.tcp(), "kick-me", "", "")
	c3 := mustV3(t, n.tcp(), "kick-me-too", "u", "")
	stay := mustV5(t, n.tcp(), "stay", "", "")
	n.ban(store.KindClientID, "kick-me", time.Time{})
	n.ban(store.KindUsername, "u", time.Time{})
	select {
	case <-c5.c.Done():
	case <-time.After(waitFor):
		t.Fatal("banned MQTT 5 client still connected")
	}
	eventually(t, "3.1.1 client disconnected", func() bool { return !c3.c.IsConnectionOpen() })
	stay.sync() // still served
}

func TestExpiredBansCleaned(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	n.ban(store.KindClientID, "short", time.Now().Add(300*time.Millisecond))
	n.ban(store.KindClientID, "long", time.Now().Add(time.Hour))
	n.ban(store.KindClientID, "forever", time.Time{})
	count := func() int {
		var c int
		_ = n.st.View(func(tx *store.Tx) error {
			c = tx.Count(store.TableBanned)
			return nil
		})
		return c
	}
	eventually(t, "expired ban deleted", func() bool { return count() == 2 })
	mustV5(t, n.tcp(), "short", "", "").close()
	if _, ca, err := dialV5(t, n.tcp(), "long", v5Opts{clean: true}); err == nil || ca.ReasonCode != 0x8A {
		t.Fatalf("unexpired ban not applied: %v", err)
	}
}

func TestParsePeerhost(t *testing.T) {
	for in, want := range map[string]string{
		"10.1.2.3":            "10.1.2.3/32",
		"10.1.2.3/8":          "10.0.0.0/8",
		"::1":                 "::1/128",
		"2001:db8::/32":       "2001:db8::/32",
		"::ffff:10.0.0.1":     "10.0.0.1/32",
		"::ffff:10.0.0.0/104": "10.0.0.0/8",
	} {
		p, err := ParsePeerhost(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePeerhost(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, bad := range []string{"", "host.example", "10.0.0.1/33", "1.2.3"} {
		if _, err := ParsePeerhost(bad); err == nil {
			t.Errorf("ParsePeerhost(%q): want an error", bad)
		}
	}
}
