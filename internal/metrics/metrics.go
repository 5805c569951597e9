// Package metrics exposes a node's health in the Prometheus text format
// (GET /metrics, docs/monitoring.md): broker counters, raft and store
// state, and the health of every kind of backup per target. Collectors
// read the current values at scrape time from cheap accessors (atomic
// counters, raft's own getters): a scrape never scans the store.
package metrics

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/roostmq/roost/internal/backup"
	"github.com/roostmq/roost/internal/broker"
	"github.com/roostmq/roost/internal/store"
)

// BackupStatus reports the health of every (kind, target) of backup:
// backup.Health does, for every target it is fed with.
type BackupStatus interface {
	StatusByTarget() []backup.TargetStatus
}

// Options say where the metrics come from. A nil source's metrics are
// left out.
type Options struct {
	Broker  func() broker.Metrics
	Store   *store.Store
	Backups BackupStatus
	Version string // roost_build_info
	Commit  string
	Logger  *slog.Logger
}

// Handler serves the metrics of one node from a registry of its own (no
// global state: two nodes in one process, as tests run them, do not mix).
func Handler(opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return promhttp.HandlerFor(NewRegistry(opts), promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError, // a failing collector costs its metrics, not the scrape
	})
}

// NewRegistry registers the node's collectors and Go's and the process's.
func NewRegistry(opts Options) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "roost_build_info",
			Help:        "The running roost: version and commit as labels, value 1.",
			ConstLabels: prometheus.Labels{"version": opts.Version, "commit": opts.Commit}},
			func() float64 { return 1 }),
	)
	if opts.Broker != nil {
		reg.MustRegister(brokerCollector{opts.Broker})
	}
	if opts.Store != nil {
		reg.MustRegister(storeCollector{opts.Store})
	}
	if opts.Backups != nil {
		reg.MustRegister(backupCollector{opts.Backups})
	}
	return reg
}

// ---------------------------------------------------------------- broker

var (
	brokerConnections   = desc("roost_broker_connections", "MQTT clients connected to this node.")
	brokerSessions      = desc("roost_broker_sessions", "MQTT sessions on this node, connected or not.")
	brokerSubscriptions = desc("roost_broker_subscriptions", "Subscriptions of the sessions on this node.")
	brokerInflight      = desc("roost_broker_inflight_messages", "QoS 1 and 2 messages in flight to this node's clients or queued for them.")
	brokerRetained      = desc("roost_broker_retained_messages", "Retained messages in the replicated store (the same on every node).")
	brokerReceived      = desc("roost_broker_messages_received_total", "PUBLISH packets received from clients of this node, by their QoS.", "qos")
	brokerSent          = desc("roost_broker_messages_sent_total", "PUBLISH packets sent to clients of this node, by their QoS (retries included).", "qos")
	brokerDropped       = desc("roost_broker_messages_dropped_total", "Messages not delivered to a client because its outbound channel or its write queue (mqtt.max_queued_bytes) was full, by the QoS they would have been delivered with.", "qos")
	brokerQueuedBytes   = desc("roost_broker_queued_bytes", "Memory held by the clients' write queues: bytes written to clients and not yet taken by their sockets.")
	brokerInflightDrop  = desc("roost_broker_inflight_dropped_total", "QoS 1 and 2 messages not sent because a client's inflight quota or packet ids ran out.")
	brokerPacketsIn     = desc("roost_broker_packets_received_total", "MQTT packets of any type received from clients.")
	brokerPacketsOut    = desc("roost_broker_packets_sent_total", "MQTT packets of any type sent to clients.")
	brokerBytesIn       = desc("roost_broker_received_bytes_total", "Bytes received from MQTT clients.")
	brokerBytesOut      = desc("roost_broker_sent_bytes_total", "Bytes sent to MQTT clients.")
)

type brokerCollector struct{ metrics func() broker.Metrics }

func (c brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{brokerConnections, brokerSessions, brokerSubscriptions, brokerInflight,
		brokerRetained, brokerReceived, brokerSent, brokerDropped, brokerQueuedBytes, brokerInflightDrop, brokerPacketsIn,
		brokerPacketsOut, brokerBytesIn, brokerBytesOut} {
		ch <- d
	}
}

func (c brokerCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.metrics()
	gauge(ch, brokerConnections, float64(m.Connections))
	gauge(ch, brokerSessions, float64(m.Sessions))
	gauge(ch, brokerSubscriptions, float64(m.Subscriptions))
	gauge(ch, brokerInflight, float64(m.Inflight))
	gauge(ch, brokerRetained, float64(m.Retained))
	gauge(ch, brokerQueuedBytes, float64(m.QueuedBytes))
	for q := range 3 {
		qos := strconv.Itoa(q)
		counter(ch, brokerReceived, float64(m.ReceivedByQoS[q]), qos)
		counter(ch, brokerSent, float64(m.SentByQoS[q]), qos)
		counter(ch, brokerDropped, float64(m.DroppedByQoS[q]), qos)
	}
	counter(ch, brokerInflightDrop, float64(m.InflightDropped))
	counter(ch, brokerPacketsIn, float64(m.PacketsReceived))
	counter(ch, brokerPacketsOut, float64(m.PacketsSent))
	counter(ch, brokerBytesIn, float64(m.BytesReceived))
	counter(ch, brokerBytesOut, float64(m.BytesSent))
}

// ---------------------------------------------------------------- raft and store

// raftStates are the values of roost_raft_state's state label: every
// one is exported, 1 for the node's state and 0 for the others, so a
// query never has to tell a missing series from a state not held.
var raftStates = []string{"leader", "follower", "candidate", "shutdown"}

var (
	raftState       = desc("roost_raft_state", "This node's raft state: 1 for the state it is in, 0 for the others.", "state")
	raftHasLeader   = desc("roost_raft_has_leader", "1 if this node knows a raft leader (itself or another), 0 if not: writes fail without one.")
	raftTerm        = desc("roost_raft_term", "The current raft term.")
	raftCommit      = desc("roost_raft_commit_index", "The highest raft log index known to be committed.")
	raftApplied     = desc("roost_raft_applied_index", "The raft index of the last entry in this node's state (the store).")
	raftLastLog     = desc("roost_raft_last_log_index", "The last raft log index on this node.")
	raftLastContact = desc("roost_raft_last_contact_seconds", "Seconds since this follower last heard from the leader (not exported on the leader, nor before any contact).")
	raftVoters      = desc("roost_raft_voters", "Voting members in this node's latest raft configuration.")
	raftLeaderChg   = desc("roost_raft_leader_changes_total", "Leaders this node has seen elected since it started (itself included).")
	storeRecords    = desc("roost_store_records", "Records in each replicated table of the store.", "table")
	fsmBatches      = desc("roost_store_fsm_apply_batches_total", "Store transactions that applied committed raft entries.")
	fsmEntries      = desc("roost_store_fsm_apply_entries_total", "Committed raft entries passed to the store's transactions.")
	fsmSeconds      = desc("roost_store_fsm_apply_seconds_total", "Seconds spent in the store's apply transactions.")
)

type storeCollector struct{ st *store.Store }

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{raftState, raftHasLeader, raftTerm, raftCommit, raftApplied, raftLastLog,
		raftLastContact, raftVoters, raftLeaderChg, storeRecords, fsmBatches, fsmEntries, fsmSeconds} {
		ch <- d
	}
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.st.RaftMetrics()
	for _, s := range raftStates {
		gauge(ch, raftState, boolValue(m.State == s), s)
	}
	gauge(ch, raftHasLeader, boolValue(m.HasLeader))
	gauge(ch, raftTerm, float64(m.Term))
	gauge(ch, raftCommit, float64(m.CommitIndex))
	gauge(ch, raftApplied, float64(m.AppliedIndex))
	gauge(ch, raftLastLog, float64(m.LastLogIndex))
	if m.HasContact {
		gauge(ch, raftLastContact, m.LastContact.Seconds())
	}
	if m.Servers {
		gauge(ch, raftVoters, float64(m.Voters))
	}
	counter(ch, raftLeaderChg, float64(m.LeaderChanges))
	for _, t := range store.Tables {
		gauge(ch, storeRecords, float64(c.st.Count(t)), t)
	}
	counter(ch, fsmBatches, float64(m.FSMBatches))
	counter(ch, fsmEntries, float64(m.FSMEntries))
	counter(ch, fsmSeconds, m.FSMApplyTime.Seconds())
}

// ---------------------------------------------------------------- backups

var (
	backupLastSuccess = desc("roost_backup_last_success_timestamp_seconds", "Unix time of the last successful backup of this kind to this target (0: none known).", "kind", "target")
	backupLastFailure = desc("roost_backup_last_failure_timestamp_seconds", "Unix time of the last failed backup of this kind to this target since start (0: none).", "kind", "target")
	backupFailureInfo = desc("roost_backup_last_failure_info", "The reason of the last failed backup of this kind to this target, as a label (value 1; exported once one failed since start).", "kind", "target", "reason")
	backupDuration    = desc("roost_backup_last_success_duration_seconds", "How long the last successful backup of this kind to this target took (0: unknown, e.g. found on disk at start).", "kind", "target")
	backupSize        = desc("roost_backup_last_success_size_bytes", "Size of the file the last successful backup of this kind to this target wrote.", "kind", "target")
	backupSuccesses   = desc("roost_backup_successes_total", "Successful backups of this kind to this target since start.", "kind", "target")
	backupFailures    = desc("roost_backup_failures_total", "Failed backups of this kind to this target since start.", "kind", "target")
	backupInterval    = desc("roost_backup_interval_seconds", "Interval of the scheduled backups of this kind to this target (0: not scheduled).", "kind", "target")
)

// maxReason bounds the reason label: an error message, which may be long.
const maxReason = 200

type backupCollector struct{ src BackupStatus }

func (c backupCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{backupLastSuccess, backupLastFailure, backupFailureInfo, backupDuration,
		backupSize, backupSuccesses, backupFailures, backupInterval} {
		ch <- d
	}
}

func (c backupCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.src.StatusByTarget() {
		gauge(ch, backupLastSuccess, unixSeconds(s.LastSuccess), s.Kind, s.Target)
		gauge(ch, backupLastFailure, unixSeconds(s.LastFailure), s.Kind, s.Target)
		if !s.LastFailure.IsZero() {
			gauge(ch, backupFailureInfo, 1, s.Kind, s.Target, reasonLabel(s.LastError))
		}
		gauge(ch, backupDuration, s.Duration.Seconds(), s.Kind, s.Target)
		gauge(ch, backupSize, float64(s.Size), s.Kind, s.Target)
		counter(ch, backupSuccesses, float64(s.Successes), s.Kind, s.Target)
		counter(ch, backupFailures, float64(s.Failures), s.Kind, s.Target)
		gauge(ch, backupInterval, s.Interval.Seconds(), s.Kind, s.Target)
	}
}

// reasonLabel makes an error message a label value: one line, at most
// maxReason bytes (cut at a rune boundary).
func reasonLabel(msg string) string {
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) <= maxReason {
		return msg
	}
	cut := maxReason
	for cut > 0 && !utf8RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// ---------------------------------------------------------------- helpers

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
