package e2e

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
)

// aclRule is one `roost ctl acl add` call.
type aclRule struct {
	who        []string // --username U | --clientid C | --all
	topic      string
	action     string
	permission string
}

func addACL(t *testing.T, n *node, rules ...aclRule) {
	t.Helper()
	for _, r := range rules {
		args := append([]string{"acl", "add"}, r.who...)
		n.mustCtl(append(args, "--topic", r.topic, "--action", r.action, "--permission", r.permission)...)
	}
}

func allUsers() []string         { return []string{"--all"} }
func username(u string) []string { return []string{"--username", u} }
func clientID(c string) []string { return []string{"--clientid", c} }

// aclNode starts a node with users alice, bob (normal) and root
// (superuser), all with password "pw", and the rules below, in order.
func aclNode(t *testing.T, env ...string) *node {
	t.Helper()
	n := startMQTTNode(t, env...)
	n.mustCtl("users", "add", "alice", "pw")
	n.mustCtl("users", "add", "bob", "pw")
	n.mustCtl("users", "add", "root", "pw", "--superuser")
	return n
}

// The rules of TestMQTTACL, evaluated in this order; no_match is allow.
var aclTestRules = []aclRule{
	// ${username}: each user owns users/<name>/#, nobody else's.
	{allUsers(), "users/${username}/#", "all", "allow"},
	{allUsers(), "users/#", "all", "deny"},
	// ${clientid}: a client may subscribe to its own devices/<id>/#;
	// the client id "watcher" may subscribe to every device's status;
	// nobody else may subscribe under devices/.
	{allUsers(), "devices/${clientid}/#", "subscribe", "allow"},
	{clientID("watcher"), "devices/+/status", "subscribe", "allow"},
	{allUsers(), "devices/#", "subscribe", "deny"},
	// eq: the filter "lit/#" itself may not be subscribed, but lit/a may;
	// publishing to the literal topic "raw/${username}" is denied while
	// raw/bob (what a placeholder would have made of it) is not.
	{allUsers(), "eq lit/#", "subscribe", "deny"},
	{allUsers(), "eq raw/${username}", "publish", "deny"},
	// Rule order: the first match wins.
	{username("bob"), "order/x", "publish", "allow"},
	{username("bob"), "order/#", "publish", "deny"},
	{username("bob"), "order2/#", "publish", "deny"},
	{username("bob"), "order2/x", "publish", "allow"},
	// Actions are separate.
	{allUsers(), "pubonly/#", "subscribe", "deny"},
	{allUsers(), "subonly/#", "publish", "deny"},
}

// TestMQTTACL checks ACL rules end to end on MQTT 5 and 3.1.1: allow and
// deny for publish and subscribe, the ${username} and ${clientid}
// placeholders, a --clientid principal, `eq` literal topics, first match
// wins, actions kept apart, superuser bypass, a denied subscribe answered
// 0x87 (MQTT 5) / 0x80 (3.1.1) and receiving nothing, a denied publish
// answered PUBACK 0x87 (MQTT 5) or acknowledged (3.1.1) and never
// delivered, and the 3.1.1 client staying connected after it.
func TestMQTTACL(t *testing.T) {
	t.Parallel()
	n := aclNode(t)
	addACL(t, n, aclTestRules...)

	var rules []struct {
		ID    int    `json:"id"`
		Topic string `json:"topic"`
	}
	mqttCtlJSON(n, &rules, "acl", "list")
	if len(rules) != len(aclTestRules) {
		t.Fatalf("acl list: %d rules, want %d", len(rules), len(aclTestRules))
	}
	for i, r := range rules {
		if r.Topic != aclTestRules[i].topic {
			t.Fatalf("acl list rule %d: topic %q, want %q (rules must be kept in the order added)", i, r.Topic, aclTestRules[i].topic)
		}
	}

	t.Run("subscribe/v5", func(t *testing.T) {
		c := mustV5(t, n.MQTT, "dev-7", "alice", "pw")
		filters := []string{
			"users/alice/#",     // own subtree: allow
			"users/alice/x",     // allow
			"users/bob/#",       // another user's: deny
			"users/#",           // wider than own: deny
			"devices/dev-7/#",   // own client id: allow
			"devices/dev-7/cmd", // allow
			"devices/dev-8/cmd", // another client id: deny
			"devices/+/status",  // not "watcher": deny
			"lit/#",             // eq lit/#: deny
			"lit/a",             // not the literal filter: no match, allow
			"pubonly/a",         // subscribe denied
			"subonly/a",         // only publish denied
			"free/#",            // no rule: no_match allow
		}
		want := []byte{1, 1, rcV5NotAuthorized, rcV5NotAuthorized, 1, 1, rcV5NotAuthorized,
			rcV5NotAuthorized, rcV5NotAuthorized, 1, rcV5NotAuthorized, 1, 1}
		if got := c.Subscribe(1, filters...); !bytes.Equal(got, want) {
			t.Fatalf("SUBACK for %v:\n got  %s\n want %s", filters, hexBytes(got), hexBytes(want))
		}
		// Denied filters deliver nothing, granted ones do.
		root := mustV5(t, n.MQTT, mqttClientID("root-pub"), "root", "pw")
		// (Each topic matches at most one of alice's subscriptions.)
		for _, topic := range []string{"users/bob/a", "devices/dev-8/cmd", "devices/dev-9/status",
			"pubonly/a", "users/alice/a", "devices/dev-7/up", "lit/a", "subonly/a", "free/a"} {
			root.MustPublish(topic, 1, false, []byte("to "+topic))
		}
		root.MustPublish("free/marker", 1, false, nil)
		got := c.UntilMarker("free/marker")
		wantTopics := []string{"users/alice/a", "devices/dev-7/up", "lit/a", "subonly/a", "free/a"}
		checkTopicsV5(t, "alice (dev-7)", got, wantTopics)

		// The client id principal.
		w := mustV5(t, n.MQTT, "watcher", "bob", "pw")
		want = []byte{1, rcV5NotAuthorized}
		if got := w.Subscribe(1, "devices/+/status", "devices/+/cmd"); !bytes.Equal(got, want) {
			t.Errorf("watcher SUBACK: got %s, want %s", hexBytes(got), hexBytes(want))
		}
	})

	t.Run("subscribe/v3", func(t *testing.T) {
		c := mustV3(t, n.MQTT, "dev-3", "bob", "pw")
		for _, tc := range []struct {
			filter string
			want   byte
		}{
			{"users/bob/#", 1},
			{"users/alice/#", rcV3SubFailure},
			{"devices/dev-3/#", 1},
			{"devices/dev-4/#", rcV3SubFailure},
			{"lit/#", rcV3SubFailure},
			{"pubonly/#", rcV3SubFailure},
			{"free/#", 1},
		} {
			if got := c.Subscribe(tc.filter, 1); got != tc.want {
				t.Errorf("3.1.1 subscribe %s: SUBACK 0x%02X, want 0x%02X", tc.filter, got, tc.want)
			}
		}
		root := mustV5(t, n.MQTT, mqttClientID("root-pub"), "root", "pw")
		for _, topic := range []string{"users/alice/a", "devices/dev-4/x", "pubonly/b", "lit/b",
			"users/bob/a", "devices/dev-3/x"} {
			root.MustPublish(topic, 1, false, []byte("to "+topic))
		}
		root.MustPublish("free/marker3", 1, false, nil)
		got := c.UntilMarker("free/marker3")
		checkTopicsV3(t, "bob (dev-3)", got, []string{"users/bob/a", "devices/dev-3/x"})
	})

	t.Run("publish/v5", func(t *testing.T) {
		// root (superuser) watches everything: it sees exactly what is
		// delivered.
		watch := mustV5(t, n.MQTT, mqttClientID("root-watch"), "root", "pw")
		watch.MustSubscribe(1, "#")
		c := mustV5(t, n.MQTT, mqttClientID("alice-pub"), "alice", "pw")
		cases := []struct {
			topic string
			want  byte
		}{
			{"users/alice/t", rcSuccess},
			{"users/bob/t", rcV5NotAuthorized},
			{"raw/${username}", rcV5NotAuthorized}, // eq: literal
			{"raw/alice", rcSuccess},               // eq does not expand
			{"subonly/t", rcV5NotAuthorized},
			{"pubonly/t", rcSuccess},
			{"devices/x/t", rcSuccess}, // only subscribe is denied there
			{"order/y", rcSuccess},     // bob's rules do not apply to alice
		}
		var delivered []string
		for _, tc := range cases {
			got := c.Publish(&paho.Publish{Topic: tc.topic, QoS: 1, Payload: []byte("p")})
			if got != tc.want {
				t.Errorf("MQTT 5 publish %s QoS 1: PUBACK 0x%02X, want 0x%02X", tc.topic, got, tc.want)
			}
			if tc.want == rcSuccess {
				delivered = append(delivered, tc.topic)
			}
		}
		// QoS 0 denied publishes are dropped as well.
		c.MustPublish("users/bob/q0", 0, false, []byte("q0"))
		c.MustPublish("users/alice/q0", 0, false, []byte("q0"))
		delivered = append(delivered, "users/alice/q0")
		c.MustPublish("free/pubmarker5", 1, false, nil)
		checkTopicsV5(t, "root watching #", watch.UntilMarker("free/pubmarker5"), delivered)
	})

	t.Run("publish/v3", func(t *testing.T) {
		// root (superuser) watches everything: it sees exactly what is
		// delivered.
		watch := mustV5(t, n.MQTT, mqttClientID("root-watch"), "root", "pw")
		watch.MustSubscribe(1, "#")
		c := mustV3(t, n.MQTT, mqttClientID("bob-pub"), "bob", "pw")
		topics := []string{
			"order/x",      // allow (first match)
			"order/y",      // deny
			"order2/x",     // deny (order2/# comes first)
			"order2/y",     // deny
			"users/bob/t",  // allow
			"users/root/t", // deny
			"subonly/t",    // deny
			"raw/bob",      // allow
		}
		for _, topic := range topics {
			for _, qos := range []byte{0, 1} {
				// Denied QoS 1 publishes are acknowledged (the client stays
				// connected) and dropped.
				c.Publish(topic, qos, false, fmt.Appendf(nil, "q%d", qos))
			}
		}
		if !c.c.IsConnectionOpen() {
			t.Fatal("3.1.1 client disconnected after denied publishes")
		}
		c.Publish("free/pubmarker3", 1, false, nil)
		var want []string
		for _, topic := range []string{"order/x", "users/bob/t", "raw/bob"} {
			want = append(want, topic, topic)
		}
		checkTopicsV5(t, "root watching #", watch.UntilMarker("free/pubmarker3"), want)
	})

	t.Run("superuser", func(t *testing.T) {
		// root (superuser) watches everything: it sees exactly what is
		// delivered.
		watch := mustV5(t, n.MQTT, mqttClientID("root-watch"), "root", "pw")
		watch.MustSubscribe(1, "#")
		c := mustV5(t, n.MQTT, mqttClientID("root-2"), "root", "pw")
		filters := []string{"users/#", "devices/#", "lit/#", "pubonly/#"}
		c.MustSubscribe(1, filters...)
		for _, topic := range []string{"users/bob/x", "raw/${username}", "subonly/x", "order/y"} {
			if rc := c.Publish(&paho.Publish{Topic: topic, QoS: 1, Payload: []byte("su")}); rc != rcSuccess {
				t.Errorf("superuser publish %s: PUBACK 0x%02X, want 0x00", topic, rc)
			}
		}
		c3 := mustV3(t, n.MQTT, mqttClientID("root-3"), "root", "pw")
		if got := c3.Subscribe("users/#", 1); got != 1 {
			t.Errorf("superuser 3.1.1 subscribe users/#: 0x%02X, want 0x01", got)
		}
		c.MustPublish("free/sumarker", 1, false, nil)
		checkTopicsV5(t, "root watching #", watch.UntilMarker("free/sumarker"),
			[]string{"users/bob/x", "raw/${username}", "subonly/x", "order/y"})
	})
}

// TestMQTTACLNoMatchDeny runs a node with authz.no_match = deny: only what
// a rule allows is allowed, superusers still bypass.
func TestMQTTACLNoMatchDeny(t *testing.T) {
	t.Parallel()
	n := aclNode(t, "ROOST_AUTHZ__NO_MATCH=deny")
	addACL(t, n,
		aclRule{username("alice"), "data/#", "all", "allow"},
		aclRule{allUsers(), "public/#", "subscribe", "allow"},
		aclRule{username("bob"), "eq bob/marker", "publish", "allow"},
	)
	watch := mustV5(t, n.MQTT, mqttClientID("root-watch"), "root", "pw")
	watch.MustSubscribe(1, "#")

	// alice: only data/# (both actions) and subscribing under public/.
	c := mustV5(t, n.MQTT, mqttClientID("alice"), "alice", "pw")
	want := []byte{1, 1, rcV5NotAuthorized, rcV5NotAuthorized, rcV5NotAuthorized}
	if got := c.Subscribe(1, "data/#", "public/news", "other/#", "#", "bob/marker"); !bytes.Equal(got, want) {
		t.Errorf("alice SUBACK: got %s, want %s", hexBytes(got), hexBytes(want))
	}
	for _, tc := range []struct {
		topic string
		want  byte
	}{{"data/a", rcSuccess}, {"other/a", rcV5NotAuthorized}, {"public/news", rcV5NotAuthorized}} {
		if rc := c.Publish(&paho.Publish{Topic: tc.topic, QoS: 1, Payload: []byte("1")}); rc != tc.want {
			t.Errorf("alice publish %s: PUBACK 0x%02X, want 0x%02X", tc.topic, rc, tc.want)
		}
	}
	c.MustPublish("data/alice-marker", 1, false, nil)
	checkTopicsV5(t, "root watching #, after alice", watch.UntilMarker("data/alice-marker"), []string{"data/a"})
	checkTopicsV5(t, "alice", c.UntilMarker("data/alice-marker"), []string{"data/a"})

	// bob: may subscribe under public/, publish only bob/marker.
	b := mustV3(t, n.MQTT, mqttClientID("bob"), "bob", "pw")
	for _, tc := range []struct {
		filter string
		want   byte
	}{{"data/#", rcV3SubFailure}, {"public/#", 1}, {"bob/#", rcV3SubFailure}} {
		if got := b.Subscribe(tc.filter, 1); got != tc.want {
			t.Errorf("bob 3.1.1 subscribe %s: 0x%02X, want 0x%02X", tc.filter, got, tc.want)
		}
	}
	b.Publish("data/b", 1, false, []byte("from bob"))   // dropped
	b.Publish("public/b", 1, false, []byte("from bob")) // dropped
	b.Publish("bob/marker", 1, false, nil)
	checkTopicsV5(t, "root watching #, after bob", watch.UntilMarker("bob/marker"), nil)

	// root bypasses the rules.
	root := mustV5(t, n.MQTT, mqttClientID("root"), "root", "pw")
	root.MustSubscribe(1, "other/#")
	if rc := root.Publish(&paho.Publish{Topic: "public/root", QoS: 1, Payload: []byte("r")}); rc != rcSuccess {
		t.Errorf("superuser publish under no_match deny: PUBACK 0x%02X, want 0x00", rc)
	}
	root.MustPublish("public/zz-marker", 1, false, nil)
	checkTopicsV5(t, "root watching #, after root", watch.UntilMarker("public/zz-marker"), []string{"public/root"})
	checkTopicsV3(t, "bob", b.UntilMarker("public/zz-marker"), []string{"public/root"})
}

func checkTopicsV5(t *testing.T, who string, got []*paho.Publish, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s received %s, want topics %v", who, v5Topics(got), want)
		return
	}
	for i := range want {
		if got[i].Topic != want[i] {
			t.Errorf("%s received %s, want topics %v", who, v5Topics(got), want)
			return
		}
	}
}

func checkTopicsV3(t *testing.T, who string, got []pahov3.Message, want []string) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = got[i].Topic() == want[i]
	}
	if !ok {
		t.Errorf("%s received %s, want topics %v", who, v3Topics(got), want)
	}
}
