// Command loadgen drives an MQTT broker with one benchmark scenario and
// prints one JSON result line on standard output and a human summary on
// standard error. It is a tool to run by hand (see bench/README.md), never in
// CI: numbers from one machine are only meaningful next to another broker
// measured in the same run (bench/compare.sh does that).
//
//	loadgen -addr 127.0.0.1:1883 -scenario fanin -qos 1 -pubs 8 -count 10000
//	loadgen -addr 127.0.0.1:1883 -scenario fanout -subs 50 -qos 0
//	loadgen -addr 127.0.0.1:1883 -scenario retained -count 10000
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// maxCount bounds every publishing loop whatever the flags say.
const maxCount = 10_000_000

type config struct {
	addr, username, password string
	subAddr                  string // subscribers' broker, when not addr (cross-node runs)
	label                    string
	scenario                 string
	proto                    int
	qos                      byte
	size                     int
	pubs, subs               int
	count                    int // per publisher (fanin, fanout); total topics (retained)
	window                   int
	maxLag                   int // end-to-end outstanding deliveries; -1 = auto
	rate                     float64
	duration                 time.Duration
	drain                    time.Duration
	stall                    time.Duration
	connectTimeout           time.Duration
	verifyRetained           string // both | wildcard | exact | off
	verifyBatch              int
	cleanRetained            bool
	strict                   bool
	maxSamples               int
	verbose                  bool
	brokerPID                int // optional: measure this process's CPU time
}

// scenario defaults for flags left at 0.
type defaults struct{ pubs, subs, count int }

func scenarioDefaults(scenario string) (defaults, bool) {
	switch scenario {
	case "fanin":
		return defaults{pubs: 8, subs: 1, count: 10000}, true
	case "fanout":
		return defaults{pubs: 1, subs: 50, count: 2000}, true
	case "retained":
		return defaults{pubs: 8, subs: 0, count: 10000}, true
	case "pairs":
		return defaults{pubs: 10, subs: 10, count: 20000}, true
	}
	return defaults{}, false
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	var qos int
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:1883", "broker host:port (loopback only unless -allow-remote)")
	fs.StringVar(&c.subAddr, "sub-addr", "", "subscribers connect here instead of -addr (publish on one cluster node, subscribe on another)")
	allowRemote := fs.Bool("allow-remote", false, "allow a non-loopback -addr")
	fs.StringVar(&c.username, "username", "", "MQTT username (empty: none)")
	fs.StringVar(&c.password, "password", "", "MQTT password (empty: none)")
	fs.StringVar(&c.label, "label", "", "broker label copied into the result (e.g. mosquitto, roost)")
	fs.StringVar(&c.scenario, "scenario", "fanin", "fanin | fanout | pairs | retained")
	fs.IntVar(&c.proto, "proto", 5, "MQTT protocol version: 5 (paho.golang) or 4 = 3.1.1 (paho.mqtt.golang)")
	fs.IntVar(&qos, "qos", 1, "QoS of publishes and subscriptions: 0 or 1")
	fs.IntVar(&c.size, "size", 64, fmt.Sprintf("payload bytes (at least %d, the timestamp header)", headerSize))
	fs.IntVar(&c.pubs, "pubs", 0, "publishers (0: fanin 8, fanout 1, pairs 10, retained 8)")
	fs.IntVar(&c.subs, "subs", 0, "subscribers (0: fanin 1, fanout 50; pairs: one per publisher, whatever this says)")
	fs.IntVar(&c.count, "count", 0, "messages per publisher for fanin/fanout/pairs, retained topics in total for retained (0: fanin 10000, fanout 2000, pairs 20000, retained 10000)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "publishing stops after this long even if -count is not reached")
	fs.IntVar(&c.window, "window", 64, "per publisher: messages published and not yet acknowledged (QoS 1 PUBACK window)")
	fs.IntVar(&c.maxLag, "maxlag", -1, "end-to-end throttle: deliveries published but not yet received, all publishers together (-1: auto = window*pubs*subs for QoS 0, off for QoS 1; 0: off)")
	fs.Float64Var(&c.rate, "rate", 0, "target publish rate in msg/s, all publishers together (0: as fast as the window and throttle allow)")
	fs.DurationVar(&c.drain, "drain", 3*time.Second, "after publishing, wait this long without a new delivery before counting the rest as lost")
	fs.DurationVar(&c.stall, "stall", time.Second, "QoS 0 throttle: write outstanding deliveries off after this long without progress")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", 10*time.Second, "timeout for each TCP connect + CONNACK")
	fs.StringVar(&c.verifyRetained, "verify-retained", "both", "retained: afterwards count what fresh subscribers get back: wildcard (one subscription to bench/retained/#; shows the broker's per-client queue limits), exact (exact topics in batches of -verify-batch; proves storage), both, or off")
	fs.IntVar(&c.verifyBatch, "verify-batch", 500, "retained: topics per SUBSCRIBE in the exact check (keep it under the broker's per-client queue)")
	fs.BoolVar(&c.cleanRetained, "clean-retained", true, "retained: afterwards, clear the retained messages again (not timed)")
	fs.BoolVar(&c.strict, "strict", false, "exit with status 2 if any message was lost")
	fs.IntVar(&c.maxSamples, "max-samples", 2_000_000, "latency samples kept (reservoir) per run")
	fs.BoolVar(&c.verbose, "v", false, "debug logging")
	fs.IntVar(&c.brokerPID, "broker-pid", 0, "pid of the broker process (same machine): report the CPU time it used for the measured phase")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	d, ok := scenarioDefaults(c.scenario)
	if !ok {
		return c, fmt.Errorf("unknown -scenario %q (want fanin, fanout, pairs or retained)", c.scenario)
	}
	if c.pubs == 0 {
		c.pubs = d.pubs
	}
	if c.subs == 0 {
		c.subs = d.subs
	}
	if c.count == 0 {
		c.count = d.count
	}
	if c.scenario == "pairs" {
		c.subs = c.pubs
	}
	switch {
	case qos != 0 && qos != 1:
		return c, fmt.Errorf("-qos %d: want 0 or 1", qos)
	case c.proto != 4 && c.proto != 5:
		return c, fmt.Errorf("-proto %d: want 4 (MQTT 3.1.1) or 5", c.proto)
	case c.size < headerSize:
		return c, fmt.Errorf("-size %d: at least %d bytes are needed for the timestamp header", c.size, headerSize)
	case c.pubs < 1 || c.pubs > 10000:
		return c, fmt.Errorf("-pubs %d: want 1..10000", c.pubs)
	case c.scenario != "retained" && (c.subs < 1 || c.subs > 10000):
		return c, fmt.Errorf("-subs %d: want 1..10000", c.subs)
	case c.count < 1 || c.count > maxCount:
		return c, fmt.Errorf("-count %d: want 1..%d", c.count, maxCount)
	case c.window < 1 || c.window > 60000:
		return c, fmt.Errorf("-window %d: want 1..60000", c.window)
	case c.duration <= 0 || c.duration > time.Hour:
		return c, fmt.Errorf("-duration %s: want more than 0 and at most 1h", c.duration)
	case c.drain <= 0 || c.stall <= 0 || c.connectTimeout <= 0:
		return c, errors.New("-drain, -stall and -connect-timeout must be positive")
	case c.verifyRetained != "both" && c.verifyRetained != "wildcard" && c.verifyRetained != "exact" && c.verifyRetained != "off":
		return c, fmt.Errorf("-verify-retained %q: want both, wildcard, exact or off", c.verifyRetained)
	case c.verifyBatch < 1 || c.verifyBatch > 10000:
		return c, fmt.Errorf("-verify-batch %d: want 1..10000", c.verifyBatch)
	case c.maxSamples < 1000:
		return c, errors.New("-max-samples: at least 1000")
	}
	c.qos = byte(qos)
	if !*allowRemote {
		if c.subAddr != "" {
			if err := checkLoopback(c.subAddr); err != nil {
				return c, err
			}
		}
		if err := checkLoopback(c.addr); err != nil {
			return c, err
		}
	}
	if c.label == "" {
		c.label = c.addr
	}
	return c, nil
}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q is not a loopback address; this tool loads the broker hard, pass -allow-remote if you mean it", addr)
	}
	return nil
}

// result is the JSON line. Rates are per second, latencies in milliseconds.
type result struct {
	Label    string  `json:"label"`
	Scenario string  `json:"scenario"`
	Proto    int     `json:"proto"`
	QoS      byte    `json:"qos"`
	Size     int     `json:"size"`
	Pubs     int     `json:"pubs"`
	Subs     int     `json:"subs"`
	Count    int     `json:"count"`
	Window   int     `json:"window"`
	MaxLag   int64   `json:"max_lag"`
	Rate     float64 `json:"rate"`

	Sent           int64   `json:"sent"`     // messages published
	Acked          int64   `json:"acked"`    // of those, acknowledged (QoS 1: PUBACK)
	Expected       int64   `json:"expected"` // deliveries owed to subscribers
	Delivered      int64   `json:"delivered"`
	Duplicates     int64   `json:"duplicates"`
	Foreign        int64   `json:"foreign"` // messages not from this run (old retained, other tools)
	Lost           int64   `json:"lost"`
	DeliveredRatio float64 `json:"delivered_ratio"`
	Reordered      int64   `json:"reordered"` // QoS 0: arrived after a later message of the same publisher
	GateStalls     int64   `json:"gate_stalls"`
	WrittenOff     int64   `json:"written_off"`

	ElapsedSec    float64 `json:"elapsed_s"`
	MsgsPerSec    float64 `json:"msgs_per_sec"`    // fanin/fanout: deliveries/s; retained: acked publishes/s
	PublishPerSec float64 `json:"publish_per_sec"` // acked publishes/s

	Latency    latencySummary `json:"latency"`     // fanin/fanout: end to end; retained: publish → PUBACK
	AckLatency latencySummary `json:"ack_latency"` // publish → PUBACK (QoS 1)

	BrokerCPUSec      float64 `json:"broker_cpu_s,omitempty"`          // broker CPU time over the measured phase (-broker-pid)
	BrokerCPUUsPerMsg float64 `json:"broker_cpu_us_per_msg,omitempty"` // that, per delivery (retained: per stored message)
	CPUError          string  `json:"cpu_error,omitempty"`

	RetainedExpected int64   `json:"retained_expected,omitempty"`
	RetainedStored   int64   `json:"retained_stored,omitempty"`   // found by the exact-topic check
	RetainedWildcard int64   `json:"retained_wildcard,omitempty"` // received on one bench/retained/# subscription
	RetainedFetchSec float64 `json:"retained_fetch_s,omitempty"`  // SUBSCRIBE bench/retained/# → last retained message

	OK    bool   `json:"ok"` // finished without error and nothing lost
	Error string `json:"error,omitempty"`
}

func newResult(c config, pubs, subs int) result {
	return result{
		Label: c.label, Scenario: c.scenario, Proto: c.proto, QoS: c.qos, Size: c.size,
		Pubs: pubs, Subs: subs, Count: c.count, Window: c.window, Rate: c.rate,
	}
}

func humanSummary(w io.Writer, r result) {
	fmt.Fprintf(w, "%s %s proto=%d qos=%d size=%d pubs=%d subs=%d\n", r.Label, r.Scenario, r.Proto, r.QoS, r.Size, r.Pubs, r.Subs)
	switch r.Scenario {
	case "retained":
		fmt.Fprintf(w, "  stored %d retained messages in %.2fs: %.0f msg/s; PUBACK latency p50 %.2fms p99 %.2fms\n",
			r.Acked, r.ElapsedSec, r.MsgsPerSec, r.AckLatency.P50, r.AckLatency.P99)
		if r.RetainedWildcard > 0 || r.RetainedFetchSec > 0 {
			fmt.Fprintf(w, "  subscriber on bench/retained/# got %d of %d in %.2fs", r.RetainedWildcard, r.RetainedExpected, r.RetainedFetchSec)
			if r.Foreign > 0 {
				fmt.Fprintf(w, " (+%d retained from earlier runs)", r.Foreign)
			}
			fmt.Fprintln(w)
		}
		if r.RetainedStored > 0 {
			fmt.Fprintf(w, "  exact-topic check found %d of %d stored\n", r.RetainedStored, r.RetainedExpected)
		}
	default:
		fmt.Fprintf(w, "  published %d (acked %d, %.0f msg/s); delivered %d of %d (%.2f%%) in %.2fs: %.0f deliveries/s\n",
			r.Sent, r.Acked, r.PublishPerSec, r.Delivered, r.Expected, 100*r.DeliveredRatio, r.ElapsedSec, r.MsgsPerSec)
		fmt.Fprintf(w, "  end-to-end latency p50 %.2fms p90 %.2fms p99 %.2fms max %.2fms (%d samples)\n",
			r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max, r.Latency.Samples)
		if r.QoS == 1 {
			fmt.Fprintf(w, "  PUBACK latency p50 %.2fms p99 %.2fms\n", r.AckLatency.P50, r.AckLatency.P99)
		}
		if r.Reordered > 0 {
			fmt.Fprintf(w, "  OUT OF ORDER: %d messages arrived after a later one of their publisher\n", r.Reordered)
		}
		if r.MaxLag > 0 {
			fmt.Fprintf(w, "  throttle: at most %d deliveries outstanding; stalls %d (written off %d)\n", r.MaxLag, r.GateStalls, r.WrittenOff)
		}
	}
	if r.BrokerCPUSec > 0 {
		fmt.Fprintf(w, "  broker CPU %.2fs: %.1fµs per message\n", r.BrokerCPUSec, r.BrokerCPUUsPerMsg)
	}
	if r.Duplicates > 0 {
		fmt.Fprintf(w, "  duplicates: %d\n", r.Duplicates)
	}
	switch {
	case r.Error != "":
		fmt.Fprintf(w, "  FAILED: %s\n", r.Error)
	case r.Lost > 0:
		fmt.Fprintf(w, "  LOST %d messages (%.3f%%)\n", r.Lost, 100*(1-r.DeliveredRatio))
	default:
		fmt.Fprintln(w, "  no message lost")
	}
}

func run(ctx context.Context, cfg config, log *slog.Logger) (result, error) {
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return result{}, fmt.Errorf("run id: %w", err)
	}
	env := &runEnv{cfg: cfg, log: log, start: time.Now(), runID: binary.BigEndian.Uint64(id[:])}
	switch cfg.scenario {
	case "fanin":
		return runFanin(ctx, env)
	case "fanout":
		return runFanout(ctx, env)
	case "pairs":
		return runPairs(ctx, env)
	default:
		return runRetained(ctx, env)
	}
}

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 64
	}
	level := slog.LevelWarn
	if cfg.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	// Every phase is bounded: connecting, publishing (-duration), draining,
	// plus a margin. After that the context ends whatever is still waiting.
	budget := 2*cfg.connectTimeout + 2*cfg.duration + 3*cfg.drain + 30*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	res, err := run(ctx, cfg, log)
	if res.Scenario == "" {
		res = newResult(cfg, cfg.pubs, cfg.subs)
	}
	if err != nil {
		res.Error = err.Error()
	}
	res.OK = err == nil && res.Lost == 0
	line, jerr := json.Marshal(res)
	if jerr != nil {
		fmt.Fprintf(stderr, "loadgen: encoding result: %v\n", jerr)
		return 1
	}
	fmt.Fprintln(stdout, string(line))
	humanSummary(stderr, res)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "loadgen: %s\n", strings.TrimSpace(err.Error()))
		return 1
	case cfg.strict && res.Lost > 0:
		return 2
	}
	return 0
}
