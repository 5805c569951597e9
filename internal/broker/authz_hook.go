package broker

import (
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// authzHook enforces the ACL rules (see acl.go for their semantics).
//
// How mochi v2.7.9 acts on a denial, and what Roost does with it:
//
//   - SUBSCRIBE: processSubscribe calls OnACLCheck(filter, write=false)
//     and answers a denied filter with reason code 0x87 (MQTT 5), which it
//     turns into 0x80 for 3.1.1. Used as is. But mochi also calls
//     OnACLCheck(topic, write=false) for every delivery to a subscriber, a
//     call it makes with the same signature. Roost authorises a
//     subscription once, when it is made (EMQX semantics, and no rule walk
//     per delivered message): OnSubscribe evaluates the filters and
//     remembers the denied ones on the connection, OnACLCheck answers from
//     that set, and OnSubscribed clears it. Deliveries are always allowed.
//   - PUBLISH, MQTT 5: on a false OnACLCheck(topic, write=true) mochi drops
//     a QoS 0 message and answers QoS 1 with PUBACK 0x87 and QoS 2 with
//     PUBREC 0x87. Used as is.
//   - PUBLISH, 3.1.1: mochi disconnects the client on a denied QoS 1/2
//     publish. Roost drops the message instead (as EMQX does by default):
//     OnACLCheck allows, and OnPublish returns CodeSuccessIgnore for a
//     denied topic, which makes mochi acknowledge normally but neither
//     deliver nor retain the message.
//   - PUBLISH with a topic alias: mochi checks the ACL before resolving
//     the alias (with an empty topic), so such publishes are checked again
//     in OnPublish with the resolved topic.
//   - Will messages: mochi publishes them without an ACL check; Roost
//     checks the will topic once the client is authenticated and drops a
//     will the client may not publish.
type authzHook struct {
	mqtt.HookBase
	acl *aclSet
}

func (h *authzHook) ID() string { return "roost-authz" }

func (h *authzHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnACLCheck, mqtt.OnSubscribe, mqtt.OnSubscribed, mqtt.OnPublish, mqtt.OnSessionEstablish:
		return true
	}
	return false
}

func whoOf(cl *mqtt.Client) who {
	return who{username: string(cl.Properties.Username), hasUsername: len(cl.Properties.Username) > 0,
		clientID: cl.ID}
}

// allowed decides an action of a connected client.
func (h *authzHook) allowed(cl *mqtt.Client, action uint8, topic string) bool {
	if st := connState(cl); st != nil && st.superuser {
		return true
	}
	w := whoOf(cl)
	return h.acl.authorize(action, topic, &w)
}

func (h *authzHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if !write {
		// A SUBSCRIBE filter being processed, or a delivery: see the type
		// comment.
		if st := connState(cl); st != nil {
			if d := st.denied.Load(); d != nil {
				_, deny := (*d)[topic]
				return !deny
			}
		}
		return true
	}
	if cl.Properties.ProtocolVersion < 5 || topic == "" {
		return true // decided in OnPublish
	}
	return h.allowed(cl, actionPublish, topic)
}

func (h *authzHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	st := connState(cl)
	if st == nil || st.superuser {
		return pk
	}
	var denied map[string]struct{}
	for _, sub := range pk.Filters {
		if !h.allowed(cl, actionSubscribe, sub.Filter) {
			if denied == nil {
				denied = map[string]struct{}{}
			}
			denied[sub.Filter] = struct{}{}
			h.Log.Info("subscribe denied", "client", cl.ID, "username", string(cl.Properties.Username),
				"filter", sub.Filter)
		}
	}
	if denied != nil {
		st.denied.Store(&denied)
	}
	return pk
}

func (h *authzHook) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) {
	if st := connState(cl); st != nil {
		st.denied.Store(nil)
	}
}

func (h *authzHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	v5 := cl.Properties.ProtocolVersion >= 5
	if v5 && !(pk.Properties.TopicAliasFlag && pk.Properties.TopicAlias > 0) {
		return pk, nil // checked in OnACLCheck
	}
	if cl.Net.Inline || h.allowed(cl, actionPublish, pk.TopicName) {
		return pk, nil
	}
	h.Log.Info("publish denied", "client", cl.ID, "username", string(cl.Properties.Username),
		"topic", pk.TopicName, "qos", pk.FixedHeader.Qos)
	switch {
	case !v5:
		return pk, packets.CodeSuccessIgnore // acknowledged, not delivered
	case pk.FixedHeader.Qos == 0:
		return pk, packets.ErrRejectPacket
	case pk.FixedHeader.Qos == 1:
		return pk, packets.ErrNotAuthorized // PUBACK 0x87
	default:
		// mochi would answer a QoS 2 error with a PUBACK; drop quietly.
		return pk, packets.CodeSuccessIgnore
	}
}

// OnSessionEstablish runs after authentication, before CONNACK: drop a
// will message the client is not allowed to publish.
func (h *authzHook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	if atomic.LoadUint32(&cl.Properties.Will.Flag) == 0 {
		return
	}
	if !h.allowed(cl, actionPublish, cl.Properties.Will.TopicName) {
		h.Log.Info("will message denied; it will not be published", "client", cl.ID,
			"topic", cl.Properties.Will.TopicName)
		atomic.StoreUint32(&cl.Properties.Will.Flag, 0)
	}
}
