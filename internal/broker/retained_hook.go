package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
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
// A retained publish here updates the tree at once (mochi does that before
// calling OnRetainMessage) and queues a store write. A writer goroutine
// sends the queued writes every batch window as one ApplyAsync (the store
// merges concurrent applies into shared raft entries), keeping only the
// latest write per topic. Every committed change to the table, from this
// node or another, is then applied to the tree through OnChange: an
// idempotent set, so the tree ends up matching the store's order of
// commits even when two nodes write one topic at once. For a change that
// carries exactly the bytes this node submitted, the packet built at
// publish time is reused instead of decoding the record again.
//
// Expiry (MQTT 5 message expiry interval): mochi drops expired messages
// from the tree (checked each second) and reports them through
// OnRetainedExpired; records that expire while not in the tree (e.g.
// expired at load) are tracked in an index. On the raft leader, expired
// records are deleted from the store, after re-reading them, so a message
// published again meanwhile is kept.

const sysPrefix = "$SYS/"

type retainedWrite struct {
	topic string
	value []byte         // encoded store.Retained; nil: delete
	pk    packets.Packet // tree packet for value
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

// packetFromRecord builds the tree packet of a stored retained message.
func packetFromRecord(rec *store.Retained) packets.Packet {
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
	}
	if rec.PayloadFormat != nil {
		pk.Properties.PayloadFormat, pk.Properties.PayloadFormatFlag = *rec.PayloadFormat, true
	}
	for _, up := range rec.UserProperties {
		pk.Properties.User = append(pk.Properties.User, packets.UserProperty{Key: up.Key, Val: up.Val})
	}
	if rec.MessageExpiry > 0 {
		pk.Expiry = pk.Created + int64(rec.MessageExpiry)
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

// OnRetainMessage queues the store write of a retained publish (mochi has
// already updated the tree).
func (r *retainedSync) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, _ int64) {
	if isRemote(&pk) {
		return // from another node, which stores it (DeliverRemote does not retain anyway)
	}
	if len(pk.TopicName) > maxStoredTopic {
		// The store's keys are limited; a retained message the cluster
		// cannot store is not kept on this node either.
		r.log.Warn("retained message not kept: topic too long", "bytes", len(pk.TopicName), "max", maxStoredTopic)
		r.treeDelete(pk.TopicName)
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
		w.value, w.pk = b, packetFromRecord(&rec)
	}
	r.mu.Lock()
	r.queue[w.topic] = w
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// OnRetainedExpired is called by mochi after dropping an expired message
// from the tree.
func (r *retainedSync) OnRetainedExpired(topic string) {
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
		r.st.ApplyAsync(context.Background(), ops, func(_ *store.Result, err error) {
			defer r.applies.Done()
			r.mu.Lock()
			for _, w := range part {
				if r.submitted[w.topic] == w {
					delete(r.submitted, w.topic)
				}
			}
			r.mu.Unlock()
			if err != nil {
				r.log.Error("cannot store retained messages; they are kept in memory on this node only",
					"count", len(part), "err", err)
			}
		})
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
func (r *retainedSync) treeSet(pk packets.Packet, now int64) {
	if pk.Expiry > 0 && pk.Expiry <= now {
		r.treeDelete(pk.TopicName)
		return
	}
	r.server.Topics.RetainMessage(pk)
}

func (r *retainedSync) treeDelete(topic string) {
	r.server.Topics.RetainMessage(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}, TopicName: topic})
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
	now := time.Now().Unix()
	for _, c := range changes {
		switch c.Type {
		case store.OpPut, store.OpAppend:
			r.mu.Lock()
			w := r.submitted[c.Key]
			mine := w != nil && w.value != nil && bytes.Equal(w.value, c.Value)
			if mine {
				delete(r.submitted, c.Key)
			}
			// A newer write of this node for the topic is on its way to
			// the store (and already in the tree): it will be committed
			// after this change, so leave the tree alone meanwhile.
			_, newer := r.queue[c.Key]
			newer = newer || (w != nil && !mine)
			r.mu.Unlock()
			if newer {
				continue
			}
			var pk packets.Packet
			if mine {
				pk = w.pk
			} else {
				rec, err := decodeRetained(c.Key, c.Value)
				if err != nil {
					r.log.Warn("ignoring undecodable retained message", "topic", c.Key, "err", err)
					continue
				}
				pk = packetFromRecord(rec)
			}
			r.setExpiry(c.Key, pk.Expiry)
			r.treeSet(pk, now)
		case store.OpDelete:
			r.setExpiry(c.Key, 0)
			r.mu.Lock()
			w := r.submitted[c.Key]
			if w != nil && w.value == nil {
				delete(r.submitted, c.Key)
				w = nil
			}
			_, newer := r.queue[c.Key]
			r.mu.Unlock()
			if newer || w != nil {
				continue
			}
			r.treeDelete(c.Key)
		case store.OpClear:
			r.mu.Lock()
			clear(r.expiring)
			r.mu.Unlock()
			for _, t := range r.treeTopics() {
				r.treeDelete(t)
			}
		}
	}
}

func (r *retainedSync) setExpiry(topic string, expiry int64) {
	r.mu.Lock()
	if expiry > 0 {
		r.expiring[topic] = expiry
	} else {
		delete(r.expiring, topic)
	}
	r.mu.Unlock()
}

// load is the mirror's full read: the tree becomes the table.
func (r *retainedSync) load(tx *store.Tx) (func(), error) {
	now := time.Now().Unix()
	var pks []packets.Packet
	expiring := map[string]int64{}
	err := tx.ForEach(store.TableRetained, func(key string, val []byte) error {
		rec, err := decodeRetained(key, val)
		if err != nil {
			r.log.Warn("ignoring undecodable retained message", "topic", key, "err", err)
			return nil
		}
		pk := packetFromRecord(rec)
		if pk.Expiry > 0 {
			expiring[key] = pk.Expiry
			if pk.Expiry <= now {
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
		keep := make(map[string]struct{}, len(pks))
		for _, pk := range pks {
			keep[pk.TopicName] = struct{}{}
		}
		for _, t := range r.treeTopics() {
			if _, ok := keep[t]; !ok {
				r.treeDelete(t)
			}
		}
		for _, pk := range pks {
			r.server.Topics.RetainMessage(pk)
		}
		r.mu.Lock()
		r.expiring = expiring
		r.mu.Unlock()
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
	var repair []packets.Packet
	err := r.st.View(func(tx *store.Tx) error {
		for t := range cand {
			r.mu.Lock()
			_, queued := r.queue[t]
			_, pending := r.submitted[t]
			r.mu.Unlock()
			if queued || pending {
				continue // a new message for the topic is on its way
			}
			rec, ok, err := store.Get[store.Retained](tx, store.TableRetained, t)
			if err != nil || !ok {
				continue
			}
			if rec.Expired(now) {
				if leader {
					ops = append(ops, store.Delete(store.TableRetained, t))
				}
			} else {
				// mochi's expiry pass can race with a new publish and drop
				// the new message from the tree: put it back.
				repair = append(repair, packetFromRecord(&rec))
			}
		}
		return nil
	})
	if err != nil {
		r.log.Warn("cannot read retained messages for expiry", "err", err)
		return
	}
	for _, pk := range repair {
		r.treeSet(pk, now.Unix())
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
