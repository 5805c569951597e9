package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roostmq/roost/internal/store"
)

// Retained messages live in the replicated store and are served from it:
// a subscription's matching messages are read from the store's retained
// table (retained_deliver.go), not from memory. mochi's own in-memory
// retained map holds only its $SYS topics: mochi copies that whole map
// every second to look for expired messages, and kept a second copy of
// every payload, so Roost takes each retained publish out of it again
// (OnRetainMessage) and keeps nothing per message in memory except the
// expiry time of messages that expire.
//
// A retained publish here queues a store write. A writer goroutine sends
// the queued writes every batch window as one ApplyAsync (the store
// merges concurrent applies into shared raft entries), keeping only the
// latest write per topic. Until this node has applied the commit of its
// own write, the write is pending: readers see it instead of what the
// store holds for the topic (a committed change of the topic applied
// meanwhile is older: the local write commits after it). So by the time
// mochi sends the PUBACK, a subscriber on this node gets the new message,
// and nothing older after it.
//
// A write the store refuses (no quorum) is kept on this node, served as
// if stored, until a committed change of the topic or a reload of the
// table replaces it, as the in-memory tree used to.
//
// Expiry (MQTT 5 message expiry interval): records carry their creation
// time; delivery never sends an expired message and sends the exact time
// left (see markRetained). The expiry times of stored records are kept in
// an index; on the raft leader, expired records are deleted from the
// store after re-reading them, so a message published again meanwhile is
// kept.

const sysPrefix = "$SYS/"

// markRetained marks a packet built from a stored retained record, in
// Filters[0] (see cluster_hook.go for the use of Filters). Its Identifier
// holds the nanoseconds of the expiry time beyond pk.Expiry, which is in
// whole unix seconds as mochi expects. Deliveries keep the marker, so
// that the expiry interval is computed exactly when the packet is
// encoded (routingHook.OnPacketEncode).
const markRetained = "\x00roost:retained"

// packetExpiry returns when a retained packet expires; ok is false if it
// never does. Without the marker (a packet of mochi's own, e.g. $SYS)
// it is pk.Expiry, which is at most the exact expiry.
func packetExpiry(pk *packets.Packet) (t time.Time, ok bool) {
	if pk.Expiry <= 0 {
		return time.Time{}, false
	}
	var ns int64
	if marker(pk) == markRetained {
		ns = int64(pk.Filters[0].Identifier)
	}
	return time.Unix(pk.Expiry, ns), true
}

// expiryLeft returns the message expiry interval to send at now for a
// message expiring at exp: the time left, rounded up to whole seconds;
// expired is true when no time is left.
func expiryLeft(exp, now time.Time) (secs uint32, expired bool) {
	left := exp.Sub(now)
	if left <= 0 {
		return 0, true
	}
	return uint32(min((left+time.Second-1)/time.Second, math.MaxUint32)), false
}

// retainedExpiresAt returns when a stored retained message expires, with
// the node's cap on message expiry applied (maxExpiry seconds, 0: none);
// zero if it never does.
func retainedExpiresAt(rec *store.Retained, maxExpiry uint32) time.Time {
	exp := rec.MessageExpiry
	if maxExpiry > 0 && (exp == 0 || exp > maxExpiry) {
		exp = maxExpiry
	}
	if exp == 0 {
		return time.Time{}
	}
	return rec.Created.Add(time.Duration(exp) * time.Second)
}

type retainedWrite struct {
	topic string
	value []byte         // encoded store.Retained; nil: delete
	pk    packets.Packet // packet served for value until it is stored
	gen   uint64         // retainedSync.gen when submitted
	index uint64         // raft index it was committed at, once the store said so
}

type retainedSync struct {
	mqtt.HookBase
	server    *mqtt.Server
	st        *store.Store
	log       *slog.Logger
	window    time.Duration
	maxExpiry uint32 // seconds; 0: no cap

	mu        sync.Mutex
	queue     map[string]*retainedWrite // not yet submitted, latest per topic
	submitted map[string]*retainedWrite // submitted, not yet seen committed
	unstored  map[string]*retainedWrite // refused by the store; served here until replaced
	expiring  map[string]int64          // topic → unix second its stored record expires
	gen       uint64                    // full reloads of the table so far
	wake      chan struct{}

	applies  sync.WaitGroup // ApplyAsync calls not yet done
	stopping chan struct{}
	stopped  chan struct{}
}

func newRetainedSync(server *mqtt.Server, st *store.Store, log *slog.Logger, window time.Duration,
	maxExpiry time.Duration) *retainedSync {
	return &retainedSync{server: server, st: st, log: log, window: window,
		maxExpiry: uint32(maxExpiry / time.Second),
		queue:     map[string]*retainedWrite{}, submitted: map[string]*retainedWrite{},
		unstored: map[string]*retainedWrite{}, expiring: map[string]int64{},
		wake: make(chan struct{}, 1), stopping: make(chan struct{}), stopped: make(chan struct{})}
}

func (r *retainedSync) ID() string { return "roost-retained" }

func (r *retainedSync) Provides(b byte) bool { return b == mqtt.OnRetainMessage }

// packetFromRecord builds the packet delivered for a stored retained message;
// maxExpiry (seconds, 0: none) caps its expiry.
func packetFromRecord(rec *store.Retained, maxExpiry uint32) packets.Packet {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true, Qos: rec.QoS},
		TopicName:   rec.Topic,
		Payload:     rec.Payload,
		Origin:      rec.From,
		Created:     rec.Created.Unix(),
		// mochi only expires MQTT 5 packets; the version of a delivered
		// packet is the receiving client's.
		ProtocolVersion: 5,
		Properties: packets.Properties{
			MessageExpiryInterval: rec.MessageExpiry,
			ContentType:           rec.ContentType,
			ResponseTopic:         rec.ResponseTopic,
			CorrelationData:       rec.CorrelationData,
		},
		Filters: packets.Subscriptions{{Filter: markRetained}},
	}
	if rec.PayloadFormat != nil {
		pk.Properties.PayloadFormat, pk.Properties.PayloadFormatFlag = *rec.PayloadFormat, true
	}
	for _, up := range rec.UserProperties {
		pk.Properties.User = append(pk.Properties.User, packets.UserProperty{Key: up.Key, Val: up.Val})
	}
	if exp := retainedExpiresAt(rec, maxExpiry); !exp.IsZero() {
		// mochi's sweep deletes the packet once pk.Expiry is in the past
		// in whole seconds: never before exp.
		pk.Expiry = exp.Unix()
		pk.Filters[0].Identifier = exp.Nanosecond()
	}
	return pk
}

// recordFromPacket builds the store record of a retained publish.
func (r *retainedSync) recordFromPacket(cl *mqtt.Client, pk *packets.Packet) store.Retained {
	rec := store.Retained{V: store.RecordVersion, Topic: pk.TopicName, Payload: pk.Payload,
		QoS: pk.FixedHeader.Qos, MessageExpiry: pk.Properties.MessageExpiryInterval,
		ContentType: pk.Properties.ContentType, ResponseTopic: pk.Properties.ResponseTopic,
		CorrelationData: pk.Properties.CorrelationData, Created: time.Now().UTC()}
	if cl != nil {
		rec.From = cl.ID
	}
	if r.maxExpiry > 0 && (rec.MessageExpiry == 0 || rec.MessageExpiry > r.maxExpiry) {
		rec.MessageExpiry = r.maxExpiry
	}
	if pk.Properties.PayloadFormatFlag {
		f := pk.Properties.PayloadFormat
		rec.PayloadFormat = &f
	}
	for _, up := range pk.Properties.User {
		rec.UserProperties = append(rec.UserProperties, store.UserProperty{Key: up.Key, Val: up.Val})
	}
	return rec
}

// OnRetainMessage queues the store write of a retained publish, and takes
// the message out of mochi's map, where mochi has just put it (see the
// top of the file).
func (r *retainedSync) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, _ int64) {
	r.untree(pk.TopicName)
	if isRemote(&pk) {
		return // from another node, which stores it (DeliverRemote does not retain anyway)
	}
	if len(pk.TopicName) > maxStoredTopic {
		// The store's keys are limited; a retained message the cluster
		// cannot store is not kept on this node either.
		r.log.Warn("retained message not kept: topic too long", "bytes", len(pk.TopicName), "max", maxStoredTopic)
		return
	}
	w := &retainedWrite{topic: pk.TopicName}
	if len(pk.Payload) > 0 {
		rec := r.recordFromPacket(cl, &pk)
		b, err := json.Marshal(&rec)
		if err != nil {
			r.log.Error("cannot encode retained message", "topic", pk.TopicName, "err", err)
			return
		}
		w.value, w.pk = b, packetFromRecord(&rec, r.maxExpiry)
	}
	r.mu.Lock()
	r.queue[w.topic] = w
	delete(r.unstored, w.topic)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// untree removes a topic's message from mochi's retained map.
func (r *retainedSync) untree(topic string) {
	r.server.Topics.RetainMessage(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}, TopicName: topic})
}

// maxStoredTopic is the longest topic a retained message can be stored
// under: bbolt's key size limit.
const maxStoredTopic = 32768

// maxOpsPerApply bounds the size of one raft entry of retained writes.
const maxOpsPerApply = 4096

// run is the writer: it submits queued writes every window.
func (r *retainedSync) run() {
	defer close(r.stopped)
	for {
		select {
		case <-r.wake:
		case <-r.stopping:
			r.flush()
			return
		}
		if r.window > 0 {
			t := time.NewTimer(r.window)
			select {
			case <-t.C:
			case <-r.stopping:
				t.Stop()
			}
		}
		r.flush()
	}
}

func (r *retainedSync) flush() {
	r.mu.Lock()
	if len(r.queue) == 0 {
		r.mu.Unlock()
		return
	}
	batch := make([]*retainedWrite, 0, len(r.queue))
	for t, w := range r.queue {
		w.gen = r.gen
		batch = append(batch, w)
		r.submitted[t] = w
	}
	clear(r.queue)
	r.mu.Unlock()

	for len(batch) > 0 {
		n := min(len(batch), maxOpsPerApply)
		part := batch[:n]
		batch = batch[n:]
		ops := make([]store.Op, len(part))
		for i, w := range part {
			if w.value == nil {
				ops[i] = store.Delete(store.TableRetained, w.topic)
			} else {
				ops[i] = store.Op{Type: store.OpPut, Table: store.TableRetained, Key: w.topic, Value: w.value}
			}
		}
		r.applies.Add(1)
		r.st.ApplyAsync(context.Background(), ops, func(res *store.Result, err error) {
			defer r.applies.Done()
			r.answered(part, res, err)
		})
	}
}

// answered takes the store's answer to submitted writes.
func (r *retainedSync) answered(part []*retainedWrite, res *store.Result, err error) {
	r.mu.Lock()
	for _, w := range part {
		if r.submitted[w.topic] != w {
			continue // seen committed already, or a newer write took its place
		}
		// Committed: it stays pending until this node applies the commit
		// (apply, "mine"), which on a follower can come after this
		// answer; until then an older change of the topic must not
		// replace it. Unless the table was reloaded meanwhile (a state
		// reset): the state loaded then decides.
		switch {
		case err == nil && res != nil && res.Index > 0 && w.gen == r.gen:
			w.index = res.Index
		case err != nil && w.gen == r.gen:
			delete(r.submitted, w.topic)
			r.unstored[w.topic] = w
		default:
			delete(r.submitted, w.topic)
		}
	}
	r.mu.Unlock()
	if err != nil {
		r.log.Error("cannot store retained messages; they are served by this node only until the topic changes",
			"count", len(part), "err", err)
	}
}

// stop flushes queued writes and waits (up to timeout) for them to commit.
func (r *retainedSync) stop(timeout time.Duration) {
	close(r.stopping)
	<-r.stopped
	done := make(chan struct{})
	go func() { r.applies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		r.log.Warn("retained writes still pending at shutdown")
	}
}

// localWrite returns the write of this node that readers see for topic
// instead of the store's record, if there is one. r.mu must be held.
func (r *retainedSync) localWrite(topic string) *retainedWrite {
	if w := r.queue[topic]; w != nil {
		return w
	}
	if w := r.submitted[topic]; w != nil {
		return w
	}
	return r.unstored[topic]
}

// localPending reports whether a write of this node for topic is queued
// or submitted and not yet seen committed. r.mu must be held.
func (r *retainedSync) localPending(topic string) bool {
	_, queued := r.queue[topic]
	_, submitted := r.submitted[topic]
	return queued || submitted
}

// localMatching returns the local writes (see localWrite) of topics that
// match filter: the packets to serve (deletes have none) and every such
// topic, whose store record readers must skip.
func (r *retainedSync) localMatching(filter string) (pks []packets.Packet, topics map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range []map[string]*retainedWrite{r.queue, r.submitted, r.unstored} {
		for t := range m {
			if topics[t] || !MatchTopic(filter, t) {
				continue
			}
			if topics == nil {
				topics = map[string]bool{}
			}
			topics[t] = true
			if w := r.localWrite(t); w.value != nil {
				pks = append(pks, w.pk)
			}
		}
	}
	return pks, topics
}

func decodeRetained(key string, val []byte) (*store.Retained, error) {
	var rec store.Retained
	if err := json.Unmarshal(val, &rec); err != nil {
		return nil, err
	}
	if rec.Topic == "" {
		rec.Topic = key
	}
	return &rec, nil
}

// storedExpiry returns when a stored record expires, in unix seconds (0:
// never), decoding only the fields it needs.
func (r *retainedSync) storedExpiry(val []byte) (int64, error) {
	var rec struct {
		MessageExpiry uint32    `json:"message_expiry"`
		Created       time.Time `json:"created"`
	}
	if err := json.Unmarshal(val, &rec); err != nil {
		return 0, err
	}
	exp := retainedExpiresAt(&store.Retained{MessageExpiry: rec.MessageExpiry, Created: rec.Created}, r.maxExpiry)
	if exp.IsZero() {
		return 0, nil
	}
	return exp.Unix(), nil
}

// apply is the mirror's incremental update: committed changes of the
// table settle local writes and keep the expiry index.
func (r *retainedSync) apply(changes []store.Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range changes {
		switch c.Type {
		case store.OpPut, store.OpAppend:
			delete(r.unstored, c.Key)
			w := r.submitted[c.Key]
			var exp int64
			if w != nil && w.value != nil && bytes.Equal(w.value, c.Value) {
				delete(r.submitted, c.Key) // mine: the store now holds it
				exp = w.pk.Expiry
			} else {
				var err error
				if exp, err = r.storedExpiry(c.Value); err != nil {
					r.log.Warn("undecodable retained message", "topic", c.Key, "err", err)
				}
			}
			r.setExpiry(c.Key, exp)
		case store.OpDelete:
			delete(r.unstored, c.Key)
			delete(r.expiring, c.Key)
			if w := r.submitted[c.Key]; w != nil && w.value == nil {
				delete(r.submitted, c.Key)
			}
		case store.OpClear:
			clear(r.unstored)
			clear(r.expiring)
		}
	}
}

// setExpiry records when a topic's stored message expires (unix seconds,
// 0: never). r.mu must be held.
func (r *retainedSync) setExpiry(topic string, expiry int64) {
	if expiry > 0 {
		r.expiring[topic] = expiry
	} else {
		delete(r.expiring, topic)
	}
}

// load is the mirror's full read: it rebuilds the expiry index, and local
// writes already committed give way to what the store holds.
func (r *retainedSync) load(tx *store.Tx) (func(), error) {
	expiring := map[string]int64{}
	err := tx.ForEach(store.TableRetained, func(key string, val []byte) error {
		exp, err := r.storedExpiry(val)
		if err != nil {
			r.log.Warn("undecodable retained message", "topic", key, "err", err)
			return nil
		}
		if exp > 0 {
			expiring[key] = exp
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		// Local writes already committed are in what was read, or will
		// come as changes after it (a restored snapshot older than their
		// commit); after a wipe they may never come. The store decides.
		r.gen++
		for t, w := range r.submitted {
			if w.index > 0 {
				delete(r.submitted, t)
			}
		}
		clear(r.unstored)
		r.expiring = expiring
	}, nil
}

// cleanExpired deletes expired retained messages from the store; only the
// raft leader does (leader true).
func (r *retainedSync) cleanExpired(ctx context.Context, leader bool) {
	if !leader {
		return
	}
	now := time.Now()
	var cand []string
	r.mu.Lock()
	for t, exp := range r.expiring {
		if exp <= now.Unix() && !r.localPending(t) {
			cand = append(cand, t)
		}
	}
	r.mu.Unlock()
	if len(cand) == 0 {
		return
	}
	var ops []store.Op
	err := r.st.View(func(tx *store.Tx) error {
		for _, t := range cand {
			rec, ok, err := store.Get[store.Retained](tx, store.TableRetained, t)
			if err != nil || !ok {
				continue
			}
			if exp := retainedExpiresAt(&rec, r.maxExpiry); !exp.IsZero() && !now.Before(exp) {
				ops = append(ops, store.Delete(store.TableRetained, t))
			}
		}
		return nil
	})
	if err != nil {
		r.log.Warn("cannot read retained messages for expiry", "err", err)
		return
	}
	for len(ops) > 0 {
		n := min(len(ops), maxOpsPerApply)
		if _, err := r.st.Apply(ctx, ops[:n]...); err != nil {
			r.log.Warn("cannot delete expired retained messages", "err", err)
			return
		}
		r.log.Debug("deleted expired retained messages", "count", n)
		ops = ops[n:]
	}
}
