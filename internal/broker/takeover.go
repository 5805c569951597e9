package broker

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Session takeover across nodes (DESIGN §5: a client id is unique in the
// cluster).
//
// The new node: when a client has authenticated (routingHook.
// OnSessionEstablish, which mochi calls after OnConnect and
// OnConnectAuthenticate and before it looks for an existing session to
// inherit), ClusterHooks.Takeover disconnects the client id everywhere
// else and brings its session. Its subscriptions are installed under the
// client id, in an offline placeholder client (or the local session, if
// one exists), which mochi's own inheritance then hands to the new
// connection: CONNACK says session present, and the subscriptions follow
// mochi's usual path. The queued messages are delivered in the order
// they were queued on the old node (queue_order.go), right after CONNACK
// (OnSessionEstablished, before the client's first packet is read).
//
// The old node: TakeoverLocal disconnects the client (MQTT 5: DISCONNECT
// 0x8E), waits for mochi to finish with the connection, and removes the
// session: subscriptions, queued messages, sessions db record.

// handover is how TakeoverLocal learns the state of a session that mochi
// discards when its connection ends (OnDisconnect keeps a copy).
type handover struct {
	mu   sync.Mutex
	snap *sessionSnapshot
}

type sessionSnapshot struct {
	subs     map[string]packets.Subscription
	inflight []packets.Packet
}

// snapshotSession copies a client's session, its messages in the order
// they were queued.
func (b *Broker) snapshotSession(cl *mqtt.Client) *sessionSnapshot {
	return &sessionSnapshot{subs: cl.State.Subscriptions.GetAll(),
		inflight: b.order.sorted(cl.ID, cl.State.Inflight.GetAll(false))}
}

// takeoverWait bounds how long TakeoverLocal waits for mochi to finish
// with a disconnected client.
const takeoverWait = 5 * time.Second

// TakeoverLocal gives up a client id to another node: if a client with
// that id is connected here it is disconnected (MQTT 5: DISCONNECT with
// reason 0x8E, session taken over; 3.1.1: the connection is closed), and
// the session here, connected or not, is removed (subscriptions, queued
// messages, sessions db record). Unless cleanStart, the session is
// returned. found is false if the client id has no session here.
func (b *Broker) TakeoverLocal(clientID string, cleanStart bool) (*Session, bool) {
	if !b.running.Load() {
		return nil, false
	}
	cl, ok := b.server.Clients.Get(clientID)
	if !ok {
		return nil, false
	}
	var snap *sessionSnapshot
	if st := connState(cl); st != nil {
		ho := &handover{}
		st.handover.Store(ho)
		if !cl.Closed() {
			b.log.Info("session taken over by another node", "client", clientID)
			// A client that does not read must not hold this up (a
			// write in progress is bound by the new deadline too).
			st.cutWrites(time.Second)
			if cl.Properties.ProtocolVersion >= 5 {
				_ = b.server.DisconnectClient(cl, packets.ErrSessionTakenOver)
			} else {
				cl.Stop(packets.ErrSessionTakenOver)
			}
		}
		select {
		case <-st.done:
		case <-time.After(takeoverWait):
			b.log.Warn("takeover: client still winding down; removing its session anyway", "client", clientID)
		}
		ho.mu.Lock()
		snap = ho.snap
		ho.mu.Unlock()
	}
	if cur, ok := b.server.Clients.Get(clientID); ok && cur == cl {
		if s := b.removeSession(cl); snap == nil {
			snap = s
		}
	}
	if snap == nil || cleanStart || (cl.Properties.ProtocolVersion < 5 && cl.Properties.Clean) {
		return nil, true
	}
	return b.sessionFromSnapshot(cl, snap), true
}

// removeSession removes a client's session from mochi and the sessions db
// and returns what it held.
func (b *Broker) removeSession(cl *mqtt.Client) *sessionSnapshot {
	subs := cl.State.Subscriptions.GetAll()
	b.server.UnsubscribeClient(cl) // topic index, routes
	if cur, ok := b.server.Clients.Get(cl.ID); ok && cur == cl {
		b.server.Clients.Delete(cl.ID)
	}
	inflight := b.order.sorted(cl.ID, cl.State.Inflight.GetAll(false))
	cl.ClearInflights()
	b.order.forget(cl.ID)
	if b.sessions != nil {
		b.sessions.wipe(cl.ID)
	}
	return &sessionSnapshot{subs: subs, inflight: inflight}
}

func (b *Broker) sessionFromSnapshot(cl *mqtt.Client, snap *sessionSnapshot) *Session {
	s := &Session{ClientID: cl.ID}
	if cl.Properties.ProtocolVersion >= 5 {
		s.ExpiryInterval = cl.Properties.Props.SessionExpiryInterval
	} else if !cl.Properties.Clean {
		s.ExpiryInterval = uint32(min(b.opts.SessionExpiryV3, b.opts.MaxSessionExpiry) / time.Second)
	}
	for _, sub := range snap.subs {
		s.Subscriptions = append(s.Subscriptions, Subscription{Filter: sub.Filter, QoS: sub.Qos,
			NoLocal: sub.NoLocal, RetainAsPublished: sub.RetainAsPublished,
			RetainHandling: sub.RetainHandling, Identifier: sub.Identifier})
	}
	sort.Slice(s.Subscriptions, func(i, j int) bool { return s.Subscriptions[i].Filter < s.Subscriptions[j].Filter })

	// Messages to the client, in the order they were queued: QoS 1/2
	// PUBLISH packets, queued or sent and not acknowledged. (A QoS 2
	// message the client has already received, waiting for
	// PUBREL/PUBCOMP, is not a message to send again; inbound QoS 2 state
	// stays behind too.)
	var pks []packets.Packet
	now := time.Now().Unix()
	for _, pk := range snap.inflight {
		if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos == 0 {
			continue
		}
		if pk.Expiry > 0 && pk.Expiry <= now {
			continue
		}
		pks = append(pks, pk)
	}
	for i := range pks {
		m := messageFromPacket(&pks[i], pks[i].Origin)
		m.Retain = remoteRetained(&pks[i], cl.Properties.ProtocolVersion, snap.subs)
		s.Pending = append(s.Pending, m)
	}
	return s
}

// OnSessionEstablish asks the cluster for the client's session before
// mochi sets the session up.
func (h *routingHook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	b := h.b
	takeover := b.hooks().Takeover
	st := connState(cl)
	if takeover == nil || st == nil {
		return
	}
	clean := pk.Connect.Clean
	ctx, cancel := context.WithTimeout(b.ctx, takeoverWait)
	sess, err := takeover(ctx, cl.ID, clean)
	cancel()
	if err != nil {
		b.log.Warn("session takeover failed; the client connects without its session from other nodes",
			"client", cl.ID, "err", err)
		return
	}
	if sess == nil || clean {
		return
	}
	b.installSession(cl, st, sess)
}

// installSession puts a session from another node under the client id,
// for mochi to hand to the connecting client.
func (b *Broker) installSession(cl *mqtt.Client, st *clientConn, sess *Session) {
	var subs []packets.Subscription
	for _, s := range sess.Subscriptions {
		if !mqtt.IsValidFilter(s.Filter, false) {
			continue
		}
		subs = append(subs, packets.Subscription{Filter: s.Filter, Qos: min(s.QoS, 2), NoLocal: s.NoLocal,
			RetainAsPublished: s.RetainAsPublished, RetainHandling: s.RetainHandling, Identifier: s.Identifier})
	}
	target, ok := b.server.Clients.Get(cl.ID)
	if !ok {
		// An offline session that mochi's inheritance will hand over.
		target = b.server.NewClient(nil, cl.Net.Listener, cl.ID, false)
		target.Properties.ProtocolVersion = cl.Properties.ProtocolVersion
		target.Properties.Clean = false
		target.Properties.Username = cl.Properties.Username
		target.Stop(packets.ErrSessionTakenOver)
		b.server.Clients.Add(target)
	}
	filters := make([]string, 0, len(subs))
	for _, sub := range subs {
		if b.server.Topics.Subscribe(cl.ID, sub) {
			atomic.AddInt64(&b.server.Info.Subscriptions, 1)
		}
		target.State.Subscriptions.Add(sub.Filter, sub)
		filters = append(filters, sub.Filter)
	}
	b.routes.add(cl.ID, filters...)
	st.movedSubs = subs
	st.movedPending = sess.Pending
	b.log.Info("session moved here from another node", "client", cl.ID,
		"subscriptions", len(subs), "queued", len(sess.Pending))
}

// OnSessionEstablished persists a moved session's subscriptions and
// delivers its queued messages, after CONNACK and before mochi reads the
// client's first packet.
func (h *routingHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	st := connState(cl)
	if st == nil || (st.movedSubs == nil && st.movedPending == nil) {
		return
	}
	b := h.b
	subs, pending := st.movedSubs, st.movedPending
	st.movedSubs, st.movedPending = nil, nil
	if b.sessions != nil && len(subs) > 0 {
		b.sessions.putSubs(cl, subs)
	}
	now := time.Now()
	maxQoS := b.server.Options.Capabilities.MaximumQos
	for i := range pending {
		m := &pending[i]
		left, expired := remainingExpiry(m, now)
		if expired || m.QoS == 0 {
			continue
		}
		out := packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: min(m.QoS, maxQoS), Retain: m.Retain,
				Dup: true},
			TopicName:       m.Topic,
			Payload:         m.Payload,
			Properties:      packetProps(m, left),
			Origin:          m.From,
			Created:         now.Unix(),
			ProtocolVersion: 5, // mochi expires queued messages of MQTT 5 packets only
		}
		if out.FixedHeader.Qos == 0 {
			out.FixedHeader.Dup = false
		}
		if exp := minimum(b.server.Options.Capabilities.MaximumMessageExpiryInterval, int64(left)); exp > 0 {
			out.Expiry = out.Created + exp
		}
		if !b.sendToClient(cl, out) {
			b.log.Warn("could not deliver all messages of a moved session", "client", cl.ID,
				"delivered", i, "queued", len(pending))
			return
		}
	}
}

// minimum is mochi's: the smaller of a and b ignoring zeros (0 if both are).
func minimum(a, b int64) int64 {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	default:
		return min(a, b)
	}
}

// sendToClient writes a PUBLISH to a connected client directly (not
// through its outbound queue, which drops when full), tracking QoS 1/2
// messages as in flight like mochi does. It returns false once the
// client is gone. It waits for room in the client's write queue before
// it takes the client's lock (WritePacket), which mochi's publishers
// need too.
func (b *Broker) sendToClient(cl *mqtt.Client, out packets.Packet) bool {
	if st := connState(cl); st != nil && !st.wq.waitRoom(len(out.TopicName)+len(out.Payload)+64) {
		return false
	}
	if out.FixedHeader.Qos > 0 && !b.queueForClient(cl, &out, 0) {
		return !cl.Closed()
	}
	return b.writeQueued(cl, out)
}
