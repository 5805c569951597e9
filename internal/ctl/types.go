package ctl

import (
	"encoding/json"
	"time"

	"github.com/roostmq/roost/internal/backup/nodebackup"
)

// These mirror the JSON of internal/api. Unknown fields in answers are
// ignored, so a newer node still talks to an older CLI.

// Meta describes one page of a list.
type Meta struct {
	Page    int  `json:"page"`
	Limit   int  `json:"limit"`
	Count   int  `json:"count"`
	HasNext bool `json:"hasnext"`
}

// Status describes a node.
type Status struct {
	Node          string     `json:"node"`
	NodeID        string     `json:"node_id"`
	ClusterID     string     `json:"cluster_id"`
	Version       string     `json:"version"`
	StartedAt     time.Time  `json:"started_at,omitzero"`
	Uptime        string     `json:"uptime,omitempty"`
	UptimeSeconds int64      `json:"uptime_seconds"`
	Raft          RaftStatus `json:"raft"`
	Listeners     []Listener `json:"listeners"`
	// Backups is the state of the scheduled node backups.
	Backups *nodebackup.ScheduleStatus `json:"backups,omitempty"`
	// Exports is the state of the scheduled data exports.
	Exports *ExportSchedule `json:"exports,omitempty"`
	// Targets: what was written to each backup target.
	Targets []TargetStatus `json:"targets,omitempty"`
	// Authn is the node's authentication setting in force.
	Authn *AuthnStatus `json:"authn,omitempty"`
}

// TargetStatus is the health of one kind (node_backup, data_export)
// written to one target (internal/backup.TargetStatus): target "local"
// is the node's backup dir.
type TargetStatus struct {
	Kind           string    `json:"kind"`
	Target         string    `json:"target"`
	Interval       string    `json:"interval,omitempty"` // of the schedule there; "" none
	LastSuccess    time.Time `json:"last_success,omitzero"`
	LastName       string    `json:"last_name,omitempty"`
	LastSize       int64     `json:"last_size,omitempty"`
	LastDurationMS int64     `json:"last_duration_ms,omitempty"`
	LastFailure    time.Time `json:"last_failure,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
	Successes      int64     `json:"successes"`
	Failures       int64     `json:"failures"`
}

// ExportSchedule is the state of the scheduled exports
// (internal/backup.ExportSchedule).
type ExportSchedule struct {
	Enabled     bool      `json:"enabled"`
	Interval    string    `json:"interval"`
	Keep        int       `json:"keep"`
	Target      string    `json:"target"`
	NextAt      time.Time `json:"next_at,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastFile    string    `json:"last_file,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	LastSkipped time.Time `json:"last_skipped,omitzero"`
}

// AuthnStatus is how a node authenticates MQTT clients now.
type AuthnStatus struct {
	Enabled    bool   `json:"enabled"`
	UserIDType string `json:"user_id_type"`
	Source     string `json:"source"` // config | cluster override
	NodeConfig string `json:"node_config"`
}

// ConfigOverride is a cluster config override (the config table).
type ConfigOverride struct {
	Key       string          `json:"key"`
	Value     json.RawMessage `json:"value"`
	UpdatedAt time.Time       `json:"updated_at,omitzero"`
	Followed  bool            `json:"followed"`
}

// RaftStatus is a node's view of the replicated store.
type RaftStatus struct {
	State        string `json:"state"`
	Leader       string `json:"leader,omitempty"`
	LeaderID     string `json:"leader_id,omitempty"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	LastLogIndex uint64 `json:"last_log_index"`
	Voters       int    `json:"voters"`
}

// Listener is one of a node's network listeners.
type Listener struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Bind    string `json:"bind"`
	Running bool   `json:"running"`
}

// Metrics are a node's broker counters.
type Metrics struct {
	Connections      int64 `json:"connections"`
	Subscriptions    int64 `json:"subscriptions"`
	MessagesReceived int64 `json:"messages_received"`
	MessagesSent     int64 `json:"messages_sent"`
	RetainedCount    int64 `json:"retained_count"`
	// Not delivered because a client's queue was full.
	MessagesDropped     int64 `json:"messages_dropped"`
	MessagesDroppedQoS0 int64 `json:"messages_dropped_qos0"`
	MessagesDroppedQoS1 int64 `json:"messages_dropped_qos1"`
	MessagesDroppedQoS2 int64 `json:"messages_dropped_qos2"`
	InflightDropped     int64 `json:"inflight_dropped"`
	QueuedBytes         int64 `json:"queued_bytes"`
}

// TableDigest identifies one table's content.
type TableDigest struct {
	Table  string `json:"table"`
	Count  int    `json:"count"`
	SHA256 string `json:"sha256"`
}

// Digest identifies the replicated data as of a raft index.
type Digest struct {
	Index  uint64        `json:"index"`
	Tables []TableDigest `json:"tables"`
}

// User is an MQTT credential (without its hash).
type User struct {
	Kind        string    `json:"kind"`
	UserID      string    `json:"user_id"`
	IsSuperuser bool      `json:"is_superuser"`
	Algorithm   string    `json:"algorithm"`
	CreatedAt   time.Time `json:"created_at"`
}

// UserInput creates a user; an empty Kind means the node's default.
type UserInput struct {
	UserID      string `json:"user_id"`
	Password    string `json:"password"`
	IsSuperuser bool   `json:"is_superuser"`
	Kind        string `json:"kind,omitempty"`
}

// UserUpdate changes the fields that are set.
type UserUpdate struct {
	Password    *string `json:"password,omitempty"`
	IsSuperuser *bool   `json:"is_superuser,omitempty"`
}

// ACLInput creates an ACL rule.
type ACLInput struct {
	Kind       string `json:"kind"`
	Value      string `json:"value,omitempty"`
	Topic      string `json:"topic"`
	Action     string `json:"action"`
	Permission string `json:"permission"`
}

// ACLRule is a stored ACL rule.
type ACLRule struct {
	ID         uint64    `json:"id"`
	Kind       string    `json:"kind"`
	Value      string    `json:"value,omitempty"`
	Topic      string    `json:"topic"`
	Action     string    `json:"action"`
	Permission string    `json:"permission"`
	CreatedAt  time.Time `json:"created_at"`
}

// BanInput creates a ban; Until is an RFC 3339 time or a duration.
type BanInput struct {
	Kind   string `json:"kind"`
	Value  string `json:"value"`
	Reason string `json:"reason,omitempty"`
	Until  string `json:"until,omitempty"`
}

// Ban is a stored ban.
type Ban struct {
	Kind    string    `json:"kind"`
	Value   string    `json:"value"`
	Reason  string    `json:"reason,omitempty"`
	By      string    `json:"by,omitempty"`
	At      time.Time `json:"at"`
	Until   time.Time `json:"until,omitzero"`
	Expired bool      `json:"expired"`
}

// RetainedSummary is a retained message without its payload.
type RetainedSummary struct {
	Topic         string    `json:"topic"`
	QoS           byte      `json:"qos"`
	PayloadSize   int       `json:"payload_size"`
	From          string    `json:"from,omitempty"`
	Created       time.Time `json:"created"`
	MessageExpiry uint32    `json:"message_expiry,omitempty"`
	Expired       bool      `json:"expired"`
}

// APIKeyInput creates an API key; ExpiresAt is an RFC 3339 time or a
// duration.
type APIKeyInput struct {
	Name      string `json:"name"`
	Desc      string `json:"desc,omitempty"`
	ExpiresAt string `json:"expires_at,omitempty"`
}

// APIKey is a stored API key (without its secret).
type APIKey struct {
	Name      string    `json:"name"`
	Desc      string    `json:"desc,omitempty"`
	Enabled   bool      `json:"enabled"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Expired   bool      `json:"expired"`
}

// APIKeyCreated is a new key with its secret, shown this once.
type APIKeyCreated struct {
	APIKey
	Secret string `json:"secret"`
}
