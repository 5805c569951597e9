package config

import (
	"os"
	"strings"
	"time"
)

// Default ports, EMQX's (DESIGN §4) so operators feel at home.
const (
	DefaultTCPBind     = "0.0.0.0:1883"
	DefaultSSLBind     = "0.0.0.0:8883"
	DefaultWSBind      = "0.0.0.0:8083"
	DefaultAPIBind     = "0.0.0.0:18083"
	DefaultClusterBind = "0.0.0.0:4370"
)

// Default returns the built-in configuration: what a node runs with when no
// config file and no ROOST_* variable says otherwise. Node.DataDir is left
// empty; Load fills it by the install-layout rules (paths.go).
func Default() Config {
	return Config{
		Node: NodeConfig{Name: "roost@" + shortHostname()},
		Listeners: ListenersConfig{
			TCP: map[string]ListenerConfig{"default": {Bind: DefaultTCPBind}},
			WS:  map[string]ListenerConfig{"default": {Bind: DefaultWSBind}},
			SSL: map[string]ListenerConfig{},
		},
		API:       APIConfig{Bind: DefaultAPIBind, MetricsAuth: true},
		Dashboard: DashboardConfig{DefaultUsername: "admin"},
		Cluster: ClusterConfig{Bind: DefaultClusterBind, SnapshotThreshold: 8192,
			SnapshotInterval: Duration(2 * time.Minute), TrailingLogs: 10240},
		Authn: AuthnConfig{
			Enable:       true,
			PasswordHash: "sha256",
			SaltPosition: "prefix",
			UserIDType:   "username",
		},
		Authz: AuthzConfig{NoMatch: "allow"},
		MQTT: MQTTConfig{
			MaxPendingWrites:    1024,
			MaxQueuedBytes:      4 << 20,
			MaxInflight:         1024,
			MaxSessionExpiry:    Duration(2 * time.Hour),
			SessionExpiryV3:     Duration(2 * time.Hour),
			MaxPacketSize:       1 << 20,
			RetainedBatchWindow: Duration(2 * time.Millisecond),
		},
		Log:    LogConfig{Level: "info"},
		Backup: BackupConfig{Keep: 7},
		Export: ExportConfig{Keep: 7},
	}
}

// shortHostname is the host name up to its first dot, as Erlang's short
// names are; "localhost" when the system has none.
func shortHostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "localhost"
	}
	h, _, _ = strings.Cut(h, ".")
	if h == "" {
		return "localhost"
	}
	return h
}
