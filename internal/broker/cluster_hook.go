package broker

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roostmq/roost/internal/store"
)

// The broker's side of clustering (see cluster_api.go for the contract),
// built on mochi's hooks:
//
//   - Forwarding. routingHook.OnPublish runs for every PUBLISH of a local
//     client once mochi and the earlier hooks have authorised it (mochi's
//     ACL check, then authzHook.OnPublish, which ends the hook chain when
//     it denies), before mochi retains and delivers it, on the
//     publisher's goroutine, so per-publisher order holds. It calls
//     ClusterHooks.Forward. Will messages do not pass through OnPublish:
//     they are forwarded from OnWill (sent at once) or OnWillSent
//     (delayed wills, after local delivery).
//   - Shared subscriptions served elsewhere. Forward returns the shared
//     subscriptions another node serves for the message; they travel
//     with the packet (below) to OnSelectSubscribers, which mochi calls
//     with the matching subscribers before it picks one member per
//     shared group, and which removes those groups.
//   - Remote delivery (DeliverRemote) injects the message through mochi's
//     InjectPacket with a private inline client, so it takes mochi's own
//     delivery path (QoS downgrade, subscription identifiers, no local,
//     topic aliases, queueing for offline sessions, message expiry)
//     without an ACL check (inline clients skip it) and without being
//     forwarded again (OnPublish recognises it). It is injected without
//     the retain flag, so mochi neither touches its retained map nor
//     calls OnRetainMessage (the retained store reaches every node
//     through raft); OnPacketEncode sets the flag again on the way out to
//     MQTT 5 subscribers whose matching subscription has Retain As
//     Published.
//
// Per-message data travels in the packet's Filters field, which mochi
// never uses for PUBLISH packets (neither decoded nor encoded), and which
// Packet.Copy carries into every copy made for a subscriber. Filters[0]
// holds a marker that no real filter can be (it starts with a NUL).
const (
	// Filters[1:]: shared subscriptions to skip (served elsewhere).
	markLocal = "\x00roost:local"
	// Filters[0].Qos bit 0: the message was published with retain;
	// Filters[1].Filter: its topic (a topic alias may blank TopicName);
	// Filters[2:]: the shared subscriptions to serve here.
	markRemote = "\x00roost:remote"
)

func marker(pk *packets.Packet) string {
	if len(pk.Filters) == 0 || len(pk.Filters[0].Filter) == 0 || pk.Filters[0].Filter[0] != 0 {
		return ""
	}
	return pk.Filters[0].Filter
}

func isRemote(pk *packets.Packet) bool { return marker(pk) == markRemote }

// routingHook implements cluster routing, the route table of local
// filters, session moves, and Roost's retained delivery on subscribe.
type routingHook struct {
	mqtt.HookBase
	b *Broker

	// Immediate will messages being published: client id + NUL + topic
	// → shared subscriptions to skip. Set in OnWill, read in
	// OnSelectSubscribers and dropped in OnWillSent, all on the
	// disconnecting client's goroutine.
	wills sync.Map
}

func (h *routingHook) ID() string { return "roost-routing" }

func (h *routingHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnDisconnect,
		mqtt.OnSubscribe, mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnPacketProcessed,
		mqtt.OnPublish, mqtt.OnSelectSubscribers, mqtt.OnPacketEncode,
		mqtt.OnWill, mqtt.OnWillSent, mqtt.OnClientExpired:
		return true
	}
	return false
}

// --- forwarding ---

// messageFromPacket converts a PUBLISH (or a queued copy of one) to a
// cluster Message. Expiry is counted from the packet's creation.
func messageFromPacket(pk *packets.Packet, from string) Message {
	m := Message{Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos,
		Retain: pk.FixedHeader.Retain, ContentType: pk.Properties.ContentType,
		ResponseTopic: pk.Properties.ResponseTopic, CorrelationData: pk.Properties.CorrelationData,
		From: from, Created: time.Unix(pk.Created, 0)}
	if pk.Created == 0 {
		m.Created = time.Now()
	}
	if pk.Properties.PayloadFormatFlag {
		f := pk.Properties.PayloadFormat
		m.PayloadFormat = &f
	}
	switch {
	case pk.Expiry > 0 && pk.Created > 0:
		m.MessageExpiry = uint32(max(pk.Expiry-pk.Created, 1))
	case pk.Properties.MessageExpiryInterval > 0:
		// A queued packet whose expiry mochi overwrote (-1: waiting for
		// send quota) or that was restored from the sessions db.
		m.MessageExpiry = pk.Properties.MessageExpiryInterval
	}
	for _, up := range pk.Properties.User {
		m.UserProperties = append(m.UserProperties, store.UserProperty{Key: up.Key, Val: up.Val})
	}
	return m
}

// remainingExpiry returns the seconds a message has left to live (0: no
// expiry) and whether it has expired.
func remainingExpiry(m *Message, now time.Time) (uint32, bool) {
	if m.MessageExpiry == 0 {
		return 0, false
	}
	created := m.Created
	if created.IsZero() {
		created = now
	}
	left := created.Add(time.Duration(m.MessageExpiry) * time.Second).Sub(now)
	if left <= 0 {
		return 0, true
	}
	return uint32((left + time.Second - 1) / time.Second), false
}

// packetProps builds the MQTT 5 properties of a message.
func packetProps(m *Message, expiry uint32) packets.Properties {
	p := packets.Properties{MessageExpiryInterval: expiry, ContentType: m.ContentType,
		ResponseTopic: m.ResponseTopic, CorrelationData: m.CorrelationData}
	if m.PayloadFormat != nil {
		p.PayloadFormat, p.PayloadFormatFlag = *m.PayloadFormat, true
	}
	for _, up := range m.UserProperties {
		p.User = append(p.User, packets.UserProperty{Key: up.Key, Val: up.Val})
	}
	return p
}

func withMarker(mark string, extra []string, items []string) packets.Subscriptions {
	out := make(packets.Subscriptions, 0, 1+len(extra)+len(items))
	out = append(out, packets.Subscription{Filter: mark})
	for _, s := range extra {
		out = append(out, packets.Subscription{Filter: s})
	}
	for _, s := range items {
		out = append(out, packets.Subscription{Filter: s})
	}
	return out
}

// OnPublish forwards a local client's message to the cluster.
func (h *routingHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || isRemote(&pk) {
		return pk, nil
	}
	fwd := h.b.hooks().Forward
	if fwd == nil {
		return pk, nil
	}
	if skip := fwd(messageFromPacket(&pk, cl.ID)); len(skip) > 0 {
		pk.Filters = withMarker(markLocal, nil, skip)
	}
	return pk, nil
}

func willKey(client, topic string) string { return client + "\x00" + topic }

func willMessage(cl *mqtt.Client, w *mqtt.Will) Message {
	m := Message{Topic: w.TopicName, Payload: w.Payload, QoS: w.Qos, Retain: w.Retain,
		From: cl.ID, Created: time.Now()}
	for _, up := range w.User {
		m.UserProperties = append(m.UserProperties, store.UserProperty{Key: up.Key, Val: up.Val})
	}
	return m
}

// OnWill forwards a will message that mochi is about to publish at once
// (mochi calls it for delayed wills too, when it queues them: those are
// forwarded from OnWillSent once they are sent).
func (h *routingHook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	fwd := h.b.hooks().Forward
	if fwd == nil || cl.Net.Inline || cl.Properties.Will.WillDelayInterval > 0 {
		return will, nil
	}
	if skip := fwd(willMessage(cl, &will)); len(skip) > 0 {
		h.wills.Store(willKey(cl.ID, will.TopicName), skip)
	}
	return will, nil
}

func (h *routingHook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	h.wills.Delete(willKey(cl.ID, pk.TopicName))
	if pk.Connect.WillProperties.WillDelayInterval == 0 {
		return // forwarded in OnWill
	}
	if fwd := h.b.hooks().Forward; fwd != nil {
		// Local subscribers already have it; a shared group that
		// another node serves may get it here too.
		m := messageFromPacket(&pk, cl.ID)
		m.MessageExpiry, m.Created = 0, time.Now() // mochi's Expiry is the will's send time
		fwd(m)
	}
}

// OnSelectSubscribers removes the shared groups that another node serves
// for this message: for a local message those Forward named, for a
// message from another node all but those it was sent for.
func (h *routingHook) OnSelectSubscribers(subs *mqtt.Subscribers, pk packets.Packet) *mqtt.Subscribers {
	var names []string
	keep := false
	switch marker(&pk) {
	case markLocal:
		names = filterNames(pk.Filters[1:])
	case markRemote:
		if len(pk.Filters) > 2 {
			names = filterNames(pk.Filters[2:])
		}
		keep = true
	case "":
		if pk.Origin == "" {
			return subs
		}
		v, ok := h.wills.Load(willKey(pk.Origin, pk.TopicName))
		if !ok {
			return subs
		}
		names = v.([]string)
	default:
		return subs
	}
	set := make(map[string]struct{}, len(names))
	for _, n := range names {
		set[canonicalFilter(n)] = struct{}{}
	}
	for f := range subs.Shared {
		if _, listed := set[canonicalFilter(f)]; listed != keep {
			delete(subs.Shared, f)
		}
	}
	return subs
}

func filterNames(subs packets.Subscriptions) []string {
	out := make([]string, len(subs))
	for i, s := range subs {
		out[i] = s.Filter
	}
	return out
}

// OnPacketEncode, on the way out to a client: restores the retain flag of
// a message from another node for MQTT 5 subscribers whose matching
// subscription asks for Retain As Published (DeliverRemote injects
// messages without it); sets the exact expiry interval left of a retained
// message (mochi counts whole seconds, and sends 1 for an expired
// message); and never lets a PUBACK carry mochi's QoS 1 code 0x01, which
// is not a PUBACK reason code (see NoInheritedPropertiesOnAck in
// broker.go).
func (h *routingHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Puback && pk.ReasonCode == packets.CodeGrantedQos1.Code {
		pk.ReasonCode = packets.CodeSuccess.Code
		return pk
	}
	if pk.FixedHeader.Type == packets.Publish && marker(&pk) == markRetained {
		if exp, ok := packetExpiry(&pk); ok {
			left, _ := expiryLeft(exp, time.Now())
			pk.Properties.MessageExpiryInterval = max(left, 1) // expired meanwhile: as mochi does
		}
		return pk
	}
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Retain || len(pk.Filters) < 2 ||
		pk.Filters[0].Filter != markRemote || pk.Filters[0].Qos&1 == 0 || cl.Properties.ProtocolVersion < 5 {
		return pk
	}
	pk.FixedHeader.Retain = retainAsPublished(cl.State.Subscriptions.GetAll(), pk.Filters[1].Filter)
	return pk
}

// retainAsPublished reports whether one of subs matching topic asks for
// Retain As Published.
func retainAsPublished(subs map[string]packets.Subscription, topic string) bool {
	for f, sub := range subs {
		if sub.RetainAsPublished && MatchTopic(stripSharePrefix(f), topic) {
			return true
		}
	}
	return false
}

// remoteRetained reports whether a queued copy of a message from another
// node goes out with the retain flag (see OnPacketEncode).
func remoteRetained(pk *packets.Packet, protocolVersion byte, subs map[string]packets.Subscription) bool {
	return pk.FixedHeader.Retain || (protocolVersion >= 5 && len(pk.Filters) >= 2 && pk.Filters[0].Filter == markRemote &&
		pk.Filters[0].Qos&1 != 0 && retainAsPublished(subs, pk.Filters[1].Filter))
}

// stripSharePrefix returns the topic filter of a shared subscription.
func stripSharePrefix(f string) string {
	if !mqtt.IsSharedFilter(f) {
		return f
	}
	parts := strings.SplitN(f, "/", 3)
	if len(parts) < 3 {
		return f
	}
	return parts[2]
}

// MatchTopic reports whether an MQTT topic filter matches a topic name.
// Topics starting with '$' are not matched by a leading wildcard. The API
// and the cluster's route table use it too, so all agree on matching.
func MatchTopic(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "#") || strings.HasPrefix(filter, "+")) {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore || !tmore {
			if !fmore && !tmore {
				return true
			}
			return !tmore && fmore && frest == "#" // "a/#" matches "a"
		}
		filter, topic = frest, trest
	}
}

// --- routes ---

// OnSubscribed records the new subscriptions as routes and puts back the
// retain handling that OnSubscribe replaced.
func (h *routingHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	st := connState(cl)
	var added []string
	for i, f := range pk.Filters {
		if i >= len(codes) || codes[i] >= packets.ErrUnspecifiedError.Code {
			continue
		}
		if st != nil && i < len(st.subscribing) && st.subscribing[i].sub.Filter == f.Filter {
			req := &st.subscribing[i]
			req.ok = true
			if req.sub.RetainHandling != f.RetainHandling {
				orig := f
				orig.RetainHandling = req.sub.RetainHandling
				h.b.server.Topics.Subscribe(cl.ID, orig)
				cl.State.Subscriptions.Add(orig.Filter, orig)
			}
		}
		added = append(added, f.Filter)
	}
	h.b.routes.add(cl.ID, added...)
}

func (h *routingHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	filters := make([]string, len(pk.Filters))
	for i, f := range pk.Filters {
		filters[i] = f.Filter
	}
	h.b.routes.remove(cl.ID, filters...)
}

// OnClientExpired drops an expired session's subscriptions, which mochi
// leaves in its topic index. The sessions hook does it when sessions are
// persisted.
func (h *routingHook) OnClientExpired(cl *mqtt.Client) {
	if h.b.sessions != nil {
		return
	}
	if cur, ok := h.b.server.Clients.Get(cl.ID); ok && cur != cl {
		return
	}
	h.b.server.UnsubscribeClient(cl)
	cl.ClearInflights()
}

// OnDisconnect keeps the session of a client that TakeoverLocal
// disconnects when mochi is about to discard it (a session that ends with
// its connection), so it can still move to the new node.
func (h *routingHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	st := connState(cl)
	if st == nil || !expire {
		return
	}
	if ho := st.handover.Load(); ho != nil {
		ho.mu.Lock()
		ho.snap = h.b.snapshotSession(cl)
		ho.mu.Unlock()
	}
}

// --- the cluster-facing methods ---

// noHooks is what an unclustered broker uses.
var noHooks = &ClusterHooks{}

// SetClusterHooks connects the broker to the cluster; call it before
// Start. Nil fields (or never calling it) leave the node unclustered.
func (b *Broker) SetClusterHooks(h ClusterHooks) {
	b.cluster.Store(&h)
}

func (b *Broker) hooks() *ClusterHooks {
	if h := b.cluster.Load(); h != nil {
		return h
	}
	return noHooks
}

// LocalFilters lists the filters with local subscribers, connected or in
// persistent offline sessions; shared subscriptions as
// "$share/group/filter". The slice is shared: do not modify it.
func (b *Broker) LocalFilters() []string {
	return b.routes.filters()
}

// remoteClients are the inline clients DeliverRemote injects messages
// with, one per concurrent call. mochi stamps a message with its
// publisher's client id (Origin, used for No Local), so each call sets
// the id to the original publisher's.
func (b *Broker) newRemoteClient() any {
	cl := b.server.NewClient(nil, "cluster", "", true)
	cl.Properties.ProtocolVersion = 5 // mochi expires queued messages of MQTT 5 packets only
	return cl
}

// DeliverRemote delivers a message published on another node to the local
// subscribers of matching plain filters and to the listed shared
// subscriptions ("$share/group/filter", one member each). It goes through
// mochi's delivery as a local publish would (QoS downgrade, retain as
// published, properties, message expiry counted from msg.Created, queued
// for offline sessions), but is not authorised again, not retained here
// and not forwarded.
func (b *Broker) DeliverRemote(msg Message, shared []string) {
	if !b.running.Load() {
		return
	}
	expiry, expired := remainingExpiry(&msg, time.Now())
	if expired {
		return
	}
	var flags byte
	if msg.Retain {
		flags = 1
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: min(msg.QoS, 2)},
		TopicName:   msg.Topic,
		Payload:     msg.Payload,
		Properties:  packetProps(&msg, expiry),
		Filters:     withMarker(markRemote, []string{msg.Topic}, shared),
	}
	pk.Filters[0].Qos = flags
	if pk.FixedHeader.Qos > 0 {
		pk.PacketID = 1 // required by mochi's checks; inline publishes are never acknowledged
	}
	cl := b.remotePool.Get().(*mqtt.Client)
	cl.ID = msg.From
	err := b.server.InjectPacket(cl, pk)
	cl.ID = ""
	b.remotePool.Put(cl)
	if err != nil {
		b.log.Warn("cannot deliver message from another node", "topic", msg.Topic, "err", err)
		return
	}
	// InjectPacket counts the message as received from a client.
	atomic.AddInt64(&b.server.Info.PacketsReceived, -1)
	atomic.AddInt64(&b.server.Info.MessagesReceived, -1)
}

// goBackground runs fn on a goroutine that Close waits for; false if the
// broker is closing.
func (b *Broker) goBackground(fn func()) bool {
	b.bgMu.Lock()
	defer b.bgMu.Unlock()
	if b.bgClosed {
		return false
	}
	b.bgWG.Add(1)
	go func() {
		defer b.bgWG.Done()
		fn()
	}()
	return true
}
