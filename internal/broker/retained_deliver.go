package broker

import (
	"fmt"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roostmq/roost/internal/store"
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
//     are read from the store, a chunk at a time (retainedReader), and
//     written to the connection directly, not
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

// retainedChunk bounds the messages read from the store at once for one
// subscription, and retainedScanChunk the records looked at in one read
// transaction: a long read would hold the store's file mapping (and so
// writes that grow it) for its whole length.
const (
	retainedChunk     = 256
	retainedScanChunk = 4096
)

// retainedReader reads the retained messages whose topics match a filter,
// a chunk at a time: first this node's local writes of matching topics
// and mochi's own $SYS messages, then the store's records in key order
// (those of topics with a local write skipped). Filters are matched
// against the records between the filter's literal prefix (up to its
// first wildcard) and the end of that prefix range; a trailing "#" also
// matches the parent level ("a/#" matches "a" [MQTT-4.7.1-2]), which
// sorts before the range and is read on its own. MatchTopic also keeps
// topics starting with "$" from a leading wildcard [MQTT-4.7.2-1].
type retainedReader struct {
	b      *Broker
	filter string
	prefix string           // every matching store key starts with it
	parent string           // topic matched by a trailing "#" outside the prefix range
	first  []packets.Packet // served before the store's records
	skip   map[string]bool  // topics whose local write replaces the store's record
	from   string           // next store key to look at
	done   bool
}

func (b *Broker) newRetainedReader(filter string) *retainedReader {
	rd := &retainedReader{b: b, filter: filter}
	rd.first, rd.skip = b.retained.localMatching(filter)
	if strings.HasPrefix(filter, "$") {
		for _, pk := range b.retainedMatchingSys(filter) {
			if !rd.skip[pk.TopicName] {
				rd.first = append(rd.first, pk)
			}
		}
	}
	if i := strings.IndexAny(filter, "+#"); i >= 0 {
		rd.prefix = filter[:i]
		if parent, ok := strings.CutSuffix(filter, "/#"); ok && !strings.ContainsAny(parent, "+#") {
			rd.parent = parent
		}
	} else {
		rd.prefix, rd.parent = filter, filter // one topic: read it alone
	}
	rd.from = rd.prefix
	return rd
}

// retainedMatchingSys returns mochi's own retained $SYS messages that
// match filter. mochi's lookup misses the parent level of a trailing "#".
func (b *Broker) retainedMatchingSys(filter string) []packets.Packet {
	pks := b.server.Topics.Messages(filter)
	if parent, ok := strings.CutSuffix(filter, "/#"); ok && parent != "" {
		pks = append(pks, b.server.Topics.Messages(parent)...)
	}
	out := pks[:0]
	for _, pk := range pks {
		if strings.HasPrefix(pk.TopicName, sysPrefix) && MatchTopic(filter, pk.TopicName) {
			out = append(out, pk)
		}
	}
	return out
}

// next returns the next chunk of messages; more is false once there are
// no others. A chunk may be empty while more is true.
func (rd *retainedReader) next() (pks []packets.Packet, more bool, err error) {
	if rd.first != nil {
		pks, rd.first = rd.first, nil
		return pks, !rd.done, nil
	}
	if rd.done {
		return nil, false, nil
	}
	add := func(key string, val []byte) {
		if rd.skip[key] || !MatchTopic(rd.filter, key) {
			return
		}
		rec, err := decodeRetained(key, val)
		if err != nil {
			rd.b.log.Warn("undecodable retained message not delivered", "topic", key, "err", err)
			return
		}
		pk := packetFromRecord(rec, rd.b.retained.maxExpiry)
		if !expired(&pk) {
			pks = append(pks, pk)
		}
	}
	err = rd.b.st.View(func(tx *store.Tx) error {
		if rd.parent != "" {
			if val := tx.Get(store.TableRetained, rd.parent); val != nil {
				add(rd.parent, val)
			}
			if rd.parent == rd.prefix { // a filter without wildcards
				rd.done = true
				return nil
			}
			rd.parent = ""
		}
		scanned := 0
		rd.done = true
		return tx.Seek(store.TableRetained, rd.from, func(key string, val []byte) (bool, error) {
			if !strings.HasPrefix(key, rd.prefix) {
				return false, nil
			}
			add(key, val)
			rd.from = key + "\x00" // the next key after this one
			if scanned++; len(pks) >= retainedChunk || scanned >= retainedScanChunk {
				rd.done = false
				return false, nil
			}
			return true, nil
		})
	})
	if err != nil {
		rd.done = true
		return nil, false, fmt.Errorf("read retained messages for %q: %w", rd.filter, err)
	}
	return pks, !rd.done, nil
}

// retainedJob is the retained delivery of one subscription: the chunk
// being sent, and the reader of the rest (nil once read to the end).
type retainedJob struct {
	sub packets.Subscription
	rd  *retainedReader
	pks []packets.Packet
	i   int // next message of pks to send
}

func (b *Broker) startRetained(cl *mqtt.Client, st *clientConn, reqs []subscribeReq) {
	var jobs []*retainedJob
	for _, r := range reqs {
		sub := r.sub
		if !r.ok || mqtt.IsSharedFilter(sub.Filter) { // [MQTT-4.8.2] no retained messages for shared subscriptions
			continue
		}
		if sub.RetainHandling == 2 || (sub.RetainHandling == 1 && r.existed) { // [MQTT-3.3.1-10] [MQTT-3.3.1-11]
			continue
		}
		jobs = append(jobs, &retainedJob{sub: sub, rd: b.newRetainedReader(sub.Filter)})
	}
	if len(jobs) == 0 {
		return
	}
	if st.retainedTail != nil {
		select {
		case <-st.retainedTail:
			st.retainedTail = nil
		default:
			b.retainedAsync(cl, st, jobs) // behind the delivery still running
			return
		}
	}
	for i, j := range jobs {
		switch b.runRetained(cl, j, false) {
		case retainedFull:
			b.retainedAsync(cl, st, jobs[i:])
			return
		case retainedStop:
			return
		}
	}
}

// runRetained sends a job's messages from where it stopped, until all
// are sent (retainedSent) or sendRetained stops it.
func (b *Broker) runRetained(cl *mqtt.Client, j *retainedJob, wait bool) int {
	for {
		for ; j.i < len(j.pks); j.i++ {
			if res := b.sendRetained(cl, j.sub, &j.pks[j.i], wait); res != retainedSent {
				return res
			}
		}
		if j.rd == nil {
			return retainedSent
		}
		pks, more, err := j.rd.next()
		if err != nil {
			b.log.Warn("retained delivery cut short", "client", cl.ID, "err", err)
		}
		j.pks, j.i = pks, 0
		if !more {
			j.rd = nil
		}
	}
}

// retainedAsync runs jobs on a goroutine, after the connection's previous
// one.
func (b *Broker) retainedAsync(cl *mqtt.Client, st *clientConn, jobs []*retainedJob) {
	prev := st.retainedTail
	done := make(chan struct{})
	st.retainedTail = done
	started := b.goBackground(func() {
		defer close(done)
		if prev != nil {
			<-prev
		}
		for _, j := range jobs {
			if b.runRetained(cl, j, true) != retainedSent {
				return
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
