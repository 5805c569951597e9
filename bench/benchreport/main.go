// Command benchreport turns the JSON lines written by loadgen (several
// brokers, several rounds) into markdown: per scenario and broker the median
// over rounds of throughput and latency, and the ratios between brokers
// measured in the same run. bench/compare.sh calls it; it can be run by hand
// on a saved .jsonl file.
//
//	benchreport -ratios roost/mosquitto,roost/mochi results.jsonl
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// run is the part of loadgen's result line the report uses.
type run struct {
	Label          string  `json:"label"`
	Scenario       string  `json:"scenario"`
	Proto          int     `json:"proto"`
	QoS            int     `json:"qos"`
	Expected       int64   `json:"expected"`
	Delivered      int64   `json:"delivered"`
	Lost           int64   `json:"lost"`
	DeliveredRatio float64 `json:"delivered_ratio"`
	Reordered      int64   `json:"reordered"`
	MsgsPerSec     float64 `json:"msgs_per_sec"`
	Latency        struct {
		P50 float64 `json:"p50_ms"`
		P99 float64 `json:"p99_ms"`
	} `json:"latency"`
	BrokerCPUUsPerMsg float64 `json:"broker_cpu_us_per_msg"`
	RetainedExpected  int64   `json:"retained_expected"`
	RetainedStored    int64   `json:"retained_stored"`
	RetainedWildcard  int64   `json:"retained_wildcard"`
	Error             string  `json:"error"`
}

// key identifies one table cell row: the same work against one broker.
type key struct {
	scenario string
	qos      int
	proto    int
	label    string
}

func (k key) workload() string {
	return fmt.Sprintf("%s qos%d v%d", k.scenario, k.qos, k.proto)
}

type row struct {
	key
	runs, failed           int
	msgs, p50, p99, cpu    float64 // medians over runs without error (cpu: NaN if not measured)
	minDelivered           float64
	worstDelivered         [2]int64 // delivered, expected of the worst run
	lost, reordered        int64
	wildcardMin, expectMax int64
	errors                 []string
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func readRuns(r io.Reader) ([]run, error) {
	var runs []run
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || !strings.HasPrefix(text, "{") {
			continue
		}
		var rn run
		if err := json.Unmarshal([]byte(text), &rn); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		runs = append(runs, rn)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading results: %w", err)
	}
	return runs, nil
}

func aggregate(runs []run) []row {
	groups := map[key][]run{}
	var order []key
	for _, r := range runs {
		k := key{scenario: r.Scenario, qos: r.QoS, proto: r.Proto, label: r.Label}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	rows := make([]row, 0, len(order))
	for _, k := range order {
		rw := row{key: k, minDelivered: math.NaN(), wildcardMin: -1}
		var msgs, p50, p99, cpu []float64
		for _, r := range groups[k] {
			rw.runs++
			if r.Error != "" {
				rw.failed++
				rw.errors = append(rw.errors, r.Error)
				continue
			}
			msgs = append(msgs, r.MsgsPerSec)
			p50 = append(p50, r.Latency.P50)
			p99 = append(p99, r.Latency.P99)
			if r.BrokerCPUUsPerMsg > 0 {
				cpu = append(cpu, r.BrokerCPUUsPerMsg)
			}
			if r.Expected > 0 && (math.IsNaN(rw.minDelivered) || r.DeliveredRatio < rw.minDelivered) {
				rw.minDelivered = r.DeliveredRatio
				rw.worstDelivered = [2]int64{r.Delivered, r.Expected}
			}
			rw.lost += r.Lost
			rw.reordered += r.Reordered
			if r.RetainedExpected > 0 {
				rw.expectMax = max(rw.expectMax, r.RetainedExpected)
				if rw.wildcardMin < 0 || r.RetainedWildcard < rw.wildcardMin {
					rw.wildcardMin = r.RetainedWildcard
				}
			}
		}
		rw.msgs, rw.p50, rw.p99, rw.cpu = median(msgs), median(p50), median(p99), median(cpu)
		rows = append(rows, rw)
	}
	slices.SortStableFunc(rows, func(a, b row) int {
		return strings.Compare(a.workload(), b.workload())
	})
	return rows
}

func fmtRate(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.0f", v)
}

func fmtMS(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.2f", v)
}

func fmtUs(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.1f", v)
}

func fmtRatio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func notes(r row) string {
	var n []string
	if r.lost > 0 {
		n = append(n, fmt.Sprintf("LOST %d over all runs", r.lost))
	}
	if r.reordered > 0 {
		n = append(n, fmt.Sprintf("OUT OF ORDER %d over all runs", r.reordered))
	}
	if r.wildcardMin >= 0 && r.wildcardMin < r.expectMax {
		n = append(n, fmt.Sprintf("bench/retained/# subscriber got only %d of %d", r.wildcardMin, r.expectMax))
	}
	if r.failed > 0 {
		n = append(n, fmt.Sprintf("%d failed: %s", r.failed, firstLine(r.errors[0])))
	}
	return strings.Join(n, "; ")
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

func writeReport(w io.Writer, rows []row, ratios [][2]string) {
	fmt.Fprintln(w, "| workload | broker | msg/s | p50 ms | p99 ms | broker CPU µs/msg | delivered (worst run) | runs ok | notes |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range rows {
		deliv := "–"
		if !math.IsNaN(r.minDelivered) {
			deliv = fmt.Sprintf("%.2f%% (%d/%d)", 100*r.minDelivered, r.worstDelivered[0], r.worstDelivered[1])
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %d/%d | %s |\n",
			r.workload(), r.label, fmtRate(r.msgs), fmtMS(r.p50), fmtMS(r.p99), fmtUs(r.cpu), deliv, r.runs-r.failed, r.runs, notes(r))
	}
	if len(ratios) == 0 {
		return
	}
	byKey := map[key]row{}
	for _, r := range rows {
		byKey[r.key] = r
	}
	var lines []string
	for _, r := range rows {
		for _, pr := range ratios {
			subject, peer := pr[0], pr[1]
			suffix, ok := strings.CutPrefix(r.label, subject)
			if !ok || (suffix != "" && !strings.HasPrefix(suffix, "-")) {
				continue
			}
			pk := r.key
			pk.label = peer + suffix
			p, ok := byKey[pk]
			if !ok {
				continue
			}
			lines = append(lines, fmt.Sprintf("| %s | %s / %s | %s | %s | %s | %s |",
				r.workload(), r.label, p.label, fmtRatio(r.msgs, p.msgs), fmtRatio(r.p50, p.p50), fmtRatio(r.p99, p.p99), fmtRatio(r.cpu, p.cpu)))
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Ratios of medians, first broker / second (msg/s: above 1 is better for the first; latency and CPU per message: below 1 is better):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| workload | brokers | msg/s | p50 | p99 | CPU/msg |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|")
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

func parseRatios(s string) ([][2]string, error) {
	var out [][2]string
	for p := range strings.SplitSeq(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		a, b, ok := strings.Cut(p, "/")
		if !ok || a == "" || b == "" {
			return nil, fmt.Errorf("-ratios: %q is not subject/peer", p)
		}
		out = append(out, [2]string{a, b})
	}
	return out, nil
}

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func realMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchreport", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ratioFlag := fs.String("ratios", "roost/mosquitto,roost/mochi,mochi/mosquitto",
		"comma-separated subject/peer label pairs; each also applies to labels with the same -suffix (roost-auth/mosquitto-auth)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 64
	}
	ratios, err := parseRatios(*ratioFlag)
	if err != nil {
		fmt.Fprintf(stderr, "benchreport: %v\n", err)
		return 64
	}
	var runs []run
	if fs.NArg() == 0 {
		runs, err = readRuns(stdin)
	} else {
		for _, name := range fs.Args() {
			rs, rerr := readFile(name)
			if rerr != nil {
				err = rerr
				break
			}
			runs = append(runs, rs...)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "benchreport: %v\n", err)
		return 1
	}
	if len(runs) == 0 {
		fmt.Fprintln(stderr, "benchreport: no results")
		return 1
	}
	writeReport(stdout, aggregate(runs), ratios)
	return 0
}

func readFile(name string) ([]run, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("opening results: %w", err)
	}
	defer f.Close()
	runs, err := readRuns(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return runs, nil
}
