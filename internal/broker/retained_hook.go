package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roostmq/roost/internal/store"
)

// Retained messages live in the replicated store; mochi's in-memory topic
// tree is a mirror of the retained table that serves subscribers.
//
// A retained publish here updates the tree at once and queues a store
// write. A writer goroutine sends the queued writes every batch window as
// one ApplyAsync (the store merges concurrent applies into shared raft
// entries), keeping only the latest write per topic. Every committed
// change to the table, from this node or another, is then applied to the
// tree through OnChange: an idempotent set, so the tree ends up matching
// the store's order of commits even when two nodes write one topic at
// once. For a change that carries exactly the bytes this node submitted,
// the packet built at publish time is reused instead of decoding the
// record again.
//
// While a write of this node for a topic is queued or submitted, the tree
// holds that write and committed changes of the topic leave the tree
// alone: the local write commits after them. mochi updates the tree
// itself before it calls OnRetainMessage, so a commit applied in between
// could put an older message back; OnRetainMessage therefore sets the
// tree again, and the check and the tree update happen under r.mu, on
// both sides. By the time mochi sends the PUBACK, the tree shows the
// publish, and nothing older comes back after it.
//
// Expiry (MQTT 5 message expiry interval): the tree packets that Roost
// builds carry their exact expiry time (see markRetained; mochi keeps
// whole seconds), and Roost's retained delivery (retained_deliver.go)
// never sends an expired message and sends the exact time left. mochi
// drops expired messages from the tree in its once-a-second sweep (always
// after the exact expiry) and reports them through OnRetainedExpired;
// records that expire while not in the tree (e.g. expired at load) are
// tracked in an index. On the raft leader, expired records are deleted
// from the store, after re-reading them, so a message published again
// meanwhile is kept.

const sysPrefix = "$SYS/"

// markRetained marks a tree packet built from a store record, in
// Filters[0] (see cluster_hook.go for the use of Filters). Its Identifier
// holds the nanoseconds of the expiry time beyond pk.Expiry, which is in
// whole unix seconds as mochi expects. Deliveries keep the marker, so
// that the expiry interval is computed exactly when the packet is
// encoded (routingHook.OnPacketEncode).
const markRetained = "\x00roost:retained"

// packetExpiry returns when a retained packet expires; ok is false if it
// never does. Without the marker (a packet mochi put in the tree itself)
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
	pk    packets.Packet // tree packet for value
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
	expiring  map[string]int64          // topic → unix second its record expires (guarded by mu)
	applied   uint64                    // raft index of the last change in the tree (guarded by mu)
	gen       uint64                    // full reloads of the table so far (guarded by mu)
	wake      chan struct{}

	applies  sync.WaitGroup // ApplyAsync calls not yet done
	stopping chan struct{}
	stopped  chan struct{}
	expireCh chan string // topics mochi expired, for the cleaner
}

func newRetainedSync(server *mqtt.Server, st *store.Store, log *slog.Logger, window time.Duration,
	maxExpiry time.Duration) *retainedSync {
	return &retainedSync{server: server, st: st, log: log, window: window,
		maxExpiry: uint32(maxExpiry / time.Second),
		queue:     map[string]*retainedWrite{}, submitted: map[string]*retainedWrite{},
		expiring: map[string]int64{}, wake: make(chan struct{}, 1),
		stopping: make(chan struct{}), stopped: make(chan struct{}), expireCh: make(chan string, 1024)}
}

func (r *retainedSync) ID() string { return "roost-retained" }

func (r *retainedSync) Provides(b byte) bool {
	return b == mqtt.OnRetainMessage || b == mqtt.OnRetainedExpired
}

// packetFromRecord builds the tree packet of a stored retained message;
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

// OnRetainMessage queues the store write of a retained publish. mochi has
// already updated the tree; it is set again here, under r.mu, in case a
// committed change of the topic was applied in between (see the top of
// the file).
func (r *retainedSync) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, _ int64) {
	if isRemote(&pk) {
		return // from another node, which stores it (DeliverRemote does not retain anyway)
	}
	if len(pk.TopicName) > maxStoredTopic {
		// The store's keys are limited; a retained message the cluster
		// cannot store is not kept on this node either.
		r.log.Warn("retained message not kept: topic too long", "bytes", len(pk.TopicName), "max", maxStoredTopic)
		r.mu.Lock()
		r.treeDelete(pk.TopicName)
		r.mu.Unlock()
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
	r.treeWrite(w, time.Now())
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// OnRetainedExpired is called by mochi after dropping an expired message
// from the tree. mochi's sweep reads the tree before it deletes, so it
// may have dropped a newer message published meanwhile: a local one that
// is not committed yet is put back here, a committed one by the cleaner
// (which reads the store).
func (r *retainedSync) OnRetainedExpired(topic string) {
	r.mu.Lock()
	w := r.queue[topic]
	if w == nil {
		w = r.submitted[topic]
	}
	if w != nil {
		r.treeWrite(w, time.Now())
	}
	r.mu.Unlock()
	select {
	case r.expireCh <- topic:
	default: // the periodic sweep will find it
	}
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
		// replace it in the tree. Unless the table was reloaded meanwhile
		// (a state reset): the state loaded then decides.
		if err == nil && res != nil && res.Index > 0 && w.gen == r.gen {
			w.index = res.Index
		} else {
			delete(r.submitted, w.topic)
		}
	}
	r.mu.Unlock()
	if err != nil {
		r.log.Error("cannot store retained messages; they are kept in memory on this node only",
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

// treeSet makes the tree hold pk for its topic, or nothing if it expired.
// r.mu must be held.
func (r *retainedSync) treeSet(pk packets.Packet, now time.Time) {
	if exp, ok := packetExpiry(&pk); ok && !now.Before(exp) {
		r.treeDelete(pk.TopicName)
		return
	}
	// For a topic already in the tree, only the packet changes. mochi's
	// RetainMessage would also write the topic's path into its tree
	// node, which mochi's lookups (Messages) read without a lock.
	if _, ok := r.server.Topics.Retained.Get(pk.TopicName); ok {
		r.server.Topics.Retained.Add(pk.TopicName, pk)
		return
	}
	r.server.Topics.RetainMessage(pk)
}

// treeDelete removes a topic's message from the tree. r.mu must be held.
func (r *retainedSync) treeDelete(topic string) {
	r.server.Topics.RetainMessage(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}, TopicName: topic})
}

// treeWrite makes the tree show a local write. r.mu must be held.
func (r *retainedSync) treeWrite(w *retainedWrite, now time.Time) {
	if w.value == nil {
		r.treeDelete(w.topic)
	} else {
		r.treeSet(w.pk, now)
	}
}

// localPending reports whether a write of this node for topic is queued
// or submitted and not yet seen committed. r.mu must be held.
func (r *retainedSync) localPending(topic string) bool {
	_, queued := r.queue[topic]
	_, submitted := r.submitted[topic]
	return queued || submitted
}

// treeTopics lists the retained topics in the tree that come from the
// store (not mochi's own $SYS topics).
func (r *retainedSync) treeTopics() []string {
	var out []string
	for t := range r.server.Topics.Retained.GetAll() {
		if !strings.HasPrefix(t, sysPrefix) {
			out = append(out, t)
		}
	}
	return out
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

// apply is the mirror's incremental update: committed changes → tree.
func (r *retainedSync) apply(changes []store.Change) {
	now := time.Now()
	for _, c := range changes {
		r.mu.Lock()
		r.applied = max(r.applied, c.Index)
		r.mu.Unlock()
		switch c.Type {
		case store.OpPut, store.OpAppend:
			r.applyPut(c, now)
		case store.OpDelete:
			r.mu.Lock()
			delete(r.expiring, c.Key)
			if w := r.submitted[c.Key]; w != nil && w.value == nil {
				delete(r.submitted, c.Key)
			}
			// A write of this node for the topic is on its way to the
			// store (and already in the tree): it will be committed
			// after this change, so leave the tree alone meanwhile.
			if !r.localPending(c.Key) {
				r.treeDelete(c.Key)
			}
			r.mu.Unlock()
		case store.OpClear:
			r.mu.Lock()
			clear(r.expiring)
			for _, t := range r.treeTopics() {
				if !r.localPending(t) {
					r.treeDelete(t)
				}
			}
			r.mu.Unlock()
		}
	}
}

func (r *retainedSync) applyPut(c store.Change, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.submitted[c.Key]
	mine := w != nil && w.value != nil && bytes.Equal(w.value, c.Value)
	if mine {
		delete(r.submitted, c.Key)
	}
	var pk packets.Packet
	if mine {
		pk = w.pk
	} else {
		rec, err := decodeRetained(c.Key, c.Value)
		if err != nil {
			r.log.Warn("ignoring undecodable retained message", "topic", c.Key, "err", err)
			return
		}
		pk = packetFromRecord(rec, r.maxExpiry)
	}
	r.setExpiry(c.Key, pk.Expiry)
	// See OpDelete in apply.
	if r.localPending(c.Key) {
		return
	}
	r.treeSet(pk, now)
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

// load is the mirror's full read: the tree becomes the table, except for
// topics with a local write on its way to the store (the tree holds it).
func (r *retainedSync) load(tx *store.Tx) (func(), error) {
	now := time.Now()
	index := tx.AppliedIndex()
	var pks []packets.Packet
	expiring := map[string]int64{}
	err := tx.ForEach(store.TableRetained, func(key string, val []byte) error {
		rec, err := decodeRetained(key, val)
		if err != nil {
			r.log.Warn("ignoring undecodable retained message", "topic", key, "err", err)
			return nil
		}
		pk := packetFromRecord(rec, r.maxExpiry)
		if exp, ok := packetExpiry(&pk); ok {
			expiring[key] = pk.Expiry
			if !now.Before(exp) {
				return nil // not served; the leader deletes it
			}
		}
		pks = append(pks, pk)
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
		keep := make(map[string]struct{}, len(pks))
		for _, pk := range pks {
			keep[pk.TopicName] = struct{}{}
		}
		for _, t := range r.treeTopics() {
			if _, ok := keep[t]; !ok && !r.localPending(t) {
				r.treeDelete(t)
			}
		}
		for _, pk := range pks {
			if !r.localPending(pk.TopicName) {
				r.server.Topics.RetainMessage(pk)
			}
		}
		r.expiring = expiring
		r.applied = index
	}, nil
}

// cleanExpired deletes expired retained messages from the store when
// leader is true. extra are topics mochi reported expired.
func (r *retainedSync) cleanExpired(ctx context.Context, extra []string, leader bool) {
	now := time.Now()
	cand := map[string]struct{}{}
	r.mu.Lock()
	for t, exp := range r.expiring {
		if exp <= now.Unix() {
			cand[t] = struct{}{}
		}
	}
	r.mu.Unlock()
	for _, t := range extra {
		cand[t] = struct{}{}
	}
	if len(cand) == 0 {
		return
	}
	var ops []store.Op
	for attempt := 0; ; attempt++ {
		ops = ops[:0]
		var repair []packets.Packet
		var index uint64
		err := r.st.View(func(tx *store.Tx) error {
			index = tx.AppliedIndex()
			for t := range cand {
				r.mu.Lock()
				pending := r.localPending(t)
				r.mu.Unlock()
				if pending {
					continue // a new message for the topic is on its way
				}
				rec, ok, err := store.Get[store.Retained](tx, store.TableRetained, t)
				if err != nil || !ok {
					continue
				}
				if exp := retainedExpiresAt(&rec, r.maxExpiry); !exp.IsZero() && !now.Before(exp) {
					if leader {
						ops = append(ops, store.Delete(store.TableRetained, t))
					}
				} else {
					// mochi's expiry pass can race with a new message and
					// drop it from the tree: put it back.
					repair = append(repair, packetFromRecord(&rec, r.maxExpiry))
				}
			}
			return nil
		})
		if err != nil {
			r.log.Warn("cannot read retained messages for expiry", "err", err)
			return
		}
		if r.repair(repair, index, now) || attempt == 2 {
			break
		}
	}
	if len(ops) == 0 {
		return
	}
	if _, err := r.st.Apply(ctx, ops...); err != nil {
		r.log.Warn("cannot delete expired retained messages", "err", err)
		return
	}
	r.log.Debug("deleted expired retained messages", "count", len(ops))
}

// repair puts stored messages, read at raft index, back in the tree where
// mochi dropped them. It does nothing and returns false if changes after
// index have been applied since (the read may be stale: read again).
func (r *retainedSync) repair(pks []packets.Packet, index uint64, now time.Time) bool {
	if len(pks) == 0 {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.applied > index {
		return false
	}
	for _, pk := range pks {
		if _, ok := r.server.Topics.Retained.Get(pk.TopicName); !ok && !r.localPending(pk.TopicName) {
			r.treeSet(pk, now)
		}
	}
	return true
}

// drainExpired returns the topics mochi reported expired so far.
func (r *retainedSync) drainExpired() []string {
	var out []string
	for {
		select {
		case t := <-r.expireCh:
			out = append(out, t)
		default:
			return out
		}
	}
}
