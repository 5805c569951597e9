package e2e

import (
	"bytes"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

type retainedJSON struct {
	Topic         string `json:"topic"`
	QoS           byte   `json:"qos"`
	PayloadSize   int    `json:"payload_size"`
	From          string `json:"from"`
	MessageExpiry uint32 `json:"message_expiry"`
	Expired       bool   `json:"expired"`
}

func listRetained(t *testing.T, n *node) map[string]retainedJSON {
	t.Helper()
	var rs []retainedJSON
	mqttCtlJSON(n, &rs, "retained", "list")
	m := map[string]retainedJSON{}
	for _, r := range rs {
		m[r.Topic] = r
	}
	return m
}

// retainedOn subscribes c to filter and returns the retained messages
// delivered for it, sorted by topic. The client then publishes a marker
// under markerTopic (matched by filter, not retained): the server sends
// the retained messages of a SUBSCRIBE before it reads the client's next
// packet, so they all come before the marker.
func retainedOn(t *testing.T, c *v5Client, filter, markerTopic string) []*paho.Publish {
	t.Helper()
	c.MustSubscribe(1, filter)
	c.MustPublish(markerTopic, 1, false, []byte("marker"))
	got := dropLiveCopies(c.UntilMarker(markerTopic))
	sort.Slice(got, func(i, j int) bool { return got[i].Topic < got[j].Topic })
	return got
}

// dropLiveCopies drops live deliveries (retain flag clear) of messages
// that also came as retained ones. The server acknowledges a QoS 1
// publish before it delivers it (DESIGN.md §4, mochi): a subscription
// made right after another client's PUBACK can still get that publish
// live, besides the same message as retained.
func dropLiveCopies(ms []*paho.Publish) []*paho.Publish {
	retained := map[string]bool{}
	for _, m := range ms {
		if m.Retain {
			retained[m.Topic+"\x00"+string(m.Payload)] = true
		}
	}
	out := ms[:0]
	for _, m := range ms {
		if !m.Retain && retained[m.Topic+"\x00"+string(m.Payload)] {
			continue
		}
		out = append(out, m)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// TestMQTTRetainedAcrossRestart publishes retained messages (a binary
// payload with every MQTT 5 publish property, a UTF-8 one, a QoS 0 one,
// and one deleted by an empty retained payload), stops the node with
// SIGTERM right after the last PUBACK and starts it again: a new MQTT 5
// subscriber gets exactly the three live messages, byte-identical, with
// their properties and the retain flag; a 3.1.1 subscriber gets the same
// bytes; `ctl retained list` agrees; `ctl retained del` deletes.
func TestMQTTRetainedAcrossRestart(t *testing.T) {
	t.Parallel()
	n := startMQTTNode(t)
	n.mustCtl("users", "add", "pub", "pw")

	bin := make([]byte, 0, 1024)
	for i := range 1024 {
		bin = append(bin, byte(i*7+i/256)) // every byte value, zeros included
	}
	bin = append(bin, 0, 0, 0xff, 0)
	corr := []byte{0, 1, 2, 0xfe, 0xff, 0}
	userProps := paho.UserProperties{{Key: "k", Value: "v1"}, {Key: "k", Value: "v2"}, {Key: "ünï", Value: "☃ snow"}}
	text := []byte("héllo wörld ✓")

	p := mustV5(t, n.MQTT, "ret-publisher", "pub", "pw")
	p.MustPublish("ret/q0", 0, true, []byte("qos zero"))
	published := time.Now()
	for _, pub := range []*paho.Publish{
		{Topic: "ret/bin", QoS: 1, Retain: true, Payload: bin, Properties: &paho.PublishProperties{
			ContentType: "application/x-roost-test", CorrelationData: corr, ResponseTopic: "reply/here",
			PayloadFormat: ptr(byte(0)), MessageExpiry: ptr(uint32(3600)), User: userProps}},
		{Topic: "ret/text", QoS: 1, Retain: true, Payload: text, Properties: &paho.PublishProperties{
			ContentType: "text/plain; charset=utf-8", PayloadFormat: ptr(byte(1))}},
		{Topic: "ret/del", QoS: 1, Retain: true, Payload: []byte("to be deleted")},
		{Topic: "ret/del", QoS: 1, Retain: true, Payload: nil},
	} {
		// Not fatal: the message is retained whatever the reason code
		// (see TestMQTTPubackReasonCode for the PUBACK itself).
		if rc := p.Publish(pub); rc != rcSuccess {
			t.Errorf("publish retained %s: PUBACK 0x%02X, want 0x00", pub.Topic, rc)
		}
	}
	p.Disconnect()
	restartMQTTNode(n)

	sub := mustV5(t, n.MQTT, mqttClientID("ret-sub"), "pub", "pw")
	got := retainedOn(t, sub, "ret/#", "ret/zz-marker")
	if topics := v5Topics(got); len(got) != 3 || got[0].Topic != "ret/bin" || got[1].Topic != "ret/q0" || got[2].Topic != "ret/text" {
		t.Fatalf("retained after restart: %s, want exactly ret/bin, ret/q0, ret/text (ret/del was deleted by an empty payload)", topics)
	}
	b, q0, tx := got[0], got[1], got[2]
	for _, m := range got {
		if !m.Retain {
			t.Errorf("%s delivered on subscribe without the retain flag", m.Topic)
		}
	}
	if !bytes.Equal(b.Payload, bin) {
		t.Errorf("ret/bin payload differs after restart: %d bytes, want %d (first bytes % x)", len(b.Payload), len(bin), b.Payload[:min(16, len(b.Payload))])
	}
	if b.QoS != 1 || q0.QoS != 0 || tx.QoS != 1 {
		t.Errorf("QoS delivered: ret/bin %d (want 1), ret/q0 %d (want 0), ret/text %d (want 1)", b.QoS, q0.QoS, tx.QoS)
	}
	if string(q0.Payload) != "qos zero" {
		t.Errorf("ret/q0 payload %q, want \"qos zero\"", q0.Payload)
	}
	if bp := b.Properties; bp == nil {
		t.Errorf("ret/bin delivered without properties")
	} else {
		if bp.ContentType != "application/x-roost-test" {
			t.Errorf("ret/bin content type %q", bp.ContentType)
		}
		if !bytes.Equal(bp.CorrelationData, corr) {
			t.Errorf("ret/bin correlation data % x, want % x", bp.CorrelationData, corr)
		}
		if bp.ResponseTopic != "reply/here" {
			t.Errorf("ret/bin response topic %q", bp.ResponseTopic)
		}
		if !slices.Equal(bp.User, userProps) {
			t.Errorf("ret/bin user properties %v, want %v (order and duplicates kept)", bp.User, userProps)
		}
		// Payload format 0 (unspecified bytes) and an absent property mean the same.
		if bp.PayloadFormat != nil && *bp.PayloadFormat != 0 {
			t.Errorf("ret/bin payload format %d, want 0", *bp.PayloadFormat)
		}
		// The expiry interval is what is left of 3600s.
		left := uint32(3600 - time.Since(published).Seconds() - 2)
		if bp.MessageExpiry == nil || *bp.MessageExpiry > 3600 || *bp.MessageExpiry < left {
			t.Errorf("ret/bin message expiry %v, want in [%d, 3600]", derefU32(bp.MessageExpiry), left)
		}
	}
	if !bytes.Equal(tx.Payload, text) {
		t.Errorf("ret/text payload %q, want %q", tx.Payload, text)
	}
	if tp := tx.Properties; tp == nil || tp.PayloadFormat == nil || *tp.PayloadFormat != 1 || tp.ContentType != "text/plain; charset=utf-8" {
		t.Errorf("ret/text properties %+v, want payload format 1 and content type text/plain; charset=utf-8", tp)
	} else if tp.MessageExpiry != nil {
		t.Errorf("ret/text has message expiry %d, was published without one", *tp.MessageExpiry)
	}

	// MQTT 3.1.1 gets the same bytes.
	s3 := mustV3(t, n.MQTT, mqttClientID("ret-sub3"), "pub", "pw")
	s3.MustSubscribe("ret/bin", 1)
	if m := s3.Expect(1)[0]; m.Topic() != "ret/bin" || !m.Retained() || m.Qos() != 1 || !bytes.Equal(m.Payload(), bin) {
		t.Errorf("3.1.1 subscriber got %s retained=%v qos=%d %d bytes (equal=%v), want ret/bin retained qos 1 %d identical bytes",
			m.Topic(), m.Retained(), m.Qos(), len(m.Payload()), bytes.Equal(m.Payload(), bin), len(bin))
	}

	// The management view agrees.
	rl := listRetained(t, n)
	if len(rl) != 3 || rl["ret/bin"].PayloadSize != len(bin) || rl["ret/bin"].QoS != 1 || rl["ret/q0"].QoS != 0 ||
		rl["ret/text"].PayloadSize != len(text) {
		t.Errorf("ctl retained list after restart: %+v", rl)
	}
	if _, ok := rl["ret/del"]; ok {
		t.Errorf("ctl retained list shows ret/del, deleted by an empty retained payload")
	}

	// ctl retained del removes one for new subscribers.
	n.mustCtl("retained", "del", "ret/text")
	sub2 := mustV5(t, n.MQTT, mqttClientID("ret-sub2"), "pub", "pw")
	got = retainedOn(t, sub2, "ret/#", "ret/zz-marker")
	if len(got) != 2 || got[0].Topic != "ret/bin" || got[1].Topic != "ret/q0" {
		t.Errorf("retained after ctl retained del ret/text: %s, want ret/bin, ret/q0", v5Topics(got))
	}
}

func derefU32(p *uint32) any {
	if p == nil {
		return "absent"
	}
	return *p
}

// TestMQTTRetainedReplaceAndDelete checks, without a restart, that a
// retained publish replaces the previous retained message of its topic and
// an empty retained publish deletes it, at once: a subscriber that comes
// right after (the publishes acknowledged) sees the new state, not the
// old one, and so does `ctl retained list` once the writes are stored.
func TestMQTTRetainedReplaceAndDelete(t *testing.T) {
	t.Parallel()
	n := startMQTTNode(t, "ROOST_AUTHN__ENABLE=false")
	p5 := mustV5(t, n.MQTT, mqttClientID("p5"), "", "")
	p3 := mustV3(t, n.MQTT, mqttClientID("p3"), "", "")
	p5.MustPublish("del/a", 1, true, []byte("a"))
	p3.Publish("del/b", 1, true, []byte("b"))
	p5.MustPublish("del/c", 1, true, []byte("c"))
	p5.MustPublish("del/r", 1, true, []byte("v1"))

	s := mustV5(t, n.MQTT, mqttClientID("s1"), "", "")
	if got := retainedOn(t, s, "del/#", "del/zz-marker"); len(got) != 4 {
		t.Fatalf("retained before delete: %s, want del/a, del/b, del/c, del/r", v5Topics(got))
	}
	p5.MustPublish("del/a", 1, true, nil)
	p3.Publish("del/b", 1, true, nil)
	p5.MustPublish("del/r", 1, true, []byte("v2"))
	// The live subscriber gets the publishes themselves, empty ones included.
	live := s.Expect(3)
	sort.Slice(live, func(i, j int) bool { return live[i].Topic < live[j].Topic })
	if v5Topics(live) != `[del/a="", del/b="", del/r="v2"]` {
		t.Errorf("live subscriber got %s, want the two empty publishes and del/r=v2", v5Topics(live))
	}
	s2 := mustV5(t, n.MQTT, mqttClientID("s2"), "", "")
	if got := retainedOn(t, s2, "del/#", "del/zz-marker"); v5Topics(got) != `[del/c="c", del/r="v2"]` {
		t.Errorf("retained right after the empty and replacing publishes: %s, want [del/c=\"c\", del/r=\"v2\"]", v5Topics(got))
	}
	mqttEventually(t, mqttWait, "ctl retained list shows del/c and del/r (2 bytes)", func() bool {
		rl := listRetained(t, n)
		return len(rl) == 2 && rl["del/c"].PayloadSize == 1 && rl["del/r"].PayloadSize == 2
	})
	// And the tree did not go back to an older state meanwhile.
	s3 := mustV5(t, n.MQTT, mqttClientID("s3"), "", "")
	if got := retainedOn(t, s3, "del/#", "del/zz-marker"); v5Topics(got) != `[del/c="c", del/r="v2"]` {
		t.Errorf("retained once stored: %s, want [del/c=\"c\", del/r=\"v2\"]", v5Topics(got))
	}
}

// TestMQTTRetainedExpiry publishes a retained message with a message
// expiry of 2s: a subscriber within the 2s gets it (with at most 2s
// left); once the 2s have passed a new subscriber does not, neither before
// nor after a node restart, while a retained message without expiry is
// still delivered.
func TestMQTTRetainedExpiry(t *testing.T) {
	t.Parallel()
	n := startMQTTNode(t, "ROOST_AUTHN__ENABLE=false")
	p := mustV5(t, n.MQTT, mqttClientID("p"), "", "")
	p.MustPublish("exp/keep", 1, true, []byte("keep"))
	sent := time.Now()
	if rc := p.Publish(&paho.Publish{Topic: "exp/short", QoS: 1, Retain: true, Payload: []byte("short-lived"),
		Properties: &paho.PublishProperties{MessageExpiry: ptr(uint32(2))}}); rc != rcSuccess {
		t.Fatalf("publish: PUBACK 0x%02X", rc)
	}
	acked := time.Now()

	s := mustV5(t, n.MQTT, mqttClientID("s1"), "", "")
	got := retainedOn(t, s, "exp/#", "exp/zz-marker")
	if time.Since(sent) < 2*time.Second { // only meaningful while the message is live
		if len(got) != 2 || got[0].Topic != "exp/keep" || got[1].Topic != "exp/short" {
			t.Fatalf("retained within the expiry interval: %s, want exp/keep, exp/short", v5Topics(got))
		}
		if e := got[1].Properties; e == nil || e.MessageExpiry == nil || *e.MessageExpiry > 2 {
			t.Errorf("exp/short delivered with message expiry %v, want at most 2", e)
		}
	}

	// Let the 2s pass (a precondition, not an assertion), then subscribe.
	time.Sleep(time.Until(acked.Add(2*time.Second + 100*time.Millisecond)))
	s2 := mustV5(t, n.MQTT, mqttClientID("s2"), "", "")
	got = retainedOn(t, s2, "exp/#", "exp/zz-marker")
	if len(got) != 1 || got[0].Topic != "exp/keep" {
		t.Errorf("retained %s after exp/short's 2s expiry passed: %s, want exp/keep only",
			time.Since(acked).Round(time.Millisecond), v5Topics(got))
	}

	restartMQTTNode(n)
	s3 := mustV5(t, n.MQTT, mqttClientID("s3"), "", "")
	got = retainedOn(t, s3, "exp/#", "exp/zz-marker")
	if len(got) != 1 || got[0].Topic != "exp/keep" {
		t.Errorf("retained after a restart, exp/short expired: %s, want exp/keep only", v5Topics(got))
	}
	if r, ok := listRetained(t, n)["exp/short"]; ok && !r.Expired {
		t.Errorf("ctl retained list shows the expired exp/short as live: %+v", r)
	}
}

// TestMQTTRetainedParentLevelWildcard checks that a subscription "a/b/#"
// gets the retained message of "a/b" itself: "#" also matches the parent
// level (MQTT 3.1.1 4.7.1.2, MQTT 5 4.7.1.2: "sport/#" matches "sport"),
// as a live publish to "a/b" does.
func TestMQTTRetainedParentLevelWildcard(t *testing.T) {
	t.Parallel()
	n := startMQTTNode(t, "ROOST_AUTHN__ENABLE=false")
	p := mustV5(t, n.MQTT, mqttClientID("p"), "", "")
	p.MustPublish("home/kitchen", 1, true, []byte("parent"))
	p.MustPublish("home/kitchen/temp", 1, true, []byte("child"))

	c := mustV5(t, n.MQTT, mqttClientID("c"), "", "")
	got := retainedOn(t, c, "home/kitchen/#", "home/kitchen/zz-marker")
	if len(got) != 2 || got[0].Topic != "home/kitchen" || got[1].Topic != "home/kitchen/temp" {
		t.Errorf("retained for home/kitchen/#: %s, want home/kitchen and home/kitchen/temp", v5Topics(got))
	}
	// A live publish to the parent level does match the same filter.
	p.MustPublish("home/kitchen", 1, false, []byte("live"))
	if m := c.Expect(1)[0]; m.Topic != "home/kitchen" || string(m.Payload) != "live" {
		t.Errorf("live publish: got %s=%q, want home/kitchen=\"live\"", m.Topic, m.Payload)
	}
	c3 := mustV3(t, n.MQTT, mqttClientID("c3"), "", "")
	c3.MustSubscribe("home/#", 1)
	c3.Publish("home/zz-marker", 1, false, nil)
	got3 := c3.UntilMarker("home/zz-marker")
	sort.Slice(got3, func(i, j int) bool { return got3[i].Topic() < got3[j].Topic() })
	checkTopicsV3(t, "3.1.1 subscriber of home/#", got3, []string{"home/kitchen", "home/kitchen/temp"})
}
