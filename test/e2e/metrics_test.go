package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scraped is one scrape of GET /metrics, parsed as Prometheus does.
type scraped map[string]*dto.MetricFamily

// scrapeMetrics GETs /metrics from n's API port, with basic auth
// user:pass unless user is empty, and parses the text format.
func scrapeMetrics(t *testing.T, n *node, user, pass string) scraped {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+n.API+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	res, err := apiClient.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: HTTP %d", res.StatusCode)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("GET /metrics: Content-Type %q, want the Prometheus text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("GET /metrics: not the Prometheus text format: %v", err)
	}
	return mfs
}

// get returns the value of the series of name with exactly the labels
// given as name=value pairs; it fails the test when there is none.
func (s scraped) get(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mf := s[name]
	if mf == nil {
		t.Fatalf("no metric %s in the scrape", name)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
next:
	for _, m := range mf.Metric {
		if len(m.Label) != len(want) {
			continue
		}
		for _, l := range m.Label {
			if want[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		}
	}
	t.Fatalf("no series %s%v in the scrape", name, labels)
	return 0
}

// label returns the value of label key of the one series of name.
func (s scraped) label(t *testing.T, name, key string) string {
	t.Helper()
	mf := s[name]
	if mf == nil || len(mf.Metric) != 1 {
		t.Fatalf("%s: want exactly one series, got %v", name, mf)
	}
	for _, l := range mf.Metric[0].Label {
		if l.GetName() == key {
			return l.GetValue()
		}
	}
	t.Fatalf("%s has no label %s", name, key)
	return ""
}

func TestMetricsScrape(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.Env = append(n.Env, "ROOST_BACKUP__INTERVAL=24h")
	n.Start()

	// Refused without credentials (api.metrics_auth defaults to true).
	r := doAPI(t, n.API, apiCall{Method: "GET", Path: "/metrics"})
	wantAPIError(t, "scrape without credentials", r, 401, "UNAUTHORIZED", "authentication required")

	var key struct{ Name, Secret string }
	if err := json.Unmarshal([]byte(n.mustCtl("apikeys", "create", "prometheus", "--output", "json")), &key); err != nil {
		t.Fatal(err)
	}
	scrape := func() scraped { t.Helper(); return scrapeMetrics(t, n, key.Name, key.Secret) }
	m := scrape()

	// Raft: a one-node cluster is its own leader.
	if m.get(t, "roost_raft_state", "state", "leader") != 1 || m.get(t, "roost_raft_state", "state", "follower") != 0 ||
		m.get(t, "roost_raft_has_leader") != 1 || m.get(t, "roost_raft_term") < 1 || m.get(t, "roost_raft_voters") != 1 ||
		m.get(t, "roost_raft_leader_changes_total") < 1 {
		t.Errorf("raft metrics of a one-node cluster: state leader %v, has_leader %v, term %v, voters %v, leader changes %v",
			m.get(t, "roost_raft_state", "state", "leader"), m.get(t, "roost_raft_has_leader"), m.get(t, "roost_raft_term"),
			m.get(t, "roost_raft_voters"), m.get(t, "roost_raft_leader_changes_total"))
	}
	applied := m.get(t, "roost_raft_applied_index")
	users := m.get(t, "roost_store_records", "table", "users")
	n.mustCtl("users", "add", "metrics-user", "pw")
	m = scrape()
	if got := m.get(t, "roost_raft_applied_index"); got <= applied {
		t.Errorf("applied index %v after a write, was %v", got, applied)
	}
	if got := m.get(t, "roost_raft_commit_index"); got < m.get(t, "roost_raft_applied_index") {
		t.Errorf("commit index %v below the applied index %v", got, m.get(t, "roost_raft_applied_index"))
	}
	if got := m.get(t, "roost_store_records", "table", "users"); got != users+1 {
		t.Errorf("users records %v after adding one to %v", got, users)
	}

	// Connections and messages, from real MQTT clients.
	conns := m.get(t, "roost_broker_connections")
	sub := mustV5(t, n.MQTT, mqttClientID("msub"), "metrics-user", "pw")
	sub.MustSubscribe(2, "metrics/#")
	pub := mustV5(t, n.MQTT, mqttClientID("mpub"), "metrics-user", "pw")
	m = scrape()
	if got := m.get(t, "roost_broker_connections"); got != conns+2 {
		t.Errorf("connections %v with two clients connected, was %v", got, conns)
	}
	before := m
	published := []int{4, 3, 2} // messages at QoS 0, 1, 2
	for q, count := range published {
		for range count {
			pub.MustPublish("metrics/t", byte(q), false, []byte("x"))
		}
	}
	sub.Expect(9)
	m = scrape()
	for q, count := range published {
		qos := strconv.Itoa(q)
		for _, name := range []string{"roost_broker_messages_received_total", "roost_broker_messages_sent_total"} {
			if d := m.get(t, name, "qos", qos) - before.get(t, name, "qos", qos); d != float64(count) {
				t.Errorf("%s{qos=%q} grew by %v, the client published %d at that QoS", name, qos, d, count)
			}
		}
		if got := m.get(t, "roost_broker_messages_dropped_total", "qos", qos); got != 0 {
			t.Errorf("dropped{qos=%q} = %v with a reading subscriber", qos, got)
		}
	}
	pub.MustPublish("metrics/retained", 1, true, []byte("kept"))
	mqttEventually(t, 5*time.Second, "the retained message counted", func() bool {
		return scrape().get(t, "roost_broker_retained_messages") == 1
	})
	pub.Disconnect()
	mqttEventually(t, 5*time.Second, "the connection gauge down after a disconnect", func() bool {
		return scrape().get(t, "roost_broker_connections") == conns+1
	})

	// Backups: scheduled every 24h, and one made now.
	nb := []string{"kind", "node_backup", "target", "local"}
	if got := m.get(t, "roost_backup_interval_seconds", nb...); got != 24*3600 {
		t.Errorf("node backup interval %v s, want 86400 (backup.interval = 24h)", got)
	}
	if got := m.get(t, "roost_backup_last_success_timestamp_seconds", nb...); got != 0 {
		t.Errorf("last success %v before any backup, want 0", got)
	}
	start := float64(time.Now().UnixNano()) / 1e9
	res := createBackup(t, n)
	end := float64(time.Now().UnixNano()) / 1e9
	fi, err := os.Stat(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	m = scrape()
	if at := m.get(t, "roost_backup_last_success_timestamp_seconds", nb...); at < start || at > end {
		t.Errorf("last success at %v, the backup ran between %v and %v", at, start, end)
	}
	if got := m.get(t, "roost_backup_last_success_size_bytes", nb...); got != float64(fi.Size()) {
		t.Errorf("last success size %v, the file %s has %d bytes", got, res.Name, fi.Size())
	}
	if m.get(t, "roost_backup_successes_total", nb...) != 1 || m.get(t, "roost_backup_failures_total", nb...) != 0 ||
		m.get(t, "roost_backup_last_success_duration_seconds", nb...) <= 0 {
		t.Errorf("after one backup: successes %v, failures %v, duration %v", m.get(t, "roost_backup_successes_total", nb...),
			m.get(t, "roost_backup_failures_total", nb...), m.get(t, "roost_backup_last_success_duration_seconds", nb...))
	}
	if _, ok := m["roost_backup_last_failure_info"]; ok {
		t.Errorf("a failure reason exported before any failure")
	}

	// A data export is recorded under its own kind.
	var exp struct {
		Path string `json:"path"`
		Size int64  `json:"size"`
	}
	if err := json.Unmarshal([]byte(n.mustCtl("data", "export", "--output", "json")), &exp); err != nil {
		t.Fatal(err)
	}
	efi, err := os.Stat(exp.Path)
	if err != nil {
		t.Fatal(err)
	}
	m = scrape()
	de := []string{"kind", "data_export", "target", "local"}
	if m.get(t, "roost_backup_last_success_size_bytes", de...) != float64(efi.Size()) || m.get(t, "roost_backup_successes_total", de...) != 1 {
		t.Errorf("data export: size %v (file %d bytes), successes %v", m.get(t, "roost_backup_last_success_size_bytes", de...),
			efi.Size(), m.get(t, "roost_backup_successes_total", de...))
	}

	// A backup that fails: the backup dir replaced by a file (a real
	// failure to create it, even for root).
	bdir := filepath.Join(n.DataDir, "backup")
	if err := os.Rename(bdir, bdir+".aside"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bdir, []byte("not a dir"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := n.ctl("backup", "create"); err == nil {
		t.Fatalf("backup create into a file succeeded: %s", out)
	} else if !strings.Contains(errOut, "not a directory") {
		t.Errorf("backup create failed with %q, want the reason", errOut)
	}
	m = scrape()
	failedAt := m.get(t, "roost_backup_last_failure_timestamp_seconds", nb...)
	if failedAt <= m.get(t, "roost_backup_last_success_timestamp_seconds", nb...) || failedAt > float64(time.Now().Unix()+1) {
		t.Errorf("last failure at %v, last success at %v: want the failure newer", failedAt,
			m.get(t, "roost_backup_last_success_timestamp_seconds", nb...))
	}
	if reason := m.label(t, "roost_backup_last_failure_info", "reason"); !strings.Contains(reason, "not a directory") {
		t.Errorf("failure reason %q, want the error", reason)
	}
	if m.get(t, "roost_backup_failures_total", nb...) != 1 || m.get(t, "roost_backup_successes_total", nb...) != 1 {
		t.Errorf("after a failure: failures %v, successes %v", m.get(t, "roost_backup_failures_total", nb...),
			m.get(t, "roost_backup_successes_total", nb...))
	}
	if got := m.get(t, "roost_backup_last_success_size_bytes", nb...); got != float64(fi.Size()) {
		t.Errorf("a failure changed the last success size to %v", got)
	}
	if _, _, err := n.ctl("data", "export"); err == nil {
		t.Fatal("data export into a file succeeded")
	}
	if m = scrape(); m.get(t, "roost_backup_failures_total", de...) != 1 ||
		m.get(t, "roost_backup_last_failure_timestamp_seconds", de...) <= m.get(t, "roost_backup_last_success_timestamp_seconds", de...) {
		t.Errorf("data export failure not recorded: failures %v, last failure %v, last success %v",
			m.get(t, "roost_backup_failures_total", de...), m.get(t, "roost_backup_last_failure_timestamp_seconds", de...),
			m.get(t, "roost_backup_last_success_timestamp_seconds", de...))
	}
	if err := os.Remove(bdir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bdir+".aside", bdir); err != nil {
		t.Fatal(err)
	}

	// After a restart the last success is the newest backup on disk.
	restartMQTTNode(n)
	m = scrape()
	if got := m.get(t, "roost_backup_last_success_timestamp_seconds", nb...); got != float64(fi.ModTime().UnixNano())/1e9 {
		t.Errorf("after a restart, last success %v, the newest backup's time is %v", got, float64(fi.ModTime().UnixNano())/1e9)
	}
	if got := m.get(t, "roost_backup_last_success_size_bytes", nb...); got != float64(fi.Size()) {
		t.Errorf("after a restart, last success size %v, want %d", got, fi.Size())
	}
}

// api.metrics_auth = false: anyone who reaches the API port may scrape,
// and nothing else of the API opens.
func TestMetricsPublicScrape(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.Env = append(n.Env, "ROOST_API__METRICS_AUTH=false")
	n.Start()
	m := scrapeMetrics(t, n, "", "")
	if m.get(t, "roost_raft_state", "state", "leader") != 1 {
		t.Errorf("public scrape: not the leader's metrics")
	}
	wantAPIError(t, "status without credentials", doAPI(t, n.API, apiCall{Method: "GET", Path: "/api/v1/status"}), 401, "UNAUTHORIZED")
}
