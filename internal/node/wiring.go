package node

import (
	"log/slog"
	"path/filepath"
	"time"

	"github.com/roostmq/roost/internal/api"
	"github.com/roostmq/roost/internal/broker"
	"github.com/roostmq/roost/internal/config"
	"github.com/roostmq/roost/internal/store"
)

// SessionsFile is the node-local persistent-session database in the data dir.
const SessionsFile = "sessions.db"

func brokerOptions(cfg *config.Config, st *store.Store, dataDir string, p *ports, log *slog.Logger) broker.Options {
	return broker.Options{
		Store:               st,
		Listeners:           brokerListeners(cfg, p),
		SessionsPath:        filepath.Join(dataDir, SessionsFile),
		AuthnEnable:         cfg.Authn.Enable,
		AuthnUserIDType:     cfg.Authn.UserIDType,
		AuthzNoMatch:        cfg.Authz.NoMatch,
		MaxPendingWrites:    cfg.MQTT.MaxPendingWrites,
		MaxQueuedBytes:      cfg.MQTT.MaxQueuedBytes,
		ReceiveMaximum:      cfg.MQTT.MaxInflight,
		MaxSessionExpiry:    time.Duration(cfg.MQTT.MaxSessionExpiry),
		SessionExpiryV3:     time.Duration(cfg.MQTT.SessionExpiryV3),
		MaxPacketSize:       cfg.MQTT.MaxPacketSize,
		RetainedBatchWindow: time.Duration(cfg.MQTT.RetainedBatchWindow),
		Logger:              log,
	}
}

// listenerStatus lists the MQTT listeners and the API with their bound
// addresses (the cluster port is in GET /api/v1/cluster).
func listenerStatus(cfg *config.Config, b *broker.Broker, apiAddr string) []api.Listener {
	addrs := b.Addrs()
	var out []api.Listener
	for _, l := range cfg.Listeners.Active() {
		name := l.Transport + ":" + l.Name
		st := api.Listener{Name: name, Type: l.Transport, Bind: l.Bind}
		if a, ok := addrs[name]; ok {
			st.Bind, st.Running = a.String(), true
		}
		out = append(out, st)
	}
	out = append(out, api.Listener{Name: "api", Type: "api", Bind: apiAddr, Running: true})
	return out
}
