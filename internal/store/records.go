package store

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// Table names. Each is one bbolt bucket, replicated through raft, and one
// section of a logical export. The names are part of the export format:
// never rename one.
const (
	TableUsers    = "users"
	TableACL      = "acl"
	TableBanned   = "banned"
	TableRetained = "retained"
	TableAPIKeys  = "api_keys"
	TableAdmins   = "admins"
	TableConfig   = "config"
)

// Tables lists every replicated table in a stable order (export order).
var Tables = []string{TableUsers, TableACL, TableBanned, TableRetained, TableAPIKeys, TableAdmins, TableConfig}

// TableMembers is internal: the cluster's nodes (node id → name and
// address), so members can be named even when they are down. It is
// replicated but belongs to one cluster, so it is neither exported nor
// part of the data digest.
const TableMembers = "members"

// Member is one node of the cluster. Key: the node id.
type Member struct {
	V        int       `json:"v"`
	NodeID   string    `json:"node_id"`
	Name     string    `json:"name"`
	Address  string    `json:"address"` // cluster address (raft and RPC)
	JoinedAt time.Time `json:"joined_at"`
}

// RecordVersion is the version written into every record ("v"). Readers
// accept every version up to it, so records written by older Roosts stay
// readable after an upgrade.
const RecordVersion = 1

// Principal kinds shared by users, ACL rules and bans.
const (
	KindUsername = "username"
	KindClientID = "clientid"
	KindAll      = "all"      // ACL rules only
	KindPeerhost = "peerhost" // bans only
)

// User is one MQTT client credential of the built-in authentication
// database. Key: "<kind>:<id>" (see UserKey).
type User struct {
	V            int       `json:"v"`
	Kind         string    `json:"kind"` // username | clientid
	ID           string    `json:"id"`
	PasswordHash string    `json:"password_hash"` // lowercase hex (sha*, pbkdf2) or the bcrypt string
	Salt         string    `json:"salt,omitempty"`
	Algorithm    string    `json:"algorithm"`               // plain | sha256 | sha512 | pbkdf2 | bcrypt
	SaltPosition string    `json:"salt_position,omitempty"` // prefix | suffix | disable (sha*/plain only)
	MacFun       string    `json:"mac_fun,omitempty"`       // pbkdf2: sha256 | sha512
	Iterations   int       `json:"iterations,omitempty"`    // pbkdf2
	DKLength     int       `json:"dk_length,omitempty"`     // pbkdf2, bytes; 0 = the mac's size
	Superuser    bool      `json:"superuser"`
	CreatedAt    time.Time `json:"created_at"`
}

// UserKey is the users-table key of a credential.
func UserKey(kind, id string) string { return kind + ":" + id }

// ACLRule is one authorization rule. Rules are evaluated in ID order and
// the first that matches decides. Key: ACLKey(ID).
type ACLRule struct {
	V          int       `json:"v"`
	ID         uint64    `json:"id"`
	Kind       string    `json:"kind"`            // username | clientid | all
	Value      string    `json:"value,omitempty"` // empty for kind all
	Topic      string    `json:"topic"`           // filter; "eq t" literal; ${username} / ${clientid} placeholders
	Action     string    `json:"action"`          // publish | subscribe | all
	Permission string    `json:"permission"`      // allow | deny
	CreatedAt  time.Time `json:"created_at"`
}

// ACLKey formats a rule id as a table key whose byte order is the rule order.
func ACLKey(id uint64) string { return fmt.Sprintf("%016x", id) }

// Ban refuses clients at CONNECT. Key: "<kind>:<value>" (see BanKey).
type Ban struct {
	V      int       `json:"v"`
	Kind   string    `json:"kind"`  // clientid | username | peerhost
	Value  string    `json:"value"` // peerhost: an IP or a CIDR
	Reason string    `json:"reason,omitempty"`
	By     string    `json:"by,omitempty"`
	At     time.Time `json:"at"`
	Until  time.Time `json:"until,omitzero"` // zero: never expires
}

// BanKey is the banned-table key of a ban.
func BanKey(kind, value string) string { return kind + ":" + value }

// Expired reports whether the ban no longer applies at now.
func (b *Ban) Expired(now time.Time) bool { return !b.Until.IsZero() && !now.Before(b.Until) }

// UserProperty is an MQTT 5 user property; order and duplicates matter.
type UserProperty struct {
	Key string `json:"key"`
	Val string `json:"val"`
}

// Retained is one retained message. Key: the topic name.
type Retained struct {
	V               int            `json:"v"`
	Topic           string         `json:"topic"`
	Payload         []byte         `json:"payload"` // base64 in JSON
	QoS             byte           `json:"qos"`
	PayloadFormat   *byte          `json:"payload_format,omitempty"`
	MessageExpiry   uint32         `json:"message_expiry,omitempty"` // seconds from Created; 0 = never
	ContentType     string         `json:"content_type,omitempty"`
	ResponseTopic   string         `json:"response_topic,omitempty"`
	CorrelationData []byte         `json:"correlation_data,omitempty"`
	UserProperties  []UserProperty `json:"user_properties,omitempty"`
	From            string         `json:"from,omitempty"` // publisher client id
	Created         time.Time      `json:"created"`
}

// Expired reports whether the message's MQTT 5 expiry has passed at now.
func (r *Retained) Expired(now time.Time) bool {
	return r.MessageExpiry > 0 && !now.Before(r.Created.Add(time.Duration(r.MessageExpiry)*time.Second))
}

// APIKey lets a program call the REST API with HTTP basic auth
// (name:secret). Only a salted hash of the secret is kept. Key: the name.
type APIKey struct {
	V          int       `json:"v"`
	Name       string    `json:"name"`
	SecretHash string    `json:"secret_hash"` // hex sha256(salt || secret)
	Salt       string    `json:"salt"`        // hex
	Enabled    bool      `json:"enabled"`
	Desc       string    `json:"desc,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
}

// Admin is a dashboard / REST administrator who logs in with a password.
// Key: the username.
type Admin struct {
	V        int    `json:"v"`
	Username string `json:"username"`
	// PasswordHash is bcrypt, or "$emqx4-md5$…" for a dashboard user
	// imported from EMQX 4 who has not logged in since (the first login
	// replaces it with bcrypt: internal/broker/authn VerifyAdmin).
	PasswordHash string    `json:"password_hash"`
	Role         string    `json:"role"` // administrator | viewer
	Desc         string    `json:"desc,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	// UpgradedFrom identifies the imported EMQX 4 hash that PasswordHash
	// replaced at the first login (authn.LegacyHashPrint): importing the
	// same file again leaves the admin unchanged.
	UpgradedFrom string `json:"upgraded_from,omitempty"`
}

// ConfigOverride is a cluster-wide config value set at run time, which
// takes precedence over the node's config file. Key: the dotted key.
type ConfigOverride struct {
	V         int             `json:"v"`
	Key       string          `json:"key"`
	Value     json.RawMessage `json:"value"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// userJSON is User's JSON form: a salt that is not valid UTF-8 (EMQX and
// Mosquitto use random binary salts) goes into salt_b64, base64-encoded,
// since JSON strings cannot carry arbitrary bytes.
type userJSON struct {
	userFields
	Salt    string `json:"salt,omitempty"`
	SaltB64 string `json:"salt_b64,omitempty"`
}

type userFields User

// MarshalJSON keeps binary salts intact (see userJSON).
func (u User) MarshalJSON() ([]byte, error) {
	j := userJSON{userFields: userFields(u)}
	if utf8.ValidString(u.Salt) {
		j.Salt = u.Salt
	} else {
		j.SaltB64 = base64.StdEncoding.EncodeToString([]byte(u.Salt))
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads both salt spellings.
func (u *User) UnmarshalJSON(b []byte) error {
	var j userJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*u = User(j.userFields)
	u.Salt = j.Salt
	if j.SaltB64 != "" {
		raw, err := base64.StdEncoding.DecodeString(j.SaltB64)
		if err != nil {
			return fmt.Errorf("salt_b64: %w", err)
		}
		u.Salt = string(raw)
	}
	return nil
}
