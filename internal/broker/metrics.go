package broker

import (
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roostmq/roost/internal/store"
)

// Metrics are the broker's counters since start (gauges where noted).
type Metrics struct {
	Connections      int64 `json:"connections"`       // gauge: connected clients
	Sessions         int64 `json:"sessions"`          // gauge: known sessions, connected or not
	Subscriptions    int64 `json:"subscriptions"`     // gauge
	Retained         int64 `json:"retained"`          // gauge: retained messages in the store (cluster-wide)
	Inflight         int64 `json:"inflight"`          // gauge: QoS 1/2 messages in flight or queued
	MessagesReceived int64 `json:"messages_received"` // PUBLISH packets from clients
	MessagesSent     int64 `json:"messages_sent"`     // PUBLISH packets to clients
	MessagesDropped  int64 `json:"messages_dropped"`  // not delivered: a client's queue was full
	InflightDropped  int64 `json:"inflight_dropped"`  // QoS 1/2 not sent: a client's inflight quota or packet ids ran out
	PacketsReceived  int64 `json:"packets_received"`
	PacketsSent      int64 `json:"packets_sent"`
	BytesReceived    int64 `json:"bytes_received"`
	BytesSent        int64 `json:"bytes_sent"`

	QueuedBytes int64 `json:"queued_bytes"` // gauge: memory of the clients' write queues (write_queue.go)

	// The messages above by QoS (index 0, 1, 2): received and sent by
	// the PUBLISH packet's own QoS; dropped by the QoS they would have
	// been delivered with (drops.go), by mochi's outbound channel or by a
	// client's write queue; they add up to MessagesDropped.
	ReceivedByQoS QoSCounts `json:"messages_received_by_qos"`
	SentByQoS     QoSCounts `json:"messages_sent_by_qos"`
	DroppedByQoS  QoSCounts `json:"messages_dropped_by_qos"`
}

// QoSCounts are counts per MQTT QoS level: [0], [1], [2].
type QoSCounts [3]int64

// Metrics returns a snapshot of the broker's counters. It is cheap (no
// store scan): every scrape of /metrics calls it.
func (b *Broker) Metrics() Metrics {
	info := b.server.Info
	m := Metrics{
		Connections:      atomic.LoadInt64(&info.ClientsConnected),
		Sessions:         int64(b.server.Clients.Len()),
		Subscriptions:    atomic.LoadInt64(&info.Subscriptions),
		Retained:         b.st.Count(store.TableRetained),
		Inflight:         atomic.LoadInt64(&info.Inflight),
		MessagesReceived: atomic.LoadInt64(&info.MessagesReceived),
		MessagesSent:     atomic.LoadInt64(&info.MessagesSent),
		MessagesDropped:  atomic.LoadInt64(&info.MessagesDropped),
		InflightDropped:  atomic.LoadInt64(&info.InflightDropped),
		PacketsReceived:  atomic.LoadInt64(&info.PacketsReceived),
		PacketsSent:      atomic.LoadInt64(&info.PacketsSent),
		BytesReceived:    atomic.LoadInt64(&info.BytesReceived),
		BytesSent:        atomic.LoadInt64(&info.BytesSent),
		QueuedBytes:      b.queues.held.Load(),
	}
	for q := range 3 {
		m.ReceivedByQoS[q] = b.qos.received[q].Load()
		m.SentByQoS[q] = b.qos.sent[q].Load()
		m.DroppedByQoS[q] = b.dropped[q].Load()
	}
	return m
}

// qosHook counts PUBLISH packets by QoS as mochi counts them in total:
// read from a client connection, written to one (less what a client's
// write queue then drops, drops.go). Drops are counted by dropHook.
// Messages from other nodes (InjectPacket) are
// not read from a connection, so not counted as received.
type qosHook struct {
	mqtt.HookBase
	received, sent [3]atomic.Int64
}

func (h *qosHook) ID() string { return "roost-qos-counts" }

func (h *qosHook) Provides(b byte) bool {
	return b == mqtt.OnPacketRead || b == mqtt.OnPacketSent
}

func (h *qosHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if q := pk.FixedHeader.Qos; pk.FixedHeader.Type == packets.Publish && q < 3 {
		h.received[q].Add(1)
	}
	return pk, nil
}

func (h *qosHook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, b []byte) {
	if q := pk.FixedHeader.Qos; pk.FixedHeader.Type == packets.Publish && q < 3 {
		h.sent[q].Add(1)
	}
}
