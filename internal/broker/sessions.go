package broker

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	bolt "go.etcd.io/bbolt"
)

// Persistent sessions are node-local, in their own bbolt file (the
// sessions db in the data dir). Only sessions that outlive their
// connection are stored: MQTT 3.1.1 clean session = false, MQTT 5 session
// expiry interval > 0.
//
// Layout: bucket "sessions" holds one bucket per client id, with key
// "client" (the client record), bucket "subs" (filter → subscription) and
// bucket "inflight" (packet id, 2 bytes big-endian → message). Bucket
// "meta" holds the layout version.
//
// mochi calls the storage hooks once per event (a subscription, each QoS
// message sent or acknowledged). Writing each through with an fsync would
// cap throughput at the disk's sync rate, so events update an in-memory
// delta per client (the latest value per key wins, and dropping a session
// discards its pending writes), and a writer goroutine commits the deltas
// of a flush interval in one bbolt transaction. A crash loses at most that
// interval's events; Close commits everything.

var (
	bucketSessions = []byte("sessions")
	bucketMeta     = []byte("meta")
	bucketSubs     = []byte("subs")
	bucketInflight = []byte("inflight")
	keyClient      = []byte("client")
	keyLayout      = []byte("layout")
)

const sessionsLayout = 1

// storedClient is the client record: mochi's own storage form plus a
// version.
type storedClient struct {
	V int `json:"v"`
	storage.Client
}

// storedMessage is an inflight (queued or unacknowledged) QoS 1/2 message.
type storedMessage struct {
	V int `json:"v"`
	storage.Message
	Expiry          int64 `json:"expiry,omitempty"` // unix seconds; 0: none
	ProtocolVersion byte  `json:"pv,omitempty"`
	// Seq orders the session's messages as they were queued (see
	// queue_order.go); 0 in records of older versions.
	Seq int64 `json:"seq,omitempty"`
}

type storedSub struct {
	V int `json:"v"`
	storage.Subscription
}

// sessionDelta is the pending change to one client's stored session.
type sessionDelta struct {
	wipe     bool              // drop the stored session before the writes below
	client   []byte            // new client record, if set
	subs     map[string][]byte // filter → record; nil: delete
	inflight map[uint16][]byte // packet id → record; nil: delete
}

func (d *sessionDelta) hasPuts() bool {
	if d.client != nil {
		return true
	}
	for _, v := range d.subs {
		if v != nil {
			return true
		}
	}
	for _, v := range d.inflight {
		if v != nil {
			return true
		}
	}
	return false
}

// sessionStore is the persistent-session hook.
type sessionStore struct {
	mqtt.HookBase
	server *mqtt.Server
	order  *queueOrder
	// Connections setting up their sessions: a message handed from a
	// taken-over client to its successor is stored under the successor's
	// packet id only (handoff.go).
	resumes *resumes
	db      *bolt.DB
	log     *slog.Logger
	every   time.Duration

	mu      sync.Mutex
	pending map[string]*sessionDelta
	known   map[string]struct{} // clients with a stored (or pending) session
	wake    chan struct{}
	stopCh  chan struct{}
	stopped chan struct{}
	closed  bool
	flushes atomic.Int64 // transactions committed, for tests
	flushMu sync.Mutex
}

func openSessionStore(path string, server *mqtt.Server, order *queueOrder, log *slog.Logger,
	every time.Duration) (*sessionStore, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sessions db: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("open sessions db %s: %w", path, err)
	}
	s := &sessionStore{server: server, order: order, db: db, log: log, every: every,
		pending: map[string]*sessionDelta{}, known: map[string]struct{}{},
		wake: make(chan struct{}, 1), stopCh: make(chan struct{}), stopped: make(chan struct{})}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(keyLayout); v != nil {
			if n, _ := binary.Uvarint(v); n > sessionsLayout {
				return fmt.Errorf("sessions db layout %d is newer than this Roost supports (%d)", n, sessionsLayout)
			}
		} else if err := meta.Put(keyLayout, binary.AppendUvarint(nil, sessionsLayout)); err != nil {
			return err
		}
		root, err := tx.CreateBucketIfNotExists(bucketSessions)
		if err != nil {
			return err
		}
		return root.ForEachBucket(func(k []byte) error {
			s.known[string(k)] = struct{}{}
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sessions db %s: %w", path, err)
	}
	go s.run()
	return s, nil
}

func (s *sessionStore) ID() string { return "roost-sessions" }

func (s *sessionStore) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnSubscribed, mqtt.OnUnsubscribed,
		mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped, mqtt.OnClientExpired, mqtt.OnWillSent,
		mqtt.StoredClients, mqtt.StoredSubscriptions, mqtt.StoredInflightMessages:
		return true
	}
	return false
}

// persistent reports whether the client's session outlives its connection.
func persistent(cl *mqtt.Client) bool {
	if cl.Net.Inline {
		return false
	}
	if cl.Properties.ProtocolVersion >= 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

// delta returns the pending delta of a client; s.mu must be held.
func (s *sessionStore) delta(id string) *sessionDelta {
	d := s.pending[id]
	if d == nil {
		d = &sessionDelta{}
		s.pending[id] = d
	}
	return d
}

func (s *sessionStore) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// wipe drops a client's stored session (and its pending writes).
func (s *sessionStore) wipe(id string) {
	s.mu.Lock()
	if _, ok := s.known[id]; ok {
		s.pending[id] = &sessionDelta{wipe: true}
		delete(s.known, id)
	}
	s.mu.Unlock()
	s.signal()
}

func (s *sessionStore) putClient(cl *mqtt.Client) {
	props := cl.Properties.Props
	rec := storedClient{V: 1, Client: storage.Client{
		ID: cl.ID, T: storage.ClientKey, Remote: cl.Net.Remote, Listener: cl.Net.Listener,
		Username: cl.Properties.Username, Clean: cl.Properties.Clean,
		ProtocolVersion: cl.Properties.ProtocolVersion,
		Properties: storage.ClientProperties{
			SessionExpiryInterval:     props.SessionExpiryInterval,
			SessionExpiryIntervalFlag: props.SessionExpiryIntervalFlag,
			AuthenticationMethod:      props.AuthenticationMethod,
			AuthenticationData:        props.AuthenticationData,
			RequestProblemInfo:        props.RequestProblemInfo,
			RequestProblemInfoFlag:    props.RequestProblemInfoFlag,
			RequestResponseInfo:       props.RequestResponseInfo,
			ReceiveMaximum:            props.ReceiveMaximum,
			TopicAliasMaximum:         props.TopicAliasMaximum,
			User:                      props.User,
			MaximumPacketSize:         props.MaximumPacketSize,
		},
		Will: storage.ClientWill(cl.Properties.Will),
	}}
	b, err := json.Marshal(&rec)
	if err != nil {
		s.log.Error("cannot encode session", "client", cl.ID, "err", err)
		return
	}
	s.mu.Lock()
	s.delta(cl.ID).client = b
	s.known[cl.ID] = struct{}{}
	s.mu.Unlock()
	s.signal()
}

func (s *sessionStore) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if !persistent(cl) {
		s.wipe(cl.ID) // a clean client replaces any stored session
		return
	}
	if pk.Connect.Clean {
		s.wipe(cl.ID) // clean start: the old session is gone
	}
	s.putClient(cl)
}

func takenOver(cl *mqtt.Client) bool {
	return errors.Is(cl.StopCause(), packets.ErrSessionTakenOver) || cl.IsTakenOver()
}

func (s *sessionStore) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if takenOver(cl) {
		return // the session now belongs to the new connection
	}
	if expire || !persistent(cl) {
		s.wipe(cl.ID)
		return
	}
	s.putClient(cl) // the session expiry may have changed at DISCONNECT
}

func (s *sessionStore) OnWillSent(cl *mqtt.Client, _ packets.Packet) {
	if persistent(cl) && !takenOver(cl) {
		s.putClient(cl)
	}
}

func (s *sessionStore) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if !persistent(cl) {
		return
	}
	recs := make(map[string][]byte, len(pk.Filters))
	for i, f := range pk.Filters {
		if i >= len(codes) || codes[i] >= packets.ErrUnspecifiedError.Code {
			continue
		}
		// The client's subscription as it stands: the routing hook
		// puts back the retain handling it changed in the packet.
		if cur, ok := cl.State.Subscriptions.Get(f.Filter); ok {
			f.RetainHandling = cur.RetainHandling
		}
		b, err := json.Marshal(&storedSub{V: 1, Subscription: storage.Subscription{
			T: storage.SubscriptionKey, Client: cl.ID, Filter: f.Filter, Qos: codes[i],
			Identifier: f.Identifier, NoLocal: f.NoLocal, RetainHandling: f.RetainHandling,
			RetainAsPublished: f.RetainAsPublished}})
		if err != nil {
			s.log.Error("cannot encode subscription", "client", cl.ID, "err", err)
			continue
		}
		recs[f.Filter] = b
	}
	if len(recs) == 0 {
		return
	}
	s.mu.Lock()
	d := s.delta(cl.ID)
	if d.subs == nil {
		d.subs = map[string][]byte{}
	}
	for f, b := range recs {
		d.subs[f] = b
	}
	s.known[cl.ID] = struct{}{}
	s.mu.Unlock()
	s.signal()
}

// putSubs persists subscriptions a client got other than by SUBSCRIBE (a
// session moved here from another node).
func (s *sessionStore) putSubs(cl *mqtt.Client, subs []packets.Subscription) {
	codes := make([]byte, len(subs))
	for i, sub := range subs {
		codes[i] = sub.Qos
	}
	s.OnSubscribed(cl, packets.Packet{Filters: subs}, codes)
}

func (s *sessionStore) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if !persistent(cl) || takenOver(cl) {
		return
	}
	s.mu.Lock()
	if _, ok := s.known[cl.ID]; ok {
		d := s.delta(cl.ID)
		if d.subs == nil {
			d.subs = map[string][]byte{}
		}
		for _, f := range pk.Filters {
			d.subs[f.Filter] = nil
		}
	}
	s.mu.Unlock()
	s.signal()
}

func (s *sessionStore) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, _ int) {
	// PUBACKs of inbound QoS 1 messages are completed at once: skip them.
	if !persistent(cl) || pk.FixedHeader.Type == packets.Puback {
		return
	}
	if s.resumes != nil && s.resumes.successor(cl) != nil {
		return // handed to the connection that took the session over
	}
	props := pk.Properties
	// The creation time as noted with the order: mochi's re-send of a
	// resumed session passes a temporary one (queue_order.go).
	created, seq := pk.Created, int64(0)
	if slot, ok := s.order.lookup(cl.ID, pk.PacketID); ok {
		created, seq = slot.created, slot.seq
	}
	rec := storedMessage{V: 1, Message: storage.Message{
		T: storage.InflightKey, Client: cl.ID, Origin: pk.Origin, FixedHeader: pk.FixedHeader,
		TopicName: pk.TopicName, Payload: pk.Payload, Sent: sent, Created: created, PacketID: pk.PacketID,
		Properties: storage.MessageProperties{
			PayloadFormat: props.PayloadFormat, PayloadFormatFlag: props.PayloadFormatFlag,
			MessageExpiryInterval: props.MessageExpiryInterval, ContentType: props.ContentType,
			ResponseTopic: props.ResponseTopic, CorrelationData: props.CorrelationData,
			SubscriptionIdentifier: props.SubscriptionIdentifier, User: props.User,
		}}, ProtocolVersion: pk.ProtocolVersion, Seq: seq}
	if pk.Expiry > 0 {
		rec.Expiry = pk.Expiry
	}
	b, err := json.Marshal(&rec)
	if err != nil {
		s.log.Error("cannot encode inflight message", "client", cl.ID, "err", err)
		return
	}
	s.mu.Lock()
	d := s.delta(cl.ID)
	if d.inflight == nil {
		d.inflight = map[uint16][]byte{}
	}
	d.inflight[pk.PacketID] = b
	s.known[cl.ID] = struct{}{}
	s.mu.Unlock()
	s.signal()
}

func (s *sessionStore) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	// A taken-over client's inflight messages were handed to the new
	// connection before mochi clears them from the old one.
	if !persistent(cl) || takenOver(cl) {
		return
	}
	s.mu.Lock()
	if _, ok := s.known[cl.ID]; ok {
		d := s.delta(cl.ID)
		if d.inflight == nil {
			d.inflight = map[uint16][]byte{}
		}
		d.inflight[pk.PacketID] = nil
	}
	s.mu.Unlock()
	s.signal()
}

func (s *sessionStore) OnQosDropped(cl *mqtt.Client, pk packets.Packet) { s.OnQosComplete(cl, pk) }

// OnClientExpired drops an expired session. mochi only removes the client
// from its client list; its subscriptions would stay in the topic index
// (and in the subscription count), so they are removed here too.
func (s *sessionStore) OnClientExpired(cl *mqtt.Client) {
	if cur, ok := s.server.Clients.Get(cl.ID); ok && cur != cl {
		return // a new connection owns the id now
	}
	s.server.UnsubscribeClient(cl)
	cl.ClearInflights()
	s.order.forget(cl.ID)
	s.wipe(cl.ID)
}

// pendingIDs lists the clients with uncommitted changes.
func (s *sessionStore) pendingIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.pending))
	for id := range s.pending {
		ids = append(ids, id)
	}
	return ids
}

// run commits pending deltas every flush interval.
func (s *sessionStore) run() {
	defer close(s.stopped)
	for {
		select {
		case <-s.wake:
		case <-s.stopCh:
			s.flush()
			return
		}
		t := time.NewTimer(s.every)
		select {
		case <-t.C:
		case <-s.stopCh:
			t.Stop()
		}
		s.flush()
	}
}

func (s *sessionStore) flush() {
	// One flush at a time, so transactions commit in the order their
	// changes were made.
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	if len(s.pending) == 0 {
		s.mu.Unlock()
		return
	}
	batch := s.pending
	s.pending = map[string]*sessionDelta{}
	s.mu.Unlock()

	s.flushes.Add(1)
	err := s.db.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketSessions)
		for id, d := range batch {
			if err := applyDelta(root, []byte(id), d); err != nil {
				return fmt.Errorf("client %q: %w", id, err)
			}
		}
		return nil
	})
	if err == nil {
		return
	}
	// One bad session must not cost the others their writes: retry each
	// on its own.
	s.log.Warn("sessions db batch failed; writing sessions one by one", "err", err)
	for id, d := range batch {
		err := s.db.Update(func(tx *bolt.Tx) error { return applyDelta(tx.Bucket(bucketSessions), []byte(id), d) })
		if err != nil {
			s.log.Error("cannot write session", "client", id, "err", err)
		}
	}
}

func applyDelta(root *bolt.Bucket, id []byte, d *sessionDelta) error {
	if len(id) > bolt.MaxKeySize {
		return fmt.Errorf("client id of %d bytes is too long to store (max %d)", len(id), bolt.MaxKeySize)
	}
	if d.wipe {
		if err := root.DeleteBucket(id); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
			return err
		}
	}
	cb := root.Bucket(id)
	if cb == nil {
		if !d.hasPuts() {
			return nil
		}
		var err error
		if cb, err = root.CreateBucket(id); err != nil {
			return err
		}
	}
	if d.client != nil {
		if err := cb.Put(keyClient, d.client); err != nil {
			return err
		}
	}
	if len(d.subs) > 0 {
		b, err := cb.CreateBucketIfNotExists(bucketSubs)
		if err != nil {
			return err
		}
		for f, v := range d.subs {
			if len(f) > bolt.MaxKeySize {
				continue // cannot be stored; such a filter is not restored
			}
			if v == nil {
				err = b.Delete([]byte(f))
			} else {
				err = b.Put([]byte(f), v)
			}
			if err != nil {
				return err
			}
		}
	}
	if len(d.inflight) > 0 {
		b, err := cb.CreateBucketIfNotExists(bucketInflight)
		if err != nil {
			return err
		}
		for id, v := range d.inflight {
			k := binary.BigEndian.AppendUint16(nil, id)
			if v == nil {
				err = b.Delete(k)
			} else {
				err = b.Put(k, v)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// close commits pending writes and closes the db.
func (s *sessionStore) close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stopCh)
	<-s.stopped
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close sessions db: %w", err)
	}
	return nil
}

// writeTo commits pending changes and writes a consistent copy of the
// sessions db (a bbolt file) to w.
func (s *sessionStore) writeTo(w io.Writer) (int64, error) {
	s.flush()
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// forEachSession calls fn for each stored session with a client record.
func (s *sessionStore) forEachSession(fn func(id string, cb *bolt.Bucket) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).ForEachBucket(func(k []byte) error {
			cb := tx.Bucket(bucketSessions).Bucket(k)
			if cb.Get(keyClient) == nil {
				return nil // incomplete: never loaded
			}
			return fn(string(k), cb)
		})
	})
}

// StoredClients returns the stored sessions for mochi to restore at start.
func (s *sessionStore) StoredClients() ([]storage.Client, error) {
	var out []storage.Client
	err := s.forEachSession(func(id string, cb *bolt.Bucket) error {
		var rec storedClient
		if err := json.Unmarshal(cb.Get(keyClient), &rec); err != nil {
			s.log.Warn("skipping undecodable stored session", "client", id, "err", err)
			return nil
		}
		out = append(out, rec.Client)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read sessions: %w", err)
	}
	return out, nil
}

func (s *sessionStore) StoredSubscriptions() ([]storage.Subscription, error) {
	var out []storage.Subscription
	err := s.forEachSession(func(id string, cb *bolt.Bucket) error {
		b := cb.Bucket(bucketSubs)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var rec storedSub
			if err := json.Unmarshal(v, &rec); err != nil {
				s.log.Warn("skipping undecodable stored subscription", "client", id, "err", err)
				return nil
			}
			rec.Client = id
			out = append(out, rec.Subscription)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read subscriptions: %w", err)
	}
	return out, nil
}

// StoredInflightMessages returns the stored QoS 1/2 messages. mochi's
// storage.Message has no expiry, so expiring messages are adjusted here:
// expired ones are dropped, the rest keep their remaining interval. The
// order they were queued in is noted again (queue_order.go); messages
// stored without it are taken in order of creation, then packet id.
func (s *sessionStore) StoredInflightMessages() ([]storage.Message, error) {
	var out []storage.Message
	now := time.Now().Unix()
	err := s.forEachSession(func(id string, cb *bolt.Bucket) error {
		b := cb.Bucket(bucketInflight)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var rec storedMessage
			if err := json.Unmarshal(v, &rec); err != nil {
				s.log.Warn("skipping undecodable stored message", "client", id, "err", err)
				return nil
			}
			if rec.Expiry > 0 {
				if rec.Expiry <= now {
					return nil
				}
				rec.Properties.MessageExpiryInterval = uint32(rec.Expiry - now)
			}
			rec.Client = id
			out = append(out, rec.Message)
			seq := rec.Seq
			if seq == 0 {
				seq = rec.Created*1e9 + int64(rec.PacketID)
			}
			s.order.restore(id, rec.PacketID, queueSlot{seq: seq, created: rec.Created})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read inflight messages: %w", err)
	}
	return out, nil
}

// expireV3Sessions drops MQTT 3.1.1 sessions disconnected for longer than
// ttl. mochi expires them after its maximum session expiry, which is the
// MQTT 5 cap; this applies Roost's separate, shorter v3 expiry.
func (s *sessionStore) expireV3Sessions(ttl time.Duration) {
	now := time.Now().Unix()
	for id, cl := range s.server.Clients.GetAll() {
		if cl.Properties.ProtocolVersion >= 5 || cl.Properties.Clean {
			continue
		}
		if stop := cl.StopTime(); stop == 0 || stop+int64(ttl/time.Second) >= now {
			continue
		}
		if cur, ok := s.server.Clients.Get(id); !ok || cur != cl {
			continue
		}
		s.OnClientExpired(cl)
		s.server.Clients.Delete(id)
	}
}
