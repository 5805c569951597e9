package broker

import (
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Retained messages for a new subscription.
//
// mochi pushes all retained messages matching a new subscription into
// the client's outbound queue (Options.MaxPendingWrites slots) and drops
// what does not fit; QoS 1/2 ones beyond the session's inflight limit are
// dropped too. A subscriber to a wildcard over many retained topics got
// only part of them. Roost delivers them itself, with backpressure:
//
//   - OnSubscribe notes each filter's retain handling and whether the
//     subscription existed, and sets retain handling 2 ("send none") so
//     that mochi sends nothing; OnSubscribed puts the real value back in
//     mochi's topic index and the client's subscriptions (the sessions
//     hook persists that one).
//   - After SUBACK (OnPacketProcessed), the matching retained messages
//     are read from the tree and written to the connection directly, not
//     through the outbound queue: a slow reader slows the writer down, it
//     loses nothing. This happens on the client's goroutine, before its
//     next packet is read, as long as it needs nothing from the client:
//     QoS 0 messages, and QoS 1/2 ones (tracked in flight as mochi does)
//     while the client has fewer unacknowledged messages than its Receive
//     Maximum (and maxRetainedInflight). The rest is sent by a goroutine
//     that waits for acknowledgements (which the client's goroutine must
//     be free to read), until the client goes away. Deliveries for
//     successive SUBSCRIBEs of one connection keep their order.
//
// So, as with mochi, retained messages reach the client before anything
// it publishes or subscribes to next, except for the part of a large
// QoS 1/2 batch left to the goroutine. Live messages for the new
// subscription, queued by other clients meanwhile, may interleave with
// the retained ones (mochi has a smaller window for that too). Retained
// messages are sent without topic aliases (an alias introduced by a
// queued live message could reach the client after its first use here).

// maxRetainedInflight bounds the QoS 1/2 retained messages in flight to
// one client, leaving room in the session's inflight limit for live ones.
const maxRetainedInflight = 1024

// subscribeReq is one filter of the SUBSCRIBE being processed.
type subscribeReq struct {
	sub     packets.Subscription // as requested (retain handling included)
	existed bool                 // the client already had this subscription
	ok      bool                 // granted
}

// OnSubscribe takes retained delivery over from mochi (see above).
func (h *routingHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	st := connState(cl)
	if st == nil {
		return pk
	}
	reqs := make([]subscribeReq, len(pk.Filters))
	var seen map[string]bool
	if len(pk.Filters) > 1 {
		seen = make(map[string]bool, len(pk.Filters))
	}
	for i := range pk.Filters {
		f := &pk.Filters[i]
		_, existed := cl.State.Subscriptions.Get(f.Filter)
		reqs[i] = subscribeReq{sub: *f, existed: existed || seen[f.Filter]}
		if seen != nil {
			seen[f.Filter] = true
		}
		f.RetainHandling = 2
	}
	st.subscribing = reqs
	return pk
}

// OnPacketProcessed starts the retained delivery of a SUBSCRIBE once
// mochi has answered it.
func (h *routingHook) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, err error) {
	if pk.FixedHeader.Type != packets.Subscribe {
		return
	}
	st := connState(cl)
	if st == nil || st.subscribing == nil {
		return
	}
	reqs := st.subscribing
	st.subscribing = nil
	if err != nil {
		return
	}
	h.b.startRetained(cl, st, reqs)
}

// retainedMatching returns the retained messages whose topics match
// filter. mochi's lookup misses the parent level of a trailing "#" ("a/#"
// matches "a" [MQTT-4.7.1-2]): that level is looked up on its own. The
// result is checked against the filter, which also keeps topics starting
// with "$" from a leading wildcard [MQTT-4.7.2-1].
func (b *Broker) retainedMatching(filter string) []packets.Packet {
	pks := b.server.Topics.Messages(filter)
	if parent, ok := strings.CutSuffix(filter, "/#"); ok && parent != "" {
		pks = append(pks, b.server.Topics.Messages(parent)...)
	}
	out := pks[:0]
	for _, pk := range pks {
		if MatchTopic(filter, pk.TopicName) {
			out = append(out, pk)
		}
	}
	return out
}

type retainedJob struct {
	sub packets.Subscription
	pks []packets.Packet
}

func (b *Broker) startRetained(cl *mqtt.Client, st *clientConn, reqs []subscribeReq) {
	var jobs []retainedJob
	for _, r := range reqs {
		sub := r.sub
		if !r.ok || mqtt.IsSharedFilter(sub.Filter) { // [MQTT-4.8.2] no retained messages for shared subscriptions
			continue
		}
		if sub.RetainHandling == 2 || (sub.RetainHandling == 1 && r.existed) { // [MQTT-3.3.1-10] [MQTT-3.3.1-11]
			continue
		}
		if pks := b.retainedMatching(sub.Filter); len(pks) > 0 {
			jobs = append(jobs, retainedJob{sub: sub, pks: pks})
		}
	}
	if len(jobs) == 0 {
		return
	}
	if st.retainedTail != nil {
		select {
		case <-st.retainedTail:
			st.retainedTail = nil
		default:
			b.retainedAsync(cl, st, jobs, 0, 0) // behind the delivery still running
			return
		}
	}
	for ji, j := range jobs {
		for i := range j.pks {
			switch b.sendRetained(cl, j.sub, &j.pks[i], false) {
			case retainedFull:
				b.retainedAsync(cl, st, jobs, ji, i)
				return
			case retainedStop:
				return
			}
		}
	}
}

// retainedAsync delivers jobs from message i of job ji on, on a
// goroutine, after the connection's previous one.
func (b *Broker) retainedAsync(cl *mqtt.Client, st *clientConn, jobs []retainedJob, ji, i int) {
	prev := st.retainedTail
	done := make(chan struct{})
	st.retainedTail = done
	started := b.goBackground(func() {
		defer close(done)
		if prev != nil {
			<-prev
		}
		for ; ji < len(jobs); ji, i = ji+1, 0 {
			j := jobs[ji]
			for ; i < len(j.pks); i++ {
				if b.sendRetained(cl, j.sub, &j.pks[i], true) != retainedSent {
					return
				}
			}
		}
	})
	if !started {
		close(done)
	}
}

const (
	retainedSent = iota // sent, or skipped
	retainedFull        // not sent: the client has no room for a QoS 1/2 message
	retainedStop        // not sent: the client or the broker is gone
)

// sendRetained sends one retained message for a subscription. With wait,
// it waits for room for a QoS 1/2 message; without, it reports
// retainedFull.
func (b *Broker) sendRetained(cl *mqtt.Client, sub packets.Subscription, pk *packets.Packet, wait bool) int {
	if cl.Closed() || b.ctx.Err() != nil {
		return retainedStop
	}
	if len(pk.Payload) == 0 || (sub.NoLocal && pk.Origin == cl.ID) { // [MQTT-3.8.3-3]
		return retainedSent
	}
	if expired(pk) {
		return retainedSent
	}
	qos := min(pk.FixedHeader.Qos, sub.Qos, b.server.Options.Capabilities.MaximumQos)
	if qos > 0 {
		if !wait && !b.inflightRoom(cl) {
			return retainedFull
		}
		if wait && !b.waitInflightRoom(cl) {
			return retainedStop
		}
	}
	// Waiting for room takes time.
	if qos > 0 && expired(pk) {
		return retainedSent
	}
	out := pk.Copy(false)
	// A marked packet keeps its marker: its expiry interval is set when it
	// is encoded (routingHook.OnPacketEncode), from the exact expiry.
	if marker(pk) != markRetained {
		out.Filters = nil
	}
	out.FixedHeader.Qos = qos
	out.FixedHeader.Retain = true // [MQTT-3.3.1-9] retained on subscribe
	if sub.Identifier > 0 {
		out.Properties.SubscriptionIdentifier = []int{sub.Identifier} // [MQTT-3.3.4-3]
	} else {
		out.Properties.SubscriptionIdentifier = nil
	}
	out.Properties.TopicAlias, out.Properties.TopicAliasFlag = 0, false
	if !b.sendToClient(cl, out) {
		return retainedStop
	}
	return retainedSent
}

// expired reports whether a retained packet has expired.
func expired(pk *packets.Packet) bool {
	exp, ok := packetExpiry(pk)
	return ok && !time.Now().Before(exp)
}

// inflightRoom reports whether the client can take one more QoS 1/2
// message: fewer unacknowledged ones than its Receive Maximum (and
// maxRetainedInflight).
func (b *Broker) inflightRoom(cl *mqtt.Client) bool {
	limit := min(maxRetainedInflight, max(b.opts.MaxInflight/2, 1))
	if rm := int(cl.Properties.Props.ReceiveMaximum); rm > 0 && rm < limit {
		limit = rm
	}
	return cl.State.Inflight.Len() < limit
}

// waitInflightRoom waits for inflightRoom; false if the client went away
// first.
func (b *Broker) waitInflightRoom(cl *mqtt.Client) bool {
	wait := 200 * time.Microsecond
	for !b.inflightRoom(cl) {
		if cl.Closed() || b.ctx.Err() != nil {
			return false
		}
		time.Sleep(wait)
		wait = min(2*wait, 20*time.Millisecond)
	}
	return !cl.Closed()
}
