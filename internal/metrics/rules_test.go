package metrics

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/roostmq/roost/internal/backup"
	"github.com/roostmq/roost/internal/broker"
)

// The example alert rules of docs/monitoring.md live in docs/prometheus.
const rulesDir = "../../docs/prometheus"

// Every roost_ metric an example rule uses is one the node exports: a
// renamed metric would leave the alert silent for ever.
func TestAlertRulesUseExportedMetrics(t *testing.T) {
	rules, err := os.ReadFile(filepath.Join(rulesDir, "roost-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	health := backup.NewHealth()
	health.Failure(backup.KindNodeBackup, backup.TargetLocal, time.Now(), os.ErrPermission)
	mfs, err := NewRegistry(Options{Broker: func() broker.Metrics { return broker.Metrics{} }, Store: openStore(t),
		Backups: health}).Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, mf := range mfs {
		exported[mf.GetName()] = true
	}
	// And those exported only in some states (last contact: followers).
	descs := make(chan *prometheus.Desc, 100)
	for _, c := range []prometheus.Collector{brokerCollector{}, storeCollector{}, backupCollector{}} {
		c.Describe(descs)
	}
	close(descs)
	for d := range descs {
		if m := regexp.MustCompile(`fqName: "([^"]+)"`).FindStringSubmatch(d.String()); m != nil {
			exported[m[1]] = true
		}
	}
	used := regexp.MustCompile(`\b(?:roost|process)_\w+`).FindAllString(string(rules), -1)
	if len(used) == 0 {
		t.Fatal("the rules use no roost metric")
	}
	for _, name := range used {
		if !exported[name] {
			t.Errorf("docs/prometheus/roost-alerts.yml uses %s, which the node does not export", name)
		}
	}

	// docs/monitoring.md shows the rules file as it is.
	doc, err := os.ReadFile("../../docs/monitoring.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```yaml\n"+string(rules)+"```") {
		t.Errorf("docs/monitoring.md does not show docs/prometheus/roost-alerts.yml as it is: copy it in again")
	}
}

// promtool (Prometheus's own checker) accepts the rules, and its unit
// tests of them pass: each alert fires when it should and not before.
func TestAlertRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found: install it (Debian package prometheus, or .ci/run) to check the example alert rules")
	}
	for _, args := range [][]string{{"check", "rules", "roost-alerts.yml"}, {"test", "rules", "roost-alerts.test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = rulesDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
