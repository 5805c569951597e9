package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/roostmq/roost/internal/backup"
	"github.com/roostmq/roost/internal/broker"
	"github.com/roostmq/roost/internal/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir(), NodeID: "n1", Advertise: "n1", Bootstrap: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape: HTTP %d %s\n%s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	body := rec.Body.String()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse scrape: %v\n%s", err, body)
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "roost_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
	return mfs
}

// value is the value of the one series of name whose labels include
// want (name=value pairs); ok is false when there is none.
func value(mfs map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		}
	}
	return 0, false
}

func TestScrapeMapsEverySource(t *testing.T) {
	st := openStore(t)
	if _, err := st.Apply(context.Background(),
		store.Op{Type: store.OpPut, Table: store.TableBanned, Key: "clientid:x", Value: []byte(`{"v":1}`)}); err != nil {
		t.Fatal(err)
	}
	health := backup.NewHealth()
	health.Declare(backup.KindNodeBackup, backup.TargetLocal, time.Hour)
	ok := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	health.Success(backup.KindNodeBackup, backup.TargetLocal, ok, 1500*time.Millisecond, "roost-backup-n1-x.tar.zst", 4096)
	health.Failure(backup.KindDataExport, "s3://bucket/roost", ok.Add(time.Minute),
		errors.New("upload:\n"+strings.Repeat("é", 150)))
	// Every broker field a different number, so a field read into the
	// wrong metric shows.
	bm := broker.Metrics{Connections: 1, Sessions: 2, Subscriptions: 3, Retained: 4, Inflight: 5,
		InflightDropped: 6, PacketsReceived: 7, PacketsSent: 8, BytesReceived: 9, BytesSent: 10,
		ReceivedByQoS: broker.QoSCounts{11, 12, 13}, SentByQoS: broker.QoSCounts{14, 15, 16},
		DroppedByQoS: broker.QoSCounts{17, 18, 19}, QueuedBytes: 20}
	h := Handler(Options{Broker: func() broker.Metrics { return bm }, Store: st, Backups: health,
		Version: "1.2.3", Commit: "abc"})
	mfs := scrape(t, h)

	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"roost_broker_connections", nil, 1},
		{"roost_broker_sessions", nil, 2},
		{"roost_broker_subscriptions", nil, 3},
		{"roost_broker_retained_messages", nil, 4},
		{"roost_broker_inflight_messages", nil, 5},
		{"roost_broker_inflight_dropped_total", nil, 6},
		{"roost_broker_queued_bytes", nil, 20},
		{"roost_broker_packets_received_total", nil, 7},
		{"roost_broker_packets_sent_total", nil, 8},
		{"roost_broker_received_bytes_total", nil, 9},
		{"roost_broker_sent_bytes_total", nil, 10},
		{"roost_broker_messages_received_total", []string{"qos", "0"}, 11},
		{"roost_broker_messages_received_total", []string{"qos", "2"}, 13},
		{"roost_broker_messages_sent_total", []string{"qos", "1"}, 15},
		{"roost_broker_messages_dropped_total", []string{"qos", "0"}, 17},
		{"roost_broker_messages_dropped_total", []string{"qos", "2"}, 19},
		{"roost_build_info", []string{"version", "1.2.3", "commit", "abc"}, 1},
		{"roost_raft_state", []string{"state", "leader"}, 1},
		{"roost_raft_state", []string{"state", "follower"}, 0},
		{"roost_raft_has_leader", nil, 1},
		{"roost_raft_voters", nil, 1},
		{"roost_raft_leader_changes_total", nil, 1},
		{"roost_store_records", []string{"table", "banned"}, 1},
		{"roost_store_records", []string{"table", "users"}, 0},
		{"roost_backup_last_success_timestamp_seconds", []string{"kind", "node_backup", "target", "local"}, float64(ok.Unix())},
		{"roost_backup_last_success_duration_seconds", []string{"kind", "node_backup", "target", "local"}, 1.5},
		{"roost_backup_last_success_size_bytes", []string{"kind", "node_backup", "target", "local"}, 4096},
		{"roost_backup_interval_seconds", []string{"kind", "node_backup", "target", "local"}, 3600},
		{"roost_backup_successes_total", []string{"kind", "node_backup", "target", "local"}, 1},
		{"roost_backup_last_failure_timestamp_seconds", []string{"kind", "node_backup", "target", "local"}, 0},
		{"roost_backup_last_failure_timestamp_seconds", []string{"kind", "data_export", "target", "s3://bucket/roost"}, float64(ok.Unix() + 60)},
		{"roost_backup_failures_total", []string{"kind", "data_export", "target", "s3://bucket/roost"}, 1},
		{"roost_backup_last_success_timestamp_seconds", []string{"kind", "data_export", "target", "s3://bucket/roost"}, 0},
	} {
		got, found := value(mfs, c.name, c.labels...)
		if !found || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, found, c.want)
		}
	}
	for _, name := range []string{"roost_raft_term", "roost_raft_commit_index", "roost_raft_applied_index",
		"roost_raft_last_log_index", "roost_store_fsm_apply_batches_total", "roost_store_fsm_apply_entries_total",
		"roost_store_fsm_apply_seconds_total"} {
		if v, found := value(mfs, name); !found || v <= 0 {
			t.Errorf("%s = %v (found %v), want > 0 on a leader that applied a write", name, v, found)
		}
	}
	if _, found := value(mfs, "roost_raft_last_contact_seconds"); found {
		t.Errorf("roost_raft_last_contact_seconds exported on the leader")
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if _, found := value(mfs, name); !found {
			t.Errorf("%s missing: the Go and process collectors are not registered", name)
		}
	}

	// The failure reason: one line, bounded, one series per kind/target,
	// and none for a kind/target that never failed.
	info := mfs["roost_backup_last_failure_info"]
	if info == nil || len(info.Metric) != 1 {
		t.Fatalf("roost_backup_last_failure_info: %v, want one series", info)
	}
	var reason string
	for _, l := range info.Metric[0].Label {
		if l.GetName() == "reason" {
			reason = l.GetValue()
		}
	}
	if !strings.HasPrefix(reason, "upload: éé") || strings.Contains(reason, "\n") || len(reason) > maxReason+len("…") ||
		!strings.HasSuffix(reason, "…") {
		t.Errorf("reason label %q: want the message on one line, cut to %d bytes at a rune boundary", reason, maxReason)
	}
	health.Failure(backup.KindDataExport, "s3://bucket/roost", time.Now(), errors.New("second failure"))
	mfs = scrape(t, h)
	if info := mfs["roost_backup_last_failure_info"]; info == nil || len(info.Metric) != 1 ||
		!strings.Contains(info.Metric[0].String(), "second failure") {
		t.Errorf("after a second failure, the info series is not replaced: %v", info)
	}
}

// Two handlers (two nodes in one process) have registries of their own.
func TestRegistriesAreSeparate(t *testing.T) {
	a := backup.NewHealth()
	a.Declare(backup.KindNodeBackup, "a", 0)
	b := backup.NewHealth()
	b.Declare(backup.KindNodeBackup, "b", 0)
	ma := scrape(t, Handler(Options{Backups: a}))
	mb := scrape(t, Handler(Options{Backups: b}))
	if _, ok := value(ma, "roost_backup_interval_seconds", "target", "b"); ok {
		t.Errorf("node a's scrape shows node b's target")
	}
	if _, ok := value(mb, "roost_backup_interval_seconds", "target", "b"); !ok {
		t.Errorf("node b's scrape lacks its own target")
	}
}
