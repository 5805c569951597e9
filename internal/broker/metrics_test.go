package broker

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/roostmq/roost/internal/store"
)

func TestMetricsCountMessagesByQoS(t *testing.T) {
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	sub2 := mustV5(t, n.tcp(), "sub2", "", "")
	sub2.mustSub("m/#", 2)
	sub0 := mustV5(t, n.tcp(), "sub0", "", "")
	sub0.mustSub("m/#", 0)
	pub := mustV5(t, n.tcp(), "pub", "", "")
	before := n.b.Metrics()
	published := [3]int64{3, 2, 1}
	for q, count := range published {
		for range count {
			pub.mustPub("m/x", "hello", byte(q), false)
		}
	}
	for range 6 {
		sub2.next()
		sub0.next()
	}
	// A client can read a message before mochi's writer returns and calls
	// OnPacketSent, so the sent counts settle a moment after the last
	// message arrived.
	// sub2 gets each message at its own QoS, sub0 all six at QoS 0.
	want := QoSCounts{3 + 6, 2, 1}
	var m Metrics
	var in, out QoSCounts
	settled := func() bool {
		m = n.b.Metrics()
		for q := range 3 {
			in[q] = m.ReceivedByQoS[q] - before.ReceivedByQoS[q]
			out[q] = m.SentByQoS[q] - before.SentByQoS[q]
		}
		return out == want
	}
	for deadline := time.Now().Add(waitFor); !settled() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if in != QoSCounts(published) {
		t.Errorf("received by QoS %v, want %v (what the client published)", in, published)
	}
	if out != want {
		t.Errorf("sent by QoS %v, want %v", out, want)
	}
	if sum := m.ReceivedByQoS[0] + m.ReceivedByQoS[1] + m.ReceivedByQoS[2]; sum != m.MessagesReceived {
		t.Errorf("received by QoS sum to %d, mochi counted %d", sum, m.MessagesReceived)
	}
	if sum := m.SentByQoS[0] + m.SentByQoS[1] + m.SentByQoS[2]; sum != m.MessagesSent {
		t.Errorf("sent by QoS sum to %d, mochi counted %d", sum, m.MessagesSent)
	}
	if m.Connections != 3 {
		t.Errorf("connections = %d, want 3", m.Connections)
	}

	// Retained messages: the count follows the store, with no scan.
	pub.mustPub("r/1", "a", 1, true)
	pub.mustPub("r/2", "b", 1, true)
	eventually(t, "two retained messages counted", func() bool { return n.b.Metrics().Retained == 2 })
	pub.mustPub("r/1", "", 1, true) // an empty retained payload deletes
	eventually(t, "one retained message counted", func() bool { return n.b.Metrics().Retained == 1 })
	if err := n.st.View(func(tx *store.Tx) error {
		if c := tx.Count(store.TableRetained); c != 1 {
			t.Errorf("the store holds %d retained messages, the metric says 1", c)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A subscriber that stops reading gets its outbound queue full: mochi
// drops what does not fit, and the drops are counted by QoS.
func TestMetricsCountDropsByQoS(t *testing.T) {
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false; o.MaxPendingWrites = 1 })
	conn, err := net.DialTimeout("tcp", n.tcp(), waitFor)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// MQTT 3.1.1 CONNECT (clean session, client id "stuck") and a QoS 0
	// SUBSCRIBE to d/#; then nothing is read any more.
	conn.Write([]byte{0x10, 17, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 5, 's', 't', 'u', 'c', 'k'})
	readPacket(t, conn, 0x20) // CONNACK
	conn.Write([]byte{0x82, 8, 0, 1, 0, 3, 'd', '/', '#', 0})
	readPacket(t, conn, 0x90) // SUBACK

	pub := mustV5(t, n.tcp(), "pub", "", "")
	payload := bytes.Repeat([]byte("x"), 128<<10)
	const sent = 200 // 25 MiB: more than the loopback socket buffers hold
	for range sent {
		if _, err := pub.pub(&paho.Publish{Topic: "d/x", Payload: payload, QoS: 0}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every publish received and drops seen", func() bool {
		m := n.b.Metrics()
		return m.ReceivedByQoS[0] == sent && m.MessagesDropped > 0
	})
	m := n.b.Metrics()
	if m.DroppedByQoS[0] != m.MessagesDropped || m.DroppedByQoS[1] != 0 || m.DroppedByQoS[2] != 0 {
		t.Errorf("dropped by QoS %v, mochi counted %d drops, all of QoS 0 messages", m.DroppedByQoS, m.MessagesDropped)
	}
}

// readPacket reads one MQTT packet and checks its type byte.
func readPacket(t *testing.T, c net.Conn, want byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitFor))
	defer c.SetReadDeadline(time.Time{})
	h := make([]byte, 2)
	if _, err := io.ReadFull(c, h); err != nil {
		t.Fatalf("read packet 0x%02x: %v", want, err)
	}
	if h[0] != want {
		t.Fatalf("got packet 0x%02x, want 0x%02x", h[0], want)
	}
	if _, err := io.ReadFull(c, make([]byte, h[1])); err != nil {
		t.Fatal(err)
	}
}
