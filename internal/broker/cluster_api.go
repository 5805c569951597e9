package broker

import (
	"context"
	"time"

	"github.com/roostmq/roost/internal/store"
)

// This file is the broker's side of clustering, free of mochi types so
// that the cluster package never imports the MQTT engine.

// Message is one application message as it crosses between nodes, with
// the MQTT 5 properties that must arrive unchanged.
type Message struct {
	Topic           string
	Payload         []byte
	QoS             byte
	Retain          bool
	PayloadFormat   *byte
	MessageExpiry   uint32 // seconds, 0 = none; counted from Created
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	UserProperties  []store.UserProperty
	From            string // publisher's client id
	Created         time.Time
}

// Subscription is one subscription of a session, with its MQTT 5 options.
type Subscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	Identifier        int
}

// Session is a client's session state moved from one node to another on
// takeover: its subscriptions and the QoS 1/2 messages queued for it.
type Session struct {
	ClientID       string
	Subscriptions  []Subscription
	Pending        []Message // queued or in flight, oldest first
	ExpiryInterval uint32
}

// ClusterHooks connect the broker to the cluster. Every field may be nil
// (a node that is not clustered). Set them with SetClusterHooks before
// Start.
type ClusterHooks struct {
	// Forward is called once for each message a local client publishes
	// (after authorization), before local delivery. It returns the shared
	// subscriptions ("$share/group/filter") that another node serves for
	// this message, which the broker must then skip locally.
	Forward func(msg Message) (skipShared []string)
	// RoutesChanged is called when a filter (shared ones in their
	// "$share/group/filter" form) gains its first local subscriber
	// (added) or loses its last.
	RoutesChanged func(filter string, added bool)
	// Takeover is called when a client connects, before its session is
	// set up: the cluster disconnects the same client id on other nodes
	// and returns its session when cleanStart is false (nil if none).
	Takeover func(ctx context.Context, clientID string, cleanStart bool) (*Session, error)
}
