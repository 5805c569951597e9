// Package node wires one Roost node together: config → data dir lock →
// identity → store → broker → REST API and local control socket.
package node

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/roostmq/roost/internal/api"
	"github.com/roostmq/roost/internal/backup"
	"github.com/roostmq/roost/internal/backup/nodebackup"
	"github.com/roostmq/roost/internal/broker"
	"github.com/roostmq/roost/internal/broker/authn"
	"github.com/roostmq/roost/internal/cluster"
	"github.com/roostmq/roost/internal/config"
	"github.com/roostmq/roost/internal/metrics"
	"github.com/roostmq/roost/internal/store"
)

// SocketName is the control socket in the data dir that `roost ctl` uses.
const SocketName = "roost.sock"

// BuildInfo identifies the running binary.
type BuildInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Date    string `json:"date"`
}

// Run starts a node from a loaded config and serves until ctx ends, then
// shuts everything down in reverse order. It returns nil after a clean stop.
func Run(ctx context.Context, loaded *config.Loaded, build BuildInfo, log *slog.Logger) error {
	cfg := &loaded.Config
	dataDir := loaded.Paths.DataDir
	// backup.target first: a target without credentials stops the start
	// before anything is created.
	defTarget, err := defaultTarget(cfg)
	if err != nil {
		return err
	}

	// What the machine can refuse is checked before the node creates any
	// state (data dir, node.json, cookie, admin password, store): a start
	// that fails on a taken port or a bad certificate leaves nothing.
	var serverTLS, clientTLS *tls.Config
	if t := cfg.Cluster.TLS; t.Enable {
		if serverTLS, clientTLS, err = cluster.MutualTLS(t.CertFile, t.KeyFile, t.CACertFile, t.ServerName); err != nil {
			return err
		}
	}
	if err := checkTLSFiles(cfg); err != nil {
		return err
	}
	bound, err := bindPorts(cfg)
	if err != nil {
		// The usual cause: this node is running already.
		if inUse := dataDirInUse(dataDir); inUse != nil {
			return inUse
		}
		return err
	}
	defer bound.close()

	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir %s: %w", dataDir, err)
	}
	// The data dir holds the cookie, the control socket and hashed
	// credentials: keep it to the node's user even if it was made wider.
	if err := os.Chmod(dataDir, 0o700); err != nil {
		return fmt.Errorf("restrict data dir %s: %w", dataDir, err)
	}
	lock, err := lockDataDir(dataDir)
	if err != nil {
		return err
	}
	defer lock.release()
	mctx, stopMem := context.WithCancel(ctx)
	defer stopMem()
	go boundHeap(mctx)

	ident, created, err := loaded.Identity()
	if err != nil {
		return err
	}
	log = log.With("node", ident.Name)
	if created {
		log.Info("new node identity", "node_id", ident.NodeID, "cluster_id", ident.ClusterID, "file", filepath.Join(dataDir, config.IdentityFile))
	}
	for _, w := range loaded.Warnings {
		log.Warn(w)
	}
	cookie, err := config.EnsureCookie(dataDir, cfg.Node.Cookie)
	if err != nil {
		return err
	}

	// ident changes when this node joins or leaves a cluster (a new
	// cluster id): read it under idMu.
	var idMu sync.Mutex
	clusterID := func() string { idMu.Lock(); defer idMu.Unlock(); return ident.ClusterID }
	topts := cluster.TransportOptions{Bind: cfg.Cluster.Bind, Listener: bound.cluster, Advertise: advertiseAddr(cfg),
		Cookie: cookie, ClusterID: clusterID, ServerTLS: serverTLS, ClientTLS: clientTLS, Logger: log}
	tr, err := cluster.Listen(topts)
	if err != nil {
		return err
	}
	defer tr.Close()
	cl := cluster.New(cluster.Options{
		Transport: tr, NodeID: ident.NodeID, NodeName: ident.Name, Version: build.Version,
		ClusterID: clusterID,
		SetClusterID: func(id string) error {
			idMu.Lock()
			defer idMu.Unlock()
			next := ident
			next.ClusterID = id
			if err := config.WriteIdentity(dataDir, next); err != nil {
				return err
			}
			ident = next
			return nil
		},
		IgnoredAdmin: cfg.Dashboard.DefaultUsername,
		Seeds:        cfg.Cluster.Seeds,
		Logger:       log,
	})
	st, err := store.Open(store.Options{
		Dir:       dataDir,
		NodeID:    ident.NodeID,
		Advertise: tr.Advertise(),
		Transport: tr.RaftTransport(log),
		Bootstrap: true,
		Forward:   cl.ForwardApply,
		Logger:    log,

		SnapshotThreshold: uint64(cfg.Cluster.SnapshotThreshold),
		SnapshotInterval:  time.Duration(cfg.Cluster.SnapshotInterval),
		TrailingLogs:      uint64(cfg.Cluster.TrailingLogs),
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("close store", "err", err)
		}
	}()
	// Serve cluster calls (join, forwarded writes) while waiting for a
	// leader: the other nodes may need this one to elect it.
	cl.Start(ctx, st)
	defer cl.Close()
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = st.WaitLeader(wctx)
	cancel()
	if ctx.Err() != nil {
		return nil // stopped while starting: a clean stop all the same
	}
	if err != nil {
		return err
	}
	if _, err := api.EnsureInitialAdmin(ctx, log, st, dataDir, cfg.Dashboard.DefaultUsername, cfg.Dashboard.DefaultPassword); err != nil {
		return fmt.Errorf("create initial admin: %w", err)
	}

	// The initial admin's password file stops working when an import
	// replaces the admins: this removes it then (and at start if it
	// already happened), saying so in the log.
	go api.WatchInitialAdminPassword(ctx, st, dataDir, cfg.Dashboard.DefaultUsername, log.With("component", "api"))

	b, err := broker.New(brokerOptions(cfg, st, dataDir, bound, log))
	if err != nil {
		return err
	}
	b.SetClusterHooks(cl.AttachBroker(b))
	if err := b.Start(ctx); err != nil {
		b.Close()
		return err
	}
	defer func() {
		if err := b.Close(); err != nil {
			log.Error("close broker", "err", err)
		}
	}()
	if !cfg.Authn.Enable {
		log.Warn("authentication is disabled (authn.enable = false): any client can connect")
	}

	apiLn := bound.api
	apiAddr := apiLn.Addr().String()
	started := time.Now()
	var backups *nodebackup.Manager // set below; the status reads them
	var data *backup.Manager
	// The health of every backup and export this node runs, to any
	// target: for /metrics, the status and the backup listing.
	health := backup.NewHealth()
	srv := api.New(api.Options{
		Store:  st,
		Logger: log,
		Status: func() api.Status {
			idMu.Lock()
			defer idMu.Unlock()
			return api.Status{Node: ident.Name, NodeID: ident.NodeID, ClusterID: ident.ClusterID,
				Version: build.Version, StartedAt: started, Listeners: listenerStatus(cfg, b, apiAddr), Backups: backupStatus(backups),
				Exports: exportStatus(data), Targets: health.StatusByTarget(),
				Authn: authnStatus(cfg, b)}
		},
		Metrics: func() api.Metrics {
			m := b.Metrics()
			return api.Metrics{Connections: m.Connections, Subscriptions: m.Subscriptions,
				MessagesReceived: m.MessagesReceived, MessagesSent: m.MessagesSent, RetainedCount: m.Retained,
				MessagesDropped: m.MessagesDropped, MessagesDroppedQoS0: m.DroppedByQoS[0],
				MessagesDroppedQoS1: m.DroppedByQoS[1], MessagesDroppedQoS2: m.DroppedByQoS[2],
				InflightDropped: m.InflightDropped, QueuedBytes: m.QueuedBytes}
		},
		HashParams:      authn.HashParams{Algorithm: cfg.Authn.PasswordHash, SaltPosition: cfg.Authn.SaltPosition},
		DefaultUserKind: b.DefaultUserKind,
		TokenKey:        tokenKey(cookie),
		Cluster:         cl,
		Prometheus: metrics.Handler(metrics.Options{Broker: b.Metrics, Store: st, Backups: health,
			Version: build.Version, Commit: build.Commit, Logger: log}),
		PublicMetrics: !cfg.API.MetricsAuth,
	})
	dopts := dataOptions(loaded, st, ident.Name, clusterID, build.Version, b.WriteSessionsTo, log)
	dopts.Target, dopts.Resolve, dopts.Health = defTarget, Targets(cfg), health
	dopts.ExportInterval, dopts.ExportKeep, dopts.IsLeader = time.Duration(cfg.Export.Interval), cfg.Export.Keep, st.IsLeader
	data = backup.New(dopts)
	// Before any backup, export or upload runs: what they left when the
	// node stopped (one scheme for them all, see target.TempPrefix).
	data.RemoveStaleTemps()
	srv.RegisterData(data)
	backups = nodebackup.New(nodebackup.Options{
		Store: st, DataDir: dataDir, Dir: filepath.Join(dataDir, config.BackupDirName),
		Identity: func() config.Identity { idMu.Lock(); defer idMu.Unlock(); return ident },
		Version:  build.Version, Sessions: b.WriteSessionsTo,
		Config: func() []string { return configFiles(loaded) }, ConfigDir: configDir(loaded),
		Interval: time.Duration(cfg.Backup.Interval), Keep: cfg.Backup.Keep, Logger: log,
		Target: defTarget, Resolve: Targets(cfg), Health: health,
	})
	seedHealth(ctx, defTarget, log, backups.SeedHealth, data.SeedHealth)
	srv.RegisterBackups(backups, health)
	go backups.RunSchedule(ctx)
	go data.RunExportSchedule(ctx)
	go func() {
		// An import this node was running when it stopped left a stage
		// behind: remove it now rather than make other nodes wait.
		actx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := data.AbortOwnStages(actx); err != nil && ctx.Err() == nil {
			log.Warn("could not remove the stage of an unfinished import; the next import will", "err", err)
		}
	}()
	sockLn, err := api.ListenUnix(filepath.Join(dataDir, SocketName))
	if err != nil {
		apiLn.Close()
		return err
	}

	sctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	serve := func(ln net.Listener, local bool) {
		defer wg.Done()
		h := srv.Handler()
		if local {
			h = srv.LocalHandler()
		}
		if err := srv.Serve(sctx, ln, h); err != nil {
			errc <- err
		}
	}
	wg.Add(2)
	go serve(apiLn, false)
	go serve(sockLn, true)

	log.Info("roost node started", "version", build.Version, "data_dir", dataDir,
		"config", loaded.Paths.ConfigFile, "api", apiLn.Addr().String(), "node_id", ident.NodeID)

	select {
	case <-ctx.Done():
		log.Info("stopping node")
	case err = <-errc:
		log.Error("stopping node after an API failure", "err", err)
	}
	stop()
	wg.Wait()
	os.Remove(filepath.Join(dataDir, SocketName))
	return err
}

func authnStatus(cfg *config.Config, b *broker.Broker) *api.AuthnStatus {
	v, override := b.UserIDType()
	src := "config"
	if override {
		src = "cluster override"
	}
	return &api.AuthnStatus{Enabled: cfg.Authn.Enable, UserIDType: v, Source: src, NodeConfig: cfg.Authn.UserIDType}
}

func configDir(loaded *config.Loaded) string {
	if loaded.Paths.ConfigFile == "" {
		return ""
	}
	return filepath.Dir(loaded.Paths.ConfigFile)
}

func exportStatus(m *backup.Manager) *backup.ExportSchedule {
	if m == nil {
		return nil
	}
	st := m.ScheduleStatus()
	return &st
}

func backupStatus(m *nodebackup.Manager) *nodebackup.ScheduleStatus {
	if m == nil {
		return nil
	}
	st := m.Status()
	return &st
}

// advertiseAddr is the raft address recorded for this node.
func advertiseAddr(cfg *config.Config) string {
	if cfg.Cluster.Advertise != "" {
		return cfg.Cluster.Advertise
	}
	host, port, err := net.SplitHostPort(cfg.Cluster.Bind)
	if err != nil || host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
		if h, herr := os.Hostname(); herr == nil && h != "" {
			host = h
		}
	}
	if err != nil {
		return cfg.Cluster.Bind
	}
	return net.JoinHostPort(host, port)
}

// tokenKey derives the admin-token signing key from the cluster cookie, so
// a token issued by one node is accepted by every node of the cluster.
func tokenKey(cookie string) []byte {
	m := hmac.New(sha256.New, []byte(cookie))
	m.Write([]byte("roost api token v1"))
	return m.Sum(nil)
}
