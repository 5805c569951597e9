package e2e

import (
	"fmt"
	"testing"
)

type metricsJSON struct {
	Connections   int64 `json:"connections"`
	Subscriptions int64 `json:"subscriptions"`
}

// waitConnections polls `ctl metrics` until the node counts want live
// connections.
func waitConnections(t *testing.T, n *node, want int64) {
	t.Helper()
	var m metricsJSON
	mqttEventually(t, mqttWait, fmt.Sprintf("ctl metrics shows %d connections", want), func() bool {
		mqttCtlJSON(n, &m, "metrics")
		return m.Connections == want
	})
}

const sessionMessages = 20

// TestMQTTPersistentSessionAcrossRestart: a 3.1.1 client with clean
// session false and an MQTT 5 client with a session expiry of 1h subscribe
// at QoS 1 and disconnect; 20 QoS 1 messages for each are published while
// they are offline; the node is stopped with SIGTERM (exit 0) and started
// again; the clients reconnect with the same client ids without clean
// start, are told the session is present, and receive all 20, in order,
// exactly once, without subscribing again; their subscriptions still
// deliver new messages.
func TestMQTTPersistentSessionAcrossRestart(t *testing.T) {
	t.Parallel()
	n := startMQTTNode(t)
	for _, u := range []string{"sub3", "sub5", "pub"} {
		n.mustCtl("users", "add", u, "pw-"+u)
	}

	// Subscribe, then go offline.
	s3, rc, err := dialV3(t, v3Options{Broker: tcpURL(n.MQTT), ClientID: "persist-v3", Username: "sub3", Password: "pw-sub3", CleanSession: false})
	if err != nil {
		t.Fatalf("3.1.1 connect: %v (0x%02X)", err, rc)
	}
	s3.MustSubscribe("sess/v3/#", 1)
	s3.Disconnect()
	s5, ca, err := dialV5(t, n.MQTT, v5Options{ClientID: "persist-v5", Username: "sub5", Password: "pw-sub5", CleanStart: true, SessionExpiry: 3600})
	if err != nil {
		t.Fatalf("MQTT 5 connect: %v (%s)", err, connackString(ca))
	}
	s5.MustSubscribe(1, "sess/v5/#")
	s5.Disconnect()
	waitConnections(t, n, 0)

	// Publish while they are offline.
	p := mustV5(t, n.MQTT, mqttClientID("pub"), "pub", "pw-pub")
	for i := range sessionMessages {
		// One topic per client: an "Ordered Topic" (MQTT 4.6), and
		// queued messages are re-sent in the order they were published
		// anyway [MQTT-4.6.0-1].
		p.MustPublish("sess/v3/data", 1, false, fmt.Appendf(nil, "v3-%02d", i))
		p.MustPublish("sess/v5/data", 1, false, fmt.Appendf(nil, "v5-%02d", i))
	}
	p.Disconnect()

	restartMQTTNode(n)

	// MQTT 3.1.1, clean session false.
	s3, rc, err = dialV3(t, v3Options{Broker: tcpURL(n.MQTT), ClientID: "persist-v3", Username: "sub3", Password: "pw-sub3", CleanSession: false})
	if err != nil {
		t.Fatalf("3.1.1 reconnect after restart: %v (0x%02X)", err, rc)
	}
	if !s3.sessionPresent {
		t.Errorf("3.1.1 reconnect after restart: CONNACK session present = false, want true")
	}
	got3 := s3.Expect(sessionMessages)
	payloads3 := make([]string, len(got3))
	for i, m := range got3 {
		payloads3[i] = string(m.Payload())
		if m.Topic() != "sess/v3/data" || m.Qos() != 1 {
			t.Errorf("3.1.1 queued message %d: %s QoS %d, want sess/v3/data QoS 1", i, m.Topic(), m.Qos())
		}
	}
	checkQueued(t, "3.1.1 client (clean session false)", "v3", payloads3)

	// MQTT 5, clean start false, session expiry > 0.
	s5, ca, err = dialV5(t, n.MQTT, v5Options{ClientID: "persist-v5", Username: "sub5", Password: "pw-sub5", CleanStart: false, SessionExpiry: 3600})
	if err != nil {
		t.Fatalf("MQTT 5 reconnect after restart: %v (%s)", err, connackString(ca))
	}
	if !ca.SessionPresent {
		t.Errorf("MQTT 5 reconnect after restart: CONNACK session present = false, want true")
	}
	got5 := s5.Expect(sessionMessages)
	payloads5 := make([]string, len(got5))
	for i, m := range got5 {
		payloads5[i] = string(m.Payload)
		if m.Topic != "sess/v5/data" || m.QoS != 1 {
			t.Errorf("MQTT 5 queued message %d: %s QoS %d, want sess/v5/data QoS 1", i, m.Topic, m.QoS)
		}
	}
	checkQueued(t, "MQTT 5 client (session expiry 1h)", "v5", payloads5)

	// The subscriptions survived (nobody subscribed again), and nothing
	// else was queued: the next message each gets is a new one.
	p = mustV5(t, n.MQTT, mqttClientID("pub"), "pub", "pw-pub")
	p.MustPublish("sess/v3/after", 1, false, []byte("after"))
	p.MustPublish("sess/v5/after", 1, false, []byte("after"))
	if extra := s3.UntilMarker("sess/v3/after"); len(extra) != 0 {
		t.Errorf("3.1.1 client got more than the %d queued messages: %s", sessionMessages, v3Topics(extra))
	}
	if extra := s5.UntilMarker("sess/v5/after"); len(extra) != 0 {
		t.Errorf("MQTT 5 client got more than the %d queued messages: %s", sessionMessages, v5Topics(extra))
	}
}

// checkQueued checks that payloads are prefix-00 .. prefix-19, first
// each exactly once, then in order, so that a failure says which.
func checkQueued(t *testing.T, who, prefix string, payloads []string) {
	t.Helper()
	seen := map[string]int{}
	for _, p := range payloads {
		seen[p]++
	}
	for i := range sessionMessages {
		if p := fmt.Sprintf("%s-%02d", prefix, i); seen[p] != 1 {
			t.Errorf("%s: message %s received %d times, want once; received %v", who, p, seen[p], payloads)
			return
		}
	}
	for i, p := range payloads {
		if want := fmt.Sprintf("%s-%02d", prefix, i); p != want {
			t.Errorf("%s: all %d queued messages received, but out of order (MQTT-4.6.0-1: re-sent in the order published): %v",
				who, sessionMessages, payloads)
			return
		}
	}
}

// TestMQTTPersistentSessionOrder is TestMQTTPersistentSessionAcrossRestart
// without the restart, for MQTT 5: messages queued for an offline client
// on one topic are delivered in the order they were published when it
// comes back.
func TestMQTTPersistentSessionOrder(t *testing.T) {
	t.Parallel()
	n := startMQTTNode(t, "ROOST_AUTHN__ENABLE=false")
	s5, _, err := dialV5(t, n.MQTT, v5Options{ClientID: "order-v5", CleanStart: true, SessionExpiry: 3600})
	if err != nil {
		t.Fatal(err)
	}
	s5.MustSubscribe(1, "order/#")
	s5.Disconnect()
	waitConnections(t, n, 0)
	p := mustV5(t, n.MQTT, mqttClientID("pub"), "", "")
	for i := range sessionMessages {
		p.MustPublish("order/data", 1, false, fmt.Appendf(nil, "o-%02d", i))
	}
	s5, ca, err := dialV5(t, n.MQTT, v5Options{ClientID: "order-v5", CleanStart: false, SessionExpiry: 3600})
	if err != nil {
		t.Fatal(err)
	}
	if !ca.SessionPresent {
		t.Errorf("reconnect: session present = false, want true")
	}
	got := s5.Expect(sessionMessages)
	payloads := make([]string, len(got))
	for i, m := range got {
		payloads[i] = string(m.Payload)
	}
	checkQueued(t, "MQTT 5 client, no restart", "o", payloads)
}

// TestMQTTCleanSessionNotKept is the control: a 3.1.1 client with clean
// session true and an MQTT 5 client with session expiry 0 keep nothing
// across a disconnect: reconnecting (without clean start), they are told
// no session is present and receive nothing published meanwhile.
func TestMQTTCleanSessionNotKept(t *testing.T) {
	t.Parallel()
	n := startMQTTNode(t, "ROOST_AUTHN__ENABLE=false")
	s3 := mustV3(t, n.MQTT, "clean-v3", "", "")
	s3.MustSubscribe("clean/v3/#", 1)
	s3.Disconnect()
	s5, _, err := dialV5(t, n.MQTT, v5Options{ClientID: "clean-v5", CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	s5.MustSubscribe(1, "clean/v5/#")
	s5.Disconnect()
	waitConnections(t, n, 0)

	p := mustV5(t, n.MQTT, mqttClientID("pub"), "", "")
	p.MustPublish("clean/v3/x", 1, false, []byte("lost"))
	p.MustPublish("clean/v5/x", 1, false, []byte("lost"))

	s3, _, err = dialV3(t, v3Options{Broker: tcpURL(n.MQTT), ClientID: "clean-v3", CleanSession: false})
	if err != nil {
		t.Fatal(err)
	}
	if s3.sessionPresent {
		t.Errorf("3.1.1 client that had clean session true: session present on reconnect")
	}
	s5, ca, err := dialV5(t, n.MQTT, v5Options{ClientID: "clean-v5", CleanStart: false, SessionExpiry: 60})
	if err != nil {
		t.Fatal(err)
	}
	if ca.SessionPresent {
		t.Errorf("MQTT 5 client that had session expiry 0: session present on reconnect")
	}
	// Subscribe again: the first message each gets must be the new one.
	s3.MustSubscribe("clean/v3/#", 1)
	s5.MustSubscribe(1, "clean/v5/#")
	p.MustPublish("clean/v3/new", 1, false, []byte("new"))
	p.MustPublish("clean/v5/new", 1, false, []byte("new"))
	if got := s3.UntilMarker("clean/v3/new"); len(got) != 0 {
		t.Errorf("3.1.1 clean-session client got %s from its previous session", v3Topics(got))
	}
	if got := s5.UntilMarker("clean/v5/new"); len(got) != 0 {
		t.Errorf("MQTT 5 client with session expiry 0 got %s from its previous session", v5Topics(got))
	}
}
