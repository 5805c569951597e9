package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("odd median %v", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("even median %v", got)
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing should be NaN")
	}
}

func TestReportMediansAndRatios(t *testing.T) {
	in := strings.Join([]string{
		`{"label":"mosquitto","scenario":"fanin","proto":5,"qos":1,"expected":10,"delivered":10,"delivered_ratio":1,"msgs_per_sec":100,"latency":{"p50_ms":1,"p99_ms":2}}`,
		`{"label":"mosquitto","scenario":"fanin","proto":5,"qos":1,"expected":10,"delivered":10,"delivered_ratio":1,"msgs_per_sec":300,"latency":{"p50_ms":3,"p99_ms":6}}`,
		`{"label":"mosquitto","scenario":"fanin","proto":5,"qos":1,"expected":10,"delivered":10,"delivered_ratio":1,"msgs_per_sec":200,"latency":{"p50_ms":2,"p99_ms":4}}`,
		`{"label":"roost","scenario":"fanin","proto":5,"qos":1,"expected":10,"delivered":9,"lost":1,"delivered_ratio":0.9,"msgs_per_sec":100,"latency":{"p50_ms":4,"p99_ms":8}}`,
		`{"label":"roost","scenario":"fanin","proto":5,"qos":1,"error":"connect refused"}`,
	}, "\n")
	runs, err := readRuns(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	ratios, err := parseRatios("roost/mosquitto")
	if err != nil {
		t.Fatal(err)
	}
	writeReport(&out, aggregate(runs), ratios)
	got := out.String()
	for _, want := range []string{
		"| fanin qos1 v5 | mosquitto | 200 | 2.00 | 4.00 |",
		"| fanin qos1 v5 | roost | 100 | 4.00 | 8.00 |",
		"LOST 1 over all runs",
		"1 failed: connect refused",
		"| fanin qos1 v5 | roost / mosquitto | 0.50× | 2.00× | 2.00× |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
}
