package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/roostmq/roost/internal/backup"
	"github.com/roostmq/roost/internal/backup/nodebackup"
	"github.com/roostmq/roost/internal/store"
)

// Status describes one node: GET /api/v1/status.
type Status struct {
	Node      string    `json:"node"`       // node.name
	NodeID    string    `json:"node_id"`    // from node.json
	ClusterID string    `json:"cluster_id"` // from node.json
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at,omitzero"`
	// Uptime is filled by the API from StartedAt.
	Uptime        string     `json:"uptime,omitempty"`
	UptimeSeconds int64      `json:"uptime_seconds"`
	Raft          RaftStatus `json:"raft"`
	Listeners     []Listener `json:"listeners"`
	// Backups is the state of the scheduled node backups.
	Backups *nodebackup.ScheduleStatus `json:"backups,omitempty"`
	// Exports is the state of the scheduled data exports.
	Exports *backup.ExportSchedule `json:"exports,omitempty"`
	// Targets is the health of the backups and exports written to each
	// target: last success, last failure and why, duration, size (as
	// /metrics shows it).
	Targets []backup.TargetStatus `json:"targets,omitempty"`
	// Authn is how the node authenticates MQTT clients now.
	Authn *AuthnStatus `json:"authn,omitempty"`
}

// AuthnStatus is the node's authentication setting in force.
type AuthnStatus struct {
	Enabled bool `json:"enabled"`
	// UserIDType is what a CONNECT is authenticated by: username,
	// clientid or both.
	UserIDType string `json:"user_id_type"`
	// Source says where UserIDType comes from: "config" (the node's
	// authn.user_id_type) or "cluster override" (the config table's
	// authn.user_id_type, which every node follows; remove it with
	// DELETE /api/v1/config/overrides/authn.user_id_type).
	Source string `json:"source"`
	// NodeConfig is the node's own authn.user_id_type.
	NodeConfig string `json:"node_config"`
}

// RaftStatus is the node's view of the replicated store.
type RaftStatus struct {
	State        string `json:"state"` // Leader | Follower | Candidate | Shutdown
	Leader       string `json:"leader,omitempty"`
	LeaderID     string `json:"leader_id,omitempty"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	LastLogIndex uint64 `json:"last_log_index"`
	Voters       int    `json:"voters"`
}

// Listener is one of the node's network listeners.
type Listener struct {
	Name    string `json:"name"` // "tcp:default"
	Type    string `json:"type"` // tcp | ssl | ws | api | cluster
	Bind    string `json:"bind"`
	Running bool   `json:"running"`
}

// Metrics are the broker's counters: GET /api/v1/metrics.
type Metrics struct {
	Connections      int64 `json:"connections"`
	Subscriptions    int64 `json:"subscriptions"`
	MessagesReceived int64 `json:"messages_received"`
	MessagesSent     int64 `json:"messages_sent"`
	RetainedCount    int64 `json:"retained_count"`
	// Messages not delivered because a client's queue was full, in all
	// and by the QoS they would have been delivered with.
	MessagesDropped     int64 `json:"messages_dropped"`
	MessagesDroppedQoS0 int64 `json:"messages_dropped_qos0"`
	MessagesDroppedQoS1 int64 `json:"messages_dropped_qos1"`
	MessagesDroppedQoS2 int64 `json:"messages_dropped_qos2"`
	// QoS 1/2 messages not queued for a session that held its maximum of
	// them (or had no packet id left).
	InflightDropped int64 `json:"inflight_dropped"`
	// Memory held by the clients' write queues (a gauge).
	QueuedBytes int64 `json:"queued_bytes"`
}

// Digest identifies the replicated data exactly: GET /api/v1/data/digest.
// Two nodes with equal table digests hold the same data.
type Digest struct {
	Index  uint64              `json:"index"`
	Tables []store.TableDigest `json:"tables"`
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) error {
	var st Status
	if s.opts.Status != nil {
		st = s.opts.Status()
	}
	if !st.StartedAt.IsZero() {
		up := time.Since(st.StartedAt)
		st.UptimeSeconds = int64(up.Seconds())
		st.Uptime = up.Truncate(time.Second).String()
	}
	if st.Raft.State == "" {
		st.Raft = s.raftStatus()
	}
	if st.Listeners == nil {
		st.Listeners = []Listener{}
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) raftStatus() RaftStatus {
	rf := s.st.Raft()
	addr, id := rf.LeaderWithID()
	stats := rf.Stats()
	num := func(k string) uint64 { n, _ := strconv.ParseUint(stats[k], 10, 64); return n }
	rs := RaftStatus{State: rf.State().String(), Leader: string(addr), LeaderID: string(id),
		Term: num("term"), CommitIndex: num("commit_index"), AppliedIndex: s.st.AppliedIndex(),
		LastLogIndex: num("last_log_index")}
	if f := rf.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			if srv.Suffrage == raft.Voter {
				rs.Voters++
			}
		}
	}
	return rs
}

func (s *Server) getMetrics(w http.ResponseWriter, r *http.Request) error {
	var m Metrics
	if s.opts.Metrics != nil {
		m = s.opts.Metrics()
	} else {
		_ = s.st.View(func(tx *store.Tx) error {
			m.RetainedCount = int64(tx.Count(store.TableRetained))
			return nil
		})
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

func (s *Server) getDigest(w http.ResponseWriter, r *http.Request) error {
	idx, tables, err := s.st.Digest()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Digest{Index: idx, Tables: tables})
	return nil
}
