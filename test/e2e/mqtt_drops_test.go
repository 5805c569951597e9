package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// dropMetrics is the part of GET /api/v1/metrics about drops.
type dropMetrics struct {
	MessagesDropped     int64  `json:"messages_dropped"`
	MessagesDroppedQoS0 int64  `json:"messages_dropped_qos0"`
	MessagesDroppedQoS1 int64  `json:"messages_dropped_qos1"`
	MessagesDroppedQoS2 int64  `json:"messages_dropped_qos2"`
	InflightDropped     int64  `json:"inflight_dropped"`
	QueuedBytes         *int64 `json:"queued_bytes"`
}

// TestMQTTStalledSubscriberDropsCounted: with mqtt.max_queued_bytes set to
// 64 KiB, a subscriber that stops reading while 10 MB of QoS 0 messages
// are published to it holds at most that much in the node's memory; what
// does not fit is dropped, counted in GET /api/v1/metrics (by QoS) and in
// `roost ctl metrics`, and logged with the client id; when the client
// goes, its queue is given back.
func TestMQTTStalledSubscriberDropsCounted(t *testing.T) {
	t.Parallel()
	const budget, count, size = 64 << 10, 2500, 4096
	n := startMQTTNode(t, "ROOST_AUTHN__ENABLE=false",
		fmt.Sprintf("ROOST_MQTT__MAX_QUEUED_BYTES=%d", budget), "ROOST_MQTT__MAX_PENDING_WRITES=16")
	var key struct{ Name, Secret string }
	if err := json.Unmarshal([]byte(n.mustCtl("apikeys", "create", "drops", "--output", "json")), &key); err != nil {
		t.Fatal(err)
	}
	metrics := func() dropMetrics {
		t.Helper()
		r := doAPI(t, n.API, apiCall{Method: "GET", Path: "/api/v1/metrics", BasicUser: key.Name, BasicPass: key.Secret})
		var m dropMetrics
		if r.Status != 200 || json.Unmarshal(r.Body, &m) != nil || m.QueuedBytes == nil {
			t.Fatalf("GET /api/v1/metrics: %s", r)
		}
		return m
	}

	// The stalled subscriber: paho with a Receive Maximum of 1 buffers one
	// message; its handler does not return, so paho stops reading.
	conn, err := net.DialTimeout("tcp", n.MQTT, mqttWait)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	stalled := paho.NewClient(paho.ClientConfig{Conn: conn, PacketTimeout: mqttWait,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(paho.PublishReceived) (bool, error) {
			<-release
			return true, nil
		}}})
	one := uint16(1)
	id := mqttClientID("stalled")
	ctx, cancel := mqttCtx()
	defer cancel()
	if _, err := stalled.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{ReceiveMaximum: &one}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stalled.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "drops/t", QoS: 0}}}); err != nil {
		t.Fatal(err)
	}

	pub := mustV5(t, n.MQTT, mqttClientID("pub"), "", "")
	payload := make([]byte, size)
	start := time.Now()
	for range count {
		pub.MustPublish("drops/t", 0, false, payload)
	}
	// The node has processed them all once a QoS 1 round trip after them is done.
	pub.MustPublish("drops/sync", 1, false, []byte("x"))

	// Counted, and no longer changing: the stalled client's writer has
	// taken every message the node queued for it.
	var m dropMetrics
	mqttEventually(t, mqttWait, "drops counted", func() bool {
		prev := m
		m = metrics()
		return m.MessagesDroppedQoS0 > 0 && m.MessagesDropped == m.MessagesDroppedQoS0 && m.MessagesDropped == prev.MessagesDropped
	})
	if m.MessagesDroppedQoS1 != 0 || m.MessagesDroppedQoS2 != 0 || m.InflightDropped != 0 {
		t.Errorf("metrics: %+v; want only QoS 0 drops", m)
	}
	// Kernel buffers hold a few MB; the node holds at most the budget
	// (plus the odd control packet).
	if q := *m.QueuedBytes; q > budget+64<<10 || m.MessagesDropped > count {
		t.Errorf("metrics: %d dropped, queued_bytes %d; want at most the %d sent, and at most %d bytes queued",
			m.MessagesDropped, q, count, budget)
	}
	out := n.mustCtl("metrics")
	mustContain(t, "roost ctl metrics", out, "messages dropped:", fmt.Sprintf("%d (QoS 0: %d, QoS 1: 0, QoS 2: 0)",
		m.MessagesDropped, m.MessagesDroppedQoS0), "queued bytes:")
	// One line for the first drop, then at most one per 10 s.
	var lines int
	for _, l := range strings.Split(n.Logs(), "\n") {
		if strings.Contains(l, `msg="messages to a client dropped: its queue is full"`) && strings.Contains(l, " client="+id+" qos0=") {
			lines++
		}
	}
	if most := 1 + int(time.Since(start)/(10*time.Second)); lines < 1 || lines > most {
		t.Errorf("%d log lines about the drops in %s, want 1, then one per 10 s\n%s", lines, time.Since(start), n.Logs())
	}

	close(release)
	conn.Close()
	mqttEventually(t, mqttWait, "the stalled client's queue given back", func() bool { return *metrics().QueuedBytes == 0 })
	_ = stalled.Disconnect(&paho.Disconnect{})
}
