package broker

import (
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Messages dropped for a connected client: by its write queue, full
// (write_queue.go), or by mochi, when its outbound channel of
// Options.MaxPendingWrites packets is full (pace.go). dropHook counts them
// by the QoS they would have been delivered with, adds the write queue's
// to mochi's MessagesDropped (and takes them out of what mochi counted as
// sent), and logs them, one line per client at most every dropLogEvery
// (Broker.dropLogEvery in tests), with the counts since the last line.

const dropLogEvery = 10 * time.Second

type dropHook struct {
	mqtt.HookBase
	b *Broker
}

func (h *dropHook) ID() string { return "roost-drops" }

func (h *dropHook) Provides(b byte) bool {
	return b == mqtt.OnPublishDropped || b == mqtt.OnSessionEstablish
}

// OnSessionEstablish has the write queue report its drops, before the
// client can be sent a message.
func (h *dropHook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	st := connState(cl)
	if st == nil {
		return
	}
	st.wq.mu.Lock()
	st.wq.onDrop = func(r dropReport) { h.b.queueDropped(cl, st, r) }
	st.wq.aliases = cl.Properties.ProtocolVersion >= 5 && cl.Properties.Props.TopicAliasMaximum > 0
	st.wq.mu.Unlock()
}

func (b *Broker) queueDropped(cl *mqtt.Client, st *clientConn, r dropReport) {
	info := b.server.Info
	n := r.count()
	atomic.AddInt64(&info.MessagesDropped, n)
	// mochi counts the write as sent, a packet at a time.
	atomic.AddInt64(&info.MessagesSent, -n)
	atomic.AddInt64(&info.PacketsSent, -n)
	atomic.AddInt64(&info.BytesSent, -r.bytes)
	for qos, k := range r.byQoS {
		b.dropped[qos].Add(k)
		b.qos.sent[qos].Add(-k) // counted as sent when mochi wrote it into the queue
	}
	st.drops.add(r.byQoS, b.dropLogEvery, func(n [3]int64) { b.logDrops(cl, st, n) })
}

// OnPublishDropped runs on the publisher's goroutine; pk is the message
// as published, before mochi prepared it for the client.
func (h *dropHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	qos := deliveryQoS(cl, &pk, h.b.server.Options.Capabilities.MaximumQos)
	h.b.dropped[qos].Add(1)
	if st := connState(cl); st != nil {
		var n [3]int64
		n[qos] = 1
		st.drops.add(n, h.b.dropLogEvery, func(n [3]int64) { h.b.logDrops(cl, st, n) })
	}
}

// deliveryQoS is the QoS mochi gives a message for a client: the
// published one, at most the highest of the client's matching
// subscriptions and the broker's maximum.
func deliveryQoS(cl *mqtt.Client, pk *packets.Packet, maxQoS byte) byte {
	qos := min(pk.FixedHeader.Qos, maxQoS, 2)
	if qos == 0 {
		return 0
	}
	var sub byte
	found := false
	for f, s := range cl.State.Subscriptions.GetAll() {
		if MatchTopic(stripSharePrefix(f), pk.TopicName) {
			sub, found = max(sub, s.Qos), true
		}
	}
	if found {
		qos = min(qos, sub)
	}
	return qos
}

func (b *Broker) logDrops(cl *mqtt.Client, st *clientConn, n [3]int64) {
	held, _ := st.queued()
	b.log.Warn("messages to a client dropped: its queue is full",
		"client", cl.ID, "qos0", n[0], "qos1", n[1], "qos2", n[2],
		"queued_bytes", held, "max_queued_bytes", b.opts.MaxQueuedBytes,
		"max_pending_writes", b.opts.MaxPendingWrites)
}

// dropLog collects a connection's drops between log lines.
type dropLog struct {
	mu      sync.Mutex
	pending [3]int64 // by QoS, since the last line
	last    time.Time
	timer   *time.Timer // the next line is due
}

// add counts drops and has log called with the counts now if no line
// was written within every, else when that time is up.
func (d *dropLog) add(n [3]int64, every time.Duration, log func([3]int64)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for qos := range n {
		d.pending[qos] += n[qos]
	}
	if d.timer != nil {
		return
	}
	wait := every - time.Since(d.last)
	if d.last.IsZero() || wait <= 0 {
		d.flush(log)
		return
	}
	d.timer = time.AfterFunc(wait, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.timer = nil
		d.flush(log)
	})
}

// flush logs the pending counts (d.mu held).
func (d *dropLog) flush(log func([3]int64)) {
	n := d.pending
	d.pending = [3]int64{}
	d.last = time.Now()
	log(n)
}
