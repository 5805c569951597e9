package broker

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The order of a session's queued messages.
//
// Messages queued for a client (QoS 1/2, in flight or waiting while it is
// offline) must be sent, when it resumes its session, in the order they
// were published to it [MQTT-4.6.0-1]. mochi keeps them in a map by
// packet id and re-sends them sorted by creation time in whole seconds,
// truncated to 16 bits, with an unstable sort (Inflight.GetAll): the
// messages of one second come out in any order, and across a multiple of
// 65536 s the order turns over. Packet ids do not tell the order either
// (a new connection hands out the lowest free ids again).
//
// So Roost notes the order itself (queueOrder): each message that enters
// a session's inflight map gets a sequence number, by client id (a
// session moves between mochi clients of one id) and packet id, and its
// creation time is kept beside it.
//
//   - A new message: mochi's OnQosPublish (a PUBLISH that is not a
//     re-send), Roost's own sendToClient. A re-send, and a PUBREL that
//     replaces its PUBLISH under the same packet id, keep the number.
//     Completed and dropped messages lose it (OnQosComplete,
//     OnQosDropped, except for the old client of a session taken over,
//     whose messages mochi handed to the new one); a session that ends
//     loses all of them.
//   - The sessions db stores the number with each message, and a restart
//     restores it (sessions.go).
//   - Resuming a session on this node: mochi moves the messages to the
//     new connection, writes CONNACK and re-sends them in its order,
//     then calls OnSessionEstablished. When CONNACK is encoded, Roost gives
//     the PUBLISH and PUBREL messages temporary creation times, strictly
//     increasing in mochi's 16-bit sort key in the right order
//     (resendTimes); new messages that enter the map until the re-send
//     is over (publishers see the client before CONNACK) take the times
//     after them (resendWindow). The real times are put back in
//     OnSessionEstablished. Messages that mochi's sweep may drop at any
//     moment (expiring) are left alone. If the re-send breaks off (mochi
//     then returns without that hook), the temporary times stay until the
//     next resume puts the real ones back; the sessions db and takeovers
//     take creation times from the order meanwhile.
//   - Deliveries to a connecting client wait for its CONNACK and that
//     re-send (from OnSessionEstablish to OnSessionEstablished): mochi
//     lists the client for publishers before it writes CONNACK, and its
//     writer goroutine would send new messages before CONNACK or in the
//     middle of the queued ones. (A message that enters the inflight map
//     before the re-send is still sent twice, re-sent and then new, as
//     mochi does.)
//   - A delivery that reaches the old client of a session being resumed
//     here goes to the new connection, in its place (handoff.go).
//   - A session taken over by another node goes there in this order
//     (takeover.go).
//
// Sequence numbers start at the clock in nanoseconds, so the numbers of
// a node's run are larger than those stored by earlier runs. A message
// without a number is one from a session db of before (created before
// this run: it goes first, by its creation second, then packet id) or one
// that entered the map a moment ago, whose hook has not run yet (mochi
// calls OnQosPublish after it puts the message in the map): it is the
// newest, and goes last.
type queueOrder struct {
	start    int64 // unix nanoseconds: this run's first number
	last     atomic.Int64
	sessions sync.Map // client id → *sessionQueue
}

// queueSlot is what is known of a queued message.
type queueSlot struct {
	seq     int64 // order of arrival in the session
	created int64 // unix seconds: the message's creation time
}

type sessionQueue struct {
	mu    sync.Mutex
	dead  bool // forgotten: a new sessionQueue takes over the client id
	slots map[uint16]queueSlot
}

func newQueueOrder() *queueOrder {
	o := &queueOrder{start: time.Now().UnixNano()}
	o.last.Store(o.start)
	return o
}

// with runs fn on the client's queue, creating it if need be.
func (o *queueOrder) with(client string, fn func(map[uint16]queueSlot)) {
	for {
		v, ok := o.sessions.Load(client)
		if !ok {
			v, _ = o.sessions.LoadOrStore(client, &sessionQueue{slots: map[uint16]queueSlot{}})
		}
		q := v.(*sessionQueue)
		q.mu.Lock()
		if q.dead {
			q.mu.Unlock()
			continue
		}
		fn(q.slots)
		q.mu.Unlock()
		return
	}
}

// record notes a message that entered the client's inflight map. A fresh
// one takes a new sequence number; otherwise one already noted for the
// packet id is kept.
func (o *queueOrder) record(client string, pk *packets.Packet, fresh bool) {
	o.with(client, func(slots map[uint16]queueSlot) {
		if _, ok := slots[pk.PacketID]; ok && !fresh {
			return
		}
		slots[pk.PacketID] = queueSlot{seq: o.last.Add(1), created: pk.Created}
	})
}

// restore notes a message restored from the sessions db.
func (o *queueOrder) restore(client string, packetID uint16, slot queueSlot) {
	o.with(client, func(slots map[uint16]queueSlot) { slots[packetID] = slot })
}

func (o *queueOrder) lookup(client string, packetID uint16) (queueSlot, bool) {
	v, ok := o.sessions.Load(client)
	if !ok {
		return queueSlot{}, false
	}
	q := v.(*sessionQueue)
	q.mu.Lock()
	defer q.mu.Unlock()
	s, ok := q.slots[packetID]
	return s, ok
}

func (o *queueOrder) remove(client string, packetID uint16) {
	if v, ok := o.sessions.Load(client); ok {
		q := v.(*sessionQueue)
		q.mu.Lock()
		delete(q.slots, packetID)
		q.mu.Unlock()
	}
}

// forget drops everything noted for a client id (its session ended).
func (o *queueOrder) forget(client string) {
	if v, ok := o.sessions.Load(client); ok {
		q := v.(*sessionQueue)
		q.mu.Lock()
		q.dead = true
		q.slots = nil
		q.mu.Unlock()
		o.sessions.CompareAndDelete(client, q)
	}
}

// sorted orders a client's queued packets (in place) as they were queued,
// notes the ones not known yet, and gives each its creation time as
// noted (a packet may hold a temporary one: see OnPacketEncode).
func (o *queueOrder) sorted(client string, pks []packets.Packet) []packets.Packet {
	if len(pks) == 0 {
		return pks
	}
	keys := make(map[uint16]int64, len(pks))
	o.with(client, func(slots map[uint16]queueSlot) {
		var unknown []*packets.Packet
		for i := range pks {
			pk := &pks[i]
			s, ok := slots[pk.PacketID]
			if !ok {
				unknown = append(unknown, pk)
				continue
			}
			pk.Created = s.created
			keys[pk.PacketID] = s.seq
		}
		// By creation second, then packet id: the best guess.
		slices.SortFunc(unknown, func(a, b *packets.Packet) int {
			return cmp.Or(cmp.Compare(a.Created, b.Created), cmp.Compare(a.PacketID, b.PacketID))
		})
		for _, pk := range unknown {
			s := queueSlot{seq: pk.Created*1e9 + int64(pk.PacketID), created: pk.Created}
			if pk.Created >= o.start/1e9 {
				s.seq = o.last.Add(1) // created during this run: the newest
			}
			slots[pk.PacketID] = s
			keys[pk.PacketID] = s.seq
		}
	})
	slices.SortStableFunc(pks, func(a, b packets.Packet) int {
		return cmp.Compare(keys[a.PacketID], keys[b.PacketID])
	})
	return pks
}

// resendMargin is how long a re-send may take before mochi's cap on the
// age of queued messages could act on their temporary creation times.
const resendMargin = 30

// resendTimes returns the first of n consecutive temporary creation times
// for mochi's re-send at now: within one block of 65536 seconds, so that
// their low 16 bits increase too. Where there is room, they are just
// before now, in the block of the seconds to come, so that messages that
// enter the inflight map during the re-send (created now or later) sort
// after them, and not so far back that mochi's cap on the age of queued
// messages (maxExpiry, 0: none) would drop them. Otherwise they are just
// after now (such messages may then be re-sent before them).
func resendTimes(now, maxExpiry int64, n int) int64 {
	lo := (now + 1) &^ 0xffff
	if maxExpiry > 0 {
		lo = max(lo, now+resendMargin-maxExpiry)
	}
	if base := now - 1 - int64(n); base >= lo {
		return base
	}
	base := now + 2
	if base&0xffff+int64(n) > 0x10000 {
		base = (base | 0xffff) + 1
	}
	return base
}

// resendSlot is a message given a temporary creation time for mochi's
// re-send (see the top of the file).
type resendSlot struct {
	packetID uint16
	tmp      int64 // the temporary creation time
	created  int64 // the real one
}

// resendWindow is the re-send of a resumed session, from CONNACK to
// OnSessionEstablished. Messages that enter the inflight map meanwhile
// take the next temporary creation times, after the queued ones.
type resendWindow struct {
	mu        sync.Mutex
	closed    bool
	next, end int64 // temporary creation times left for new messages
	slots     []resendSlot
	resent    map[uint16]struct{} // packet ids mochi re-sent
}

// noteResent notes that mochi's re-send wrote the message under id.
func (w *resendWindow) noteResent(id uint16) {
	w.mu.Lock()
	if w.resent == nil {
		w.resent = map[uint16]struct{}{}
	}
	w.resent[id] = struct{}{}
	w.mu.Unlock()
}

func (w *resendWindow) wasResent(id uint16) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.resent[id]
	return ok
}

// arrived gives a new message of the client a temporary creation time.
func (w *resendWindow) arrived(cl *mqtt.Client, pk *packets.Packet) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.next >= w.end {
		return
	}
	m, ok := cl.State.Inflight.Get(pk.PacketID)
	if !ok || m.Created != pk.Created {
		return
	}
	m.Created = w.next
	w.next++
	cl.State.Inflight.Set(m)
	w.slots = append(w.slots, resendSlot{packetID: m.PacketID, tmp: m.Created, created: pk.Created})
}

// orderHook keeps the queue order up to date and makes mochi re-send a
// resumed session's messages in it.
type orderHook struct {
	mqtt.HookBase
	b *Broker
}

func (h *orderHook) ID() string { return "roost-order" }

func (h *orderHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped, mqtt.OnSessionEstablish,
		mqtt.OnPacketEncode, mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnClientExpired:
		return true
	}
	return false
}

func (h *orderHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	// PUBACKs of inbound QoS 1 messages are completed at once.
	if cl.Net.Inline || pk.FixedHeader.Type == packets.Puback {
		return
	}
	fresh := pk.FixedHeader.Type == packets.Publish && !pk.FixedHeader.Dup
	if fresh && h.b.handOff(cl, pk) {
		return // a late delivery to a client taken over (handoff.go)
	}
	h.b.order.record(cl.ID, &pk, fresh)
	if st := connState(cl); st != nil && fresh {
		if w := st.resend.Load(); w != nil {
			w.arrived(cl, &pk)
		}
	}
}

func (h *orderHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	// A taken-over client's messages went to the new connection, under
	// the same client id, before mochi clears them from the old one.
	if cl.Net.Inline || takenOver(cl) {
		return
	}
	h.b.order.remove(cl.ID, pk.PacketID)
}

func (h *orderHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) { h.OnQosComplete(cl, pk) }

// OnSessionEstablish holds deliveries to the client until its session is
// set up (see the top of the file). A clean start drops the session
// (mochi discards the old messages).
func (h *orderHook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	if pk.Connect.Clean {
		h.b.order.forget(cl.ID)
	}
	if st := connState(cl); st != nil {
		hold := make(chan struct{})
		st.hold.Store(&hold)
		h.b.resumes.begin(cl, pk.Connect.Clean)
	}
}

func (h *orderHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	h.b.resumes.end(cl)
	if st := connState(cl); st != nil && st.handover.Load() != nil {
		return // moving to another node, in this order (TakeoverLocal)
	}
	if expire && !takenOver(cl) {
		h.b.order.forget(cl.ID)
	}
}

func (h *orderHook) OnClientExpired(cl *mqtt.Client) {
	if cur, ok := h.b.server.Clients.Get(cl.ID); !ok || cur == cl {
		h.b.order.forget(cl.ID)
	}
}

// OnPacketEncode holds new messages to a connecting client (see the top
// of the file), and prepares mochi's re-send of a resumed session when its
// CONNACK is encoded: mochi has moved the messages to the new connection,
// and re-sends them right after CONNACK, on this goroutine.
func (h *orderHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Publish {
		// A new message, from mochi's writer goroutine (re-sent ones
		// are marked duplicate; nothing else writes a new one before
		// OnSessionEstablished).
		if st := connState(cl); st != nil && !pk.FixedHeader.Dup {
			if hold := st.hold.Load(); hold != nil {
				select {
				case <-*hold:
				case <-st.done:
				}
			}
		} else if st != nil {
			if w := st.resend.Load(); w != nil {
				w.noteResent(pk.PacketID) // mochi's re-send (handoff.go)
			}
		}
		return pk
	}
	if pk.FixedHeader.Type != packets.Connack {
		return pk
	}
	st := connState(cl)
	if st == nil {
		return pk
	}
	h.b.connackEncoded(cl, pk.SessionPresent && pk.ReasonCode == packets.CodeSuccess.Code)
	if !pk.SessionPresent {
		return pk
	}
	// Messages that arrive while the queued ones are put in order wait
	// for w.mu, then take the times after them.
	w := &resendWindow{}
	w.mu.Lock()
	defer w.mu.Unlock()
	st.resend.Store(w)
	now := time.Now().Unix()
	maxExpiry := h.b.server.Options.Capabilities.MaximumMessageExpiryInterval
	var pks []packets.Packet
	for _, m := range cl.State.Inflight.GetAll(false) {
		if m.FixedHeader.Type != packets.Publish && m.FixedHeader.Type != packets.Pubrel {
			continue
		}
		if sweepSoon(&m, now, maxExpiry) {
			continue // mochi's sweep may drop it any moment: leave it be
		}
		pks = append(pks, m)
	}
	h.b.order.sorted(cl.ID, pks)
	// Room for as many messages as the session can hold.
	size := max(len(pks), min(int(h.b.server.Options.Capabilities.MaximumInflight), 0xffff))
	base := resendTimes(now, maxExpiry, size)
	for i, m := range pks {
		created := m.Created
		m.Created = base + int64(i)
		cl.State.Inflight.Set(m)
		w.slots = append(w.slots, resendSlot{packetID: m.PacketID, tmp: m.Created, created: created})
	}
	w.next, w.end = base+int64(len(pks)), base+int64(size)
	return pk
}

// OnSessionEstablished releases the deliveries held since
// OnSessionEstablish and puts back the real creation times of the
// messages re-sent after CONNACK.
func (h *orderHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	st := connState(cl)
	if st == nil {
		return
	}
	// Messages handed over during the re-send go before those held.
	h.b.resendOver(cl, st.resend.Load())
	if hold := st.hold.Swap(nil); hold != nil {
		close(*hold)
	}
	w := st.resend.Swap(nil)
	if w == nil {
		return
	}
	w.mu.Lock()
	w.closed = true
	slots := w.slots
	w.mu.Unlock()
	now := time.Now().Unix()
	maxExpiry := h.b.server.Options.Capabilities.MaximumMessageExpiryInterval
	for _, r := range slots {
		m, ok := cl.State.Inflight.Get(r.packetID)
		if !ok || m.Created != r.tmp {
			continue // gone or replaced
		}
		if sweepSoon(&m, now, maxExpiry) {
			continue // mochi's sweep may drop it any moment: do not bring it back
		}
		m.Created = r.created
		cl.State.Inflight.Set(m)
	}
}

// sweepSoon reports whether mochi's expiry sweep of inflight messages
// (which runs every second) may drop m within the next second: a Set
// racing with it could bring the message back.
func sweepSoon(m *packets.Packet, now, maxExpiry int64) bool {
	return (m.ProtocolVersion == 5 && m.Expiry > 0 && m.Expiry <= now+1) ||
		(maxExpiry > 0 && now+1-m.Created > maxExpiry)
}
