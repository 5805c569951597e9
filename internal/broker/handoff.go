package broker

import (
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Messages that reach the old client of a session resumed on this node.
//
// mochi hands a session to a new connection of the same client id in
// inheritClientSession: it copies the old client's inflight messages and
// subscriptions, and only then lists the new client for publishers
// (Clients.Add). A publisher that looked the client id up before that
// delivers to the old client after the copy: mochi puts the message in
// the old client's inflight map, which nothing reads again, and a QoS 1/2
// message is lost.
//
// So every connection registers itself while it sets its session up
// (resumes, from OnSessionEstablish to OnDisconnect), and a message that
// enters the map of a client taken over by it (orderHook.OnQosPublish) is
// handed to it instead, in the order the messages arrived:
//
//   - Before its CONNACK: kept, and put in the new client's map when
//     CONNACK is encoded, before the re-send is put in order
//     (queue_order.go), so that mochi re-sends it in its place.
//   - During mochi's re-send: put in the map at once. mochi's re-send may
//     take it or not (it lists the map once); the ones it did not take are
//     written when it is over, before the deliveries held meanwhile.
//   - After: sent at once, as Roost sends a moved session's messages.
//
// The old client's copy is taken out of its map, and the sessions db
// keeps the message under the new client's packet id only. A message that
// mochi copied all the same (its hook ran after the copy had begun) is
// recognised by its payload and not handed over twice. A clean start, or a
// session mochi does not resume, drops them, as it drops the rest of the
// old session.
type resumes struct {
	m sync.Map // client id → *resume
}

type resumePhase int

const (
	resumeConnecting resumePhase = iota // until CONNACK is encoded
	resumeResending                     // mochi re-sends the session's messages
	resumeLive                          // from OnSessionEstablished on
)

// resume is a connection setting up (or having set up) its session.
type resume struct {
	cl      *mqtt.Client
	mu      sync.Mutex
	discard bool // the old session is not resumed: its messages are dropped
	phase   resumePhase
	late    []lateMessage // resumeConnecting: handed over, not in cl's map yet
	adopted []uint16      // resumeResending: put in cl's map during the re-send
}

type lateMessage struct {
	pk  packets.Packet
	seq int64 // its place in the order of the session
}

// begin registers cl, which is connecting. cleanStart: any old session
// is dropped.
func (rs *resumes) begin(cl *mqtt.Client, cleanStart bool) {
	rs.m.Store(cl.ID, &resume{cl: cl, discard: cleanStart})
}

// end unregisters cl, whose connection has ended.
func (rs *resumes) end(cl *mqtt.Client) {
	if v, ok := rs.m.Load(cl.ID); ok && v.(*resume).cl == cl {
		rs.m.CompareAndDelete(cl.ID, v)
	}
}

// of returns cl's own registration, nil if it has none.
func (rs *resumes) of(cl *mqtt.Client) *resume {
	if v, ok := rs.m.Load(cl.ID); ok && v.(*resume).cl == cl {
		return v.(*resume)
	}
	return nil
}

// successor returns the connection that took old's session over on this
// node, nil if there is none.
func (rs *resumes) successor(old *mqtt.Client) *resume {
	if !old.IsTakenOver() && !takenOver(old) {
		return nil
	}
	v, ok := rs.m.Load(old.ID)
	if !ok || v.(*resume).cl == old {
		return nil
	}
	return v.(*resume)
}

// samePublish reports whether a and b are one delivery of one message:
// mochi copies the payload for each delivery, and a copied session keeps
// it.
func samePublish(a, b *packets.Packet) bool {
	if a.FixedHeader.Type != packets.Publish || a.TopicName != b.TopicName || len(a.Payload) != len(b.Payload) {
		return false
	}
	if len(a.Payload) == 0 {
		return a.Created == b.Created
	}
	return &a.Payload[0] == &b.Payload[0]
}

// inMap reports whether cl's inflight map holds pk under its packet id.
func inMap(cl *mqtt.Client, pk *packets.Packet) bool {
	m, ok := cl.State.Inflight.Get(pk.PacketID)
	return ok && samePublish(&m, pk)
}

// handOff passes a message that entered the inflight map of old, a client
// taken over, to the connection that took it over. false: there is none
// on this node, and the message stays where mochi put it.
func (b *Broker) handOff(old *mqtt.Client, pk packets.Packet) bool {
	r := b.resumes.successor(old)
	if r == nil {
		return false
	}
	if inMap(old, &pk) && old.State.Inflight.Delete(pk.PacketID) {
		atomic.AddInt64(&b.server.Info.Inflight, -1)
	}
	seq := b.order.last.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.discard {
		return true
	}
	// Until CONNACK, mochi may still replace r.cl's inflight map (and
	// r.mu orders what follows after that).
	if r.phase != resumeConnecting && inMap(r.cl, &pk) {
		b.order.restore(r.cl.ID, pk.PacketID, queueSlot{seq: seq, created: pk.Created})
		return true
	}
	switch r.phase {
	case resumeConnecting:
		r.late = append(r.late, lateMessage{pk: pk, seq: seq})
	case resumeResending:
		if b.queueForClient(r.cl, &pk, seq) {
			r.adopted = append(r.adopted, pk.PacketID)
			if st := connState(r.cl); st != nil {
				if w := st.resend.Load(); w != nil {
					w.arrived(r.cl, &pk)
				}
			}
		}
	default:
		// Written under r.mu: the messages handed over keep their order.
		if st := connState(r.cl); st != nil {
			st.wq.waitRoom(len(pk.TopicName) + len(pk.Payload) + 64)
		}
		if b.queueForClient(r.cl, &pk, seq) {
			b.writeQueued(r.cl, pk)
		}
	}
	return true
}

// connackEncoded moves the messages handed to cl before its CONNACK into
// its inflight map, where mochi's re-send finds them (resumed), or drops
// them (a session not resumed).
func (b *Broker) connackEncoded(cl *mqtt.Client, resumed bool) {
	r := b.resumes.of(cl)
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.phase != resumeConnecting {
		return
	}
	if !resumed {
		r.discard, r.late, r.phase = true, nil, resumeLive
		return
	}
	for i := range r.late {
		l := &r.late[i]
		switch {
		case r.discard:
		case inMap(cl, &l.pk):
			// Copied by mochi: it only lacks its place in the order.
			b.order.restore(cl.ID, l.pk.PacketID, queueSlot{seq: l.seq, created: l.pk.Created})
		default:
			b.queueForClient(cl, &l.pk, l.seq)
		}
	}
	r.late, r.phase = nil, resumeResending
}

// resendOver writes the messages handed to cl during mochi's re-send that
// the re-send did not take (w: the re-send's window), before the
// deliveries held meanwhile are released.
func (b *Broker) resendOver(cl *mqtt.Client, w *resendWindow) {
	r := b.resumes.of(cl)
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	adopted := r.adopted
	r.adopted, r.late, r.phase = nil, nil, resumeLive
	for _, id := range adopted {
		if w != nil && w.wasResent(id) {
			continue
		}
		m, ok := cl.State.Inflight.Get(id)
		if !ok || m.FixedHeader.Type != packets.Publish {
			continue
		}
		m.FixedHeader.Dup = true // past the hold, like the re-sent ones
		if !b.writeQueued(cl, m) {
			return
		}
	}
}

// queueForClient puts a QoS 1/2 PUBLISH in cl's inflight map under a new
// packet id, as mochi does for a delivery, noting its place in the order
// (seq; 0: the next) and in the sessions db. false: no packet id is free.
func (b *Broker) queueForClient(cl *mqtt.Client, out *packets.Packet, seq int64) bool {
	id, err := cl.NextPacketID()
	if err != nil {
		atomic.AddInt64(&b.server.Info.InflightDropped, 1)
		b.log.Warn("packet ids exhausted; message not sent", "client", cl.ID, "topic", out.TopicName)
		return false
	}
	out.PacketID = uint16(id)
	if !cl.State.Inflight.Set(*out) {
		return true // replaced a message under that id: counted already
	}
	atomic.AddInt64(&b.server.Info.Inflight, 1)
	if seq == 0 {
		b.order.record(cl.ID, out, true)
	} else {
		b.order.restore(cl.ID, out.PacketID, queueSlot{seq: seq, created: out.Created})
	}
	if b.sessions != nil {
		b.sessions.OnQosPublish(cl, *out, out.Created, 0)
	}
	cl.State.Inflight.DecreaseSendQuota()
	return true
}

// writeQueued writes a message of cl's inflight map to it. false: the
// client is gone (the message stays queued in its session).
func (b *Broker) writeQueued(cl *mqtt.Client, out packets.Packet) bool {
	if err := cl.WritePacket(out); err != nil {
		if cl.Closed() {
			return false
		}
		b.log.Debug("message not sent", "client", cl.ID, "topic", out.TopicName, "err", err)
		if out.FixedHeader.Qos > 0 && cl.State.Inflight.Delete(out.PacketID) {
			atomic.AddInt64(&b.server.Info.Inflight, -1)
			cl.State.Inflight.IncreaseSendQuota()
			b.order.remove(cl.ID, out.PacketID)
			if b.sessions != nil {
				b.sessions.OnQosDropped(cl, out)
			}
		}
	}
	return true
}
