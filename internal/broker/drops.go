package broker

import (
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Messages mochi drops for a connected client: its write queue holds
// Options.MaxQueuedBytes and its outbound channel Options.MaxPendingWrites
// packets (write_queue.go). mochi counts them all in MessagesDropped;
// dropHook counts them by the QoS they would have been delivered with and
// logs them, one line per client at most every dropLogEvery, with the
// counts since the last line.

const dropLogEvery = 10 * time.Second

type dropHook struct {
	mqtt.HookBase
	b *Broker
}

func (h *dropHook) ID() string { return "roost-drops" }

func (h *dropHook) Provides(b byte) bool { return b == mqtt.OnPublishDropped }

// OnPublishDropped runs on the publisher's goroutine; pk is the message
// as published, before mochi prepared it for the client.
func (h *dropHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	qos := deliveryQoS(cl, &pk, h.b.server.Options.Capabilities.MaximumQos)
	h.b.dropped[qos].Add(1)
	if st := connState(cl); st != nil {
		st.drops.add(qos, func(n [3]int64) { h.b.logDrops(cl, st, n) })
	}
}

// deliveryQoS is the QoS mochi gives a message for a client: the
// published one, at most the highest of the client's matching
// subscriptions and the broker's maximum.
func deliveryQoS(cl *mqtt.Client, pk *packets.Packet, maxQoS byte) byte {
	var sub byte
	found := false
	for f, s := range cl.State.Subscriptions.GetAll() {
		if MatchTopic(stripSharePrefix(f), pk.TopicName) {
			sub, found = max(sub, s.Qos), true
		}
	}
	qos := min(pk.FixedHeader.Qos, maxQoS, 2)
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

// add counts a drop and has log called with the counts now if no line
// was written within dropLogEvery, else when that time is up.
func (d *dropLog) add(qos byte, log func([3]int64)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pending[qos]++
	if d.timer != nil {
		return
	}
	wait := dropLogEvery - time.Since(d.last)
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
