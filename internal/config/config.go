// Package config loads a node's configuration (TOML file, ROOST_* env
// overrides, built-in defaults), finds the config file and data dir by the
// install-layout rules, and keeps the node's identity (node.json).
package config

import (
	"fmt"
	"sort"
	"time"
)

// Config is a node's whole configuration. TOML keys are dotted paths
// (`node.data_dir`); each is overridable by an env var built from its path
// (`ROOST_NODE__DATA_DIR`). Field tags are the key names: never rename one,
// operators' files and scripts depend on them.
type Config struct {
	Node      NodeConfig      `toml:"node"`
	Listeners ListenersConfig `toml:"listeners"`
	API       APIConfig       `toml:"api"`
	Dashboard DashboardConfig `toml:"dashboard"`
	Cluster   ClusterConfig   `toml:"cluster"`
	Authn     AuthnConfig     `toml:"authn"`
	Authz     AuthzConfig     `toml:"authz"`
	MQTT      MQTTConfig      `toml:"mqtt"`
	Log       LogConfig       `toml:"log"`
	Backup    BackupConfig    `toml:"backup"`
	Export    ExportConfig    `toml:"export"`
}

type NodeConfig struct {
	Name    string `toml:"name"`     // default "roost@<hostname>"
	DataDir string `toml:"data_dir"` // default: install-layout rule (see paths.go)
	Cookie  string `toml:"cookie"`   // shared cluster secret; default: generated and kept in <data_dir>/cookie
}

// ListenersConfig holds named listeners per transport, EMQX style:
// listeners.tcp.default.bind, listeners.ws.default.bind, listeners.ssl.default.*.
type ListenersConfig struct {
	TCP map[string]ListenerConfig `toml:"tcp"`
	WS  map[string]ListenerConfig `toml:"ws"`
	SSL map[string]ListenerConfig `toml:"ssl"`
}

type ListenerConfig struct {
	Enable     *bool  `toml:"enable"` // nil = on (tcp, ws) / on when any of bind, certfile, keyfile, cacertfile is set (ssl); Load sets it explicitly
	Bind       string `toml:"bind"`
	CertFile   string `toml:"certfile"`
	KeyFile    string `toml:"keyfile"`
	CACertFile string `toml:"cacertfile"` // optional: verify client certificates against it
}

// Enabled reports whether the listener should run. Exact for every
// transport after Load (which resolves an unset ssl enable); before that,
// use ListenersConfig.Active.
func (l ListenerConfig) Enabled() bool { return l.Enable == nil || *l.Enable }

// configured applies the transport's rule for an unset enable.
func (l ListenerConfig) configured(transport string) bool {
	if l.Enable != nil {
		return *l.Enable
	}
	if transport != "ssl" {
		return true
	}
	return l.Bind != "" || l.CertFile != "" || l.KeyFile != "" || l.CACertFile != ""
}

// Listener is one listener that should run.
type Listener struct {
	Transport string // "tcp" | "ws" | "ssl"
	Name      string // "default", or the operator's name (listeners.tcp.<name>)
	ListenerConfig
}

// Active lists the listeners that should run, by transport then name.
func (c ListenersConfig) Active() []Listener {
	var out []Listener
	for _, t := range []struct {
		name string
		m    map[string]ListenerConfig
	}{{"tcp", c.TCP}, {"ws", c.WS}, {"ssl", c.SSL}} {
		names := make([]string, 0, len(t.m))
		for n := range t.m {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if l := t.m[n]; l.configured(t.name) {
				out = append(out, Listener{Transport: t.name, Name: n, ListenerConfig: l})
			}
		}
	}
	return out
}

type APIConfig struct {
	Bind string `toml:"bind"` // default 0.0.0.0:18083
	// MetricsAuth makes GET /metrics ask for credentials like the rest of
	// the API (default true); false lets anyone who reaches the port
	// scrape it, for a trusted network.
	MetricsAuth bool `toml:"metrics_auth"`
}

type DashboardConfig struct {
	DefaultUsername string `toml:"default_username"` // default "admin"
	DefaultPassword string `toml:"default_password"` // empty: random, written to <data_dir>/initial-admin-password
}

type ClusterConfig struct {
	Bind      string           `toml:"bind"`      // default 0.0.0.0:4370
	Advertise string           `toml:"advertise"` // address other nodes dial; default: bind with the host's address
	Seeds     []string         `toml:"seeds"`     // host:port cluster addresses to form or join a cluster with at start
	TLS       ClusterTLSConfig `toml:"tls"`
	// Raft log compaction: a snapshot is taken once SnapshotThreshold
	// entries have been written since the last one (checked every
	// SnapshotInterval), keeping TrailingLogs entries for followers that
	// lag a little; one that lags more catches up from the snapshot.
	SnapshotThreshold int      `toml:"snapshot_threshold"` // default 8192
	SnapshotInterval  Duration `toml:"snapshot_interval"`  // default 2m
	TrailingLogs      int      `toml:"trailing_logs"`      // default 10240
}

// ClusterTLSConfig secures inter-node traffic with mutual TLS: every node
// presents certfile and accepts only peers whose certificate cacertfile
// signed (on top of the node.cookie handshake).
type ClusterTLSConfig struct {
	Enable     bool   `toml:"enable"`
	CertFile   string `toml:"certfile"`
	KeyFile    string `toml:"keyfile"`
	CACertFile string `toml:"cacertfile"`
	ServerName string `toml:"server_name"` // name to verify in peers' certificates (default: the peer's host)
}

type AuthnConfig struct {
	Enable       bool   `toml:"enable"`        // default true
	PasswordHash string `toml:"password_hash"` // algorithm for new users: plain | sha256 | sha512 | pbkdf2 | bcrypt (default sha256)
	SaltPosition string `toml:"salt_position"` // prefix | suffix | disable (default prefix)
	UserIDType   string `toml:"user_id_type"`  // username | clientid | both (default username)
}

type AuthzConfig struct {
	NoMatch string `toml:"no_match"` // allow | deny (default allow)
}

type MQTTConfig struct {
	MaxPendingWrites    int      `toml:"max_pending_writes"`    // per-connection outbound channel, packets (default 1024)
	MaxQueuedBytes      int      `toml:"max_queued_bytes"`      // per-connection write queue, bytes (default 4 MiB)
	MaxInflight         int      `toml:"max_inflight"`          // receive maximum (default 1024)
	MaxSessionExpiry    Duration `toml:"max_session_expiry"`    // cap on MQTT 5 session expiry (default 2h)
	SessionExpiryV3     Duration `toml:"session_expiry_v3"`     // for clean_session=false 3.1.1 clients (default 2h)
	MaxPacketSize       int      `toml:"max_packet_size"`       // bytes (default 1 MiB)
	RetainedBatchWindow Duration `toml:"retained_batch_window"` // max wait to batch retained writes (default 2ms)
}

type LogConfig struct {
	Level string `toml:"level"` // debug | info | warn | error (default info)
	File  string `toml:"file"`  // empty: standard error
}

type BackupConfig struct {
	Interval Duration `toml:"interval"` // scheduled node backups; 0 = off (default)
	Keep     int      `toml:"keep"`     // scheduled backups kept (default 7)
	// Target is where node backups and data exports are written: ""
	// (default) <data_dir>/backup; an absolute directory path; or
	// s3://bucket/prefix, reached with the S3 keys.
	Target string         `toml:"target"`
	S3     BackupS3Config `toml:"s3"`
}

// BackupS3Config says how to reach the S3-compatible service of an
// s3:// backup.target. The secret is never logged or shown.
type BackupS3Config struct {
	Endpoint            string `toml:"endpoint"`               // https://host[:port] or http://host[:port] (default https://s3.amazonaws.com)
	Region              string `toml:"region"`                 // "" asks the service
	AccessKeyID         string `toml:"access_key_id"`          // unset: $AWS_ACCESS_KEY_ID
	SecretAccessKey     string `toml:"secret_access_key"`      // unset: secret_access_key_file, then $AWS_SECRET_ACCESS_KEY
	SecretAccessKeyFile string `toml:"secret_access_key_file"` // its first line is the secret
	PathStyle           bool   `toml:"path_style"`             // address buckets as endpoint/bucket
	CAFile              string `toml:"ca_file"`                // PEM bundle to verify the endpoint with
}

// ExportConfig schedules data exports (one per interval in the cluster,
// made by the raft leader) to backup.target.
type ExportConfig struct {
	Interval Duration `toml:"interval"` // 0 = off (default)
	Keep     int      `toml:"keep"`     // scheduled exports kept (default 7)
}

// Duration is a time.Duration written as a Go duration string ("1h30m").
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("expected a duration such as \"30s\" or \"1h\", got %q", string(b))
	}
	*d = Duration(v)
	return nil
}
