package broker

import (
	"sync/atomic"

	"github.com/roostmq/roost/internal/store"
)

// Metrics are the broker's counters since start (gauges where noted).
type Metrics struct {
	Connections      int64 `json:"connections"`       // gauge: connected clients
	Sessions         int64 `json:"sessions"`          // gauge: known sessions, connected or not
	Subscriptions    int64 `json:"subscriptions"`     // gauge
	Retained         int64 `json:"retained"`          // gauge: retained messages served by this node
	Inflight         int64 `json:"inflight"`          // gauge: QoS 1/2 messages in flight or queued
	MessagesReceived int64 `json:"messages_received"` // PUBLISH packets from clients
	MessagesSent     int64 `json:"messages_sent"`     // PUBLISH packets to clients
	MessagesDropped  int64 `json:"messages_dropped"`  // not delivered: a client's queue was full
	// MessagesDropped by the QoS they would have been delivered with.
	MessagesDroppedQoS0 int64 `json:"messages_dropped_qos0"`
	MessagesDroppedQoS1 int64 `json:"messages_dropped_qos1"`
	MessagesDroppedQoS2 int64 `json:"messages_dropped_qos2"`
	// QoS 1/2 messages not queued for a session that held MaxInflight
	// of them or had no packet id left.
	InflightDropped int64 `json:"inflight_dropped"`
	QueuedBytes     int64 `json:"queued_bytes"` // gauge: memory of the clients' write queues
	PacketsReceived int64 `json:"packets_received"`
	PacketsSent     int64 `json:"packets_sent"`
	BytesReceived   int64 `json:"bytes_received"`
	BytesSent       int64 `json:"bytes_sent"`
}

// Metrics returns a snapshot of the broker's counters.
func (b *Broker) Metrics() Metrics {
	info := b.server.Info
	m := Metrics{
		Connections:         atomic.LoadInt64(&info.ClientsConnected),
		Sessions:            int64(b.server.Clients.Len()),
		Subscriptions:       atomic.LoadInt64(&info.Subscriptions),
		Inflight:            atomic.LoadInt64(&info.Inflight),
		MessagesReceived:    atomic.LoadInt64(&info.MessagesReceived),
		MessagesSent:        atomic.LoadInt64(&info.MessagesSent),
		MessagesDropped:     atomic.LoadInt64(&info.MessagesDropped),
		MessagesDroppedQoS0: b.dropped[0].Load(),
		MessagesDroppedQoS1: b.dropped[1].Load(),
		MessagesDroppedQoS2: b.dropped[2].Load(),
		InflightDropped:     atomic.LoadInt64(&info.InflightDropped),
		QueuedBytes:         b.queues.held.Load(),
		PacketsReceived:     atomic.LoadInt64(&info.PacketsReceived),
		PacketsSent:         atomic.LoadInt64(&info.PacketsSent),
		BytesReceived:       atomic.LoadInt64(&info.BytesReceived),
		BytesSent:           atomic.LoadInt64(&info.BytesSent),
	}
	_ = b.st.View(func(tx *store.Tx) error {
		m.Retained = int64(tx.Count(store.TableRetained))
		return nil
	})
	return m
}
