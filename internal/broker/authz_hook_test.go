package broker

import (
	"testing"

	"github.com/eclipse/paho.golang/paho"

	"github.com/roostmq/roost/internal/broker/authn"
	"github.com/roostmq/roost/internal/store"
)

// aclNode starts a broker with authz no_match = deny, users alice, bob
// and a superuser, and these rules, in order:
//
//	1 username alice  eq a/+               subscribe deny
//	2 all             a/#                  subscribe allow
//	3 all             users/${username}/#  all       allow
//	4 username bob    order/#              publish   deny
//	5 all             order/#              publish   allow
//	6 all             dev/${clientid}/in   publish   allow
func aclNode(t *testing.T) *node {
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthzNoMatch = "deny" })
	p := authn.HashParams{Algorithm: "sha256"}
	n.addUser(store.KindUsername, "alice", "pw", p, false)
	n.addUser(store.KindUsername, "bob", "pw", p, false)
	n.addUser(store.KindUsername, "admin", "pw", p, true)
	n.addRule(store.KindUsername, "alice", "eq a/+", "subscribe", "deny")
	n.addRule(store.KindAll, "", "a/#", "subscribe", "allow")
	n.addRule(store.KindAll, "", "users/${username}/#", "all", "allow")
	n.addRule(store.KindUsername, "bob", "order/#", "publish", "deny")
	n.addRule(store.KindAll, "", "order/#", "publish", "allow")
	n.addRule(store.KindAll, "", "dev/${clientid}/in", "publish", "allow")
	return n
}

func TestAuthzMQTT5(t *testing.T) {
	t.Parallel()
	n := aclNode(t)
	admin := mustV5(t, n.tcp(), "admin", "admin", "pw")
	admin.mustSub("#", 1) // superuser: allowed although no rule matches
	alice := mustV5(t, n.tcp(), "c-alice", "alice", "pw")

	t.Run("subscribe", func(t *testing.T) {
		for filter, want := range map[string]byte{
			"a/b/+":         1,    // rule 2 covers it
			"a/#":           1,    // rule 2
			"a/+":           0x87, // rule 1: eq, literal
			"b/x":           0x87, // no rule: no_match deny
			"#":             0x87, // rule 2's a/# does not cover #
			"users/alice/#": 1,    // rule 3, placeholder
			"users/bob/#":   0x87,
			"users/+/x":     0x87, // a placeholder is not a wildcard
		} {
			sa, _ := alice.sub(filter, 1)
			if sa == nil || len(sa.Reasons) != 1 || sa.Reasons[0] != want {
				t.Errorf("subscribe %s: suback %+v, want 0x%02x", filter, sa, want)
			}
		}
	})

	t.Run("publish", func(t *testing.T) {
		alice.mustPub("users/alice/1", "ok", 1, false)
		admin.until("users/alice/1")

		pr, err := alice.pub(&paho.Publish{Topic: "users/bob/1", Payload: []byte("no"), QoS: 1})
		if err == nil || pr == nil || pr.ReasonCode != 0x87 {
			t.Fatalf("denied QoS 1 publish: %+v, %v; want PUBACK 0x87", pr, err)
		}
		pr, _ = alice.pub(&paho.Publish{Topic: "users/bob/2", Payload: []byte("no"), QoS: 2})
		if pr == nil || pr.ReasonCode != 0x87 {
			t.Fatalf("denied QoS 2 publish: %+v; want PUBREC 0x87", pr)
		}
		alice.mustPub("users/bob/3", "no", 0, false) // QoS 0: dropped silently
		if pr, err := alice.pub(&paho.Publish{Topic: "nowhere", Payload: []byte("no"), QoS: 1}); err == nil || pr.ReasonCode != 0x87 {
			t.Fatalf("publish without a matching rule (no_match deny): %+v, %v", pr, err)
		}
		// The client's packets are processed in order: once this one is
		// delivered, none of the denied ones was.
		alice.mustPub("users/alice/2", "ok", 1, false)
		admin.until("users/alice/2", "users/bob/1", "users/bob/2", "users/bob/3", "nowhere")
	})

	t.Run("rule order", func(t *testing.T) {
		bob := mustV5(t, n.tcp(), "c-bob", "bob", "pw")
		if pr, err := bob.pub(&paho.Publish{Topic: "order/1", Payload: []byte("no"), QoS: 1}); err == nil || pr.ReasonCode != 0x87 {
			t.Fatalf("bob: rule 4 should deny: %+v %v", pr, err)
		}
		alice.mustPub("order/2", "ok", 1, false) // rule 5
		admin.until("order/2", "order/1")
	})

	t.Run("clientid placeholder", func(t *testing.T) {
		alice.mustPub("dev/c-alice/in", "ok", 1, false)
		admin.until("dev/c-alice/in")
		if pr, err := alice.pub(&paho.Publish{Topic: "dev/c-bob/in", Payload: []byte("no"), QoS: 1}); err == nil || pr.ReasonCode != 0x87 {
			t.Fatalf("other client id: %+v %v", pr, err)
		}
	})

	t.Run("superuser bypass", func(t *testing.T) {
		admin.mustPub("anything/at/all", "root", 1, false)
		admin.until("anything/at/all")
	})

	t.Run("will message", func(t *testing.T) {
		for _, c := range []struct{ id, topic string }{{"w-denied", "users/bob/will"}, {"w-allowed", "users/alice/will"}} {
			w, _, err := dialV5(t, n.tcp(), c.id, v5Opts{user: "alice", pass: "pw", clean: true,
				will: &paho.WillMessage{Topic: c.topic, Payload: []byte("bye"), QoS: 0}})
			if err != nil {
				t.Fatal(err)
			}
			w.c.TerminateConnectionForTest() // no DISCONNECT: the will is due
			// mochi sends the will before it forgets the client.
			eventually(t, c.id+" gone", func() bool { _, ok := n.b.server.Clients.Get(c.id); return !ok })
		}
		admin.until("users/alice/will", "users/bob/will")
	})

	t.Run("rules change live", func(t *testing.T) {
		n.addRule(store.KindAll, "", "late/#", "all", "allow")
		alice.mustSub("late/#", 1)
		alice.mustPub("late/x", "ok", 1, false)
		alice.until("late/x")
	})
}

func TestAuthzMQTT311(t *testing.T) {
	t.Parallel()
	n := aclNode(t)
	admin := mustV5(t, n.tcp(), "admin", "admin", "pw")
	admin.mustSub("#", 1)
	alice := mustV3(t, n.tcp(), "c-alice", "alice", "pw")

	for filter, want := range map[string]byte{"a/b": 1, "a/+": 0x80, "b/x": 0x80, "users/alice/#": 1} {
		if got := alice.sub(filter, 1); got != want {
			t.Errorf("subscribe %s: granted 0x%02x, want 0x%02x", filter, got, want)
		}
	}
	// A denied publish is acknowledged (3.1.1 has no reason codes) and
	// dropped; the client stays connected.
	for _, qos := range []byte{0, 1, 2} {
		if err := alice.pub("users/bob/x", "no", qos, true); err != nil {
			t.Fatalf("denied publish QoS %d: %v", qos, err)
		}
	}
	if err := alice.pub("users/alice/ok", "yes", 1, false); err != nil {
		t.Fatal(err)
	}
	admin.until("users/alice/ok", "users/bob/x")
	if !alice.c.IsConnectionOpen() {
		t.Fatal("client disconnected after a denied publish")
	}
	// Nor was the denied message retained.
	if got := n.b.Metrics().Retained; got != 0 {
		t.Fatalf("%d retained messages after a denied retained publish", got)
	}
}

func TestAuthzNoMatchAllowDefault(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	n.addRule(store.KindAll, "", "closed/#", "all", "deny")
	c := mustV5(t, n.tcp(), "c", "", "")
	c.mustSub("open/#", 0)
	if sa, _ := c.sub("closed/x", 0); sa == nil || sa.Reasons[0] != 0x87 {
		t.Fatalf("deny rule: %+v", sa)
	}
	c.mustPub("open/1", "x", 0, false)
	c.until("open/1")
}

// An accepted MQTT 5 publish is acknowledged with reason code 0x00 and
// without the publish's properties, also when it has user properties
// (mochi answers QoS 1 with 0x01, the SUBACK code for QoS 1, and echoes
// the properties); a denied one still gets 0x87 (with its reason string).
func TestPubackReasonCode(t *testing.T) {
	t.Parallel()
	n := aclNode(t)
	alice := mustV5(t, n.tcp(), "alice", "alice", "pw")
	props := &paho.PublishProperties{User: paho.UserProperties{{Key: "trace", Value: "abc"}},
		ContentType: "text/plain"}
	for _, qos := range []byte{1, 2} {
		for _, p := range []*paho.PublishProperties{nil, props} {
			pr, err := alice.pub(&paho.Publish{Topic: "users/alice/ack", Payload: []byte("x"), QoS: qos,
				Properties: p})
			if err != nil || pr == nil || pr.ReasonCode != 0 {
				t.Errorf("QoS %d publish (properties %v): %+v, %v; want reason code 0x00", qos, p != nil, pr, err)
				continue
			}
			if pr.Properties != nil && len(pr.Properties.User) > 0 {
				t.Errorf("QoS %d acknowledgement echoes the user properties: %v", qos, pr.Properties.User)
			}
		}
		pr, _ := alice.pub(&paho.Publish{Topic: "users/bob/ack", Payload: []byte("x"), QoS: qos, Properties: props})
		if pr == nil || pr.ReasonCode != 0x87 {
			t.Errorf("denied QoS %d publish with properties: %+v; want 0x87", qos, pr)
		} else if pr.Properties == nil || pr.Properties.ReasonString == "" || len(pr.Properties.User) > 0 {
			t.Errorf("denied QoS %d publish: acknowledgement properties %+v; want a reason string only", qos, pr.Properties)
		}
	}
}
