package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// runEnv is what every part of one run shares.
type runEnv struct {
	cfg      config
	log      *slog.Logger
	start    time.Time // common clock origin for the timestamps in payloads
	runID    uint64
	progress atomic.Int64 // unique deliveries of this run, all subscribers together
}

func (e *runEnv) clientID(role string, i int) string {
	return fmt.Sprintf("rb-%x-%s-%d", e.runID&0xffffffffff, role, i)
}

func (e *runEnv) since(t time.Time) time.Duration {
	if t.IsZero() {
		return 0
	}
	return t.Sub(e.start)
}

// connectAll opens n clients, at most 16 handshakes at a time.
func connectAll(ctx context.Context, env *runEnv, role string, n int, onMsg func(i int) func(string, []byte)) ([]client, error) {
	clients := make([]client, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range n {
		g.Go(func() error {
			addr := env.cfg.addr
			if role == "sub" && env.cfg.subAddr != "" {
				addr = env.cfg.subAddr // subscribers on another cluster node
			}
			o := dialOpts{
				addr:     addr,
				proto:    env.cfg.proto,
				clientID: env.clientID(role, i),
				username: env.cfg.username,
				password: env.cfg.password,
				timeout:  env.cfg.connectTimeout,
				log:      env.log,
			}
			if onMsg != nil {
				o.onMsg = onMsg(i)
			}
			c, err := dial(gctx, o)
			if err != nil {
				return fmt.Errorf("%s %d: %w", role, i, err)
			}
			clients[i] = c
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		closeAll(clients)
		return nil, err
	}
	return clients, nil
}

func closeAll(cs []client) {
	for _, c := range cs {
		if c != nil {
			c.Close()
		}
	}
}

// runPublishers runs one publishLoop per job concurrently.
func runPublishers(ctx context.Context, env *runEnv, pubs []client, jobs []pubJob) ([]pubStats, error) {
	stats := make([]pubStats, len(jobs))
	g, gctx := errgroup.WithContext(ctx)
	for i, job := range jobs {
		g.Go(func() error {
			st, err := publishLoop(gctx, env, pubs[i], job)
			stats[i] = st
			return err
		})
	}
	err := g.Wait()
	return stats, err
}

type pubTotals struct {
	sent, acked       int64
	firstSend         time.Time
	lastAck           time.Time
	ackLat            []int64
	publishPerSecond  float64
	publishElapsedSec float64
}

func totals(stats []pubStats) pubTotals {
	var t pubTotals
	for _, s := range stats {
		t.sent += s.sent
		t.acked += s.acked
		if !s.firstSend.IsZero() && (t.firstSend.IsZero() || s.firstSend.Before(t.firstSend)) {
			t.firstSend = s.firstSend
		}
		if s.lastAck.After(t.lastAck) {
			t.lastAck = s.lastAck
		}
		if s.ackLat != nil {
			t.ackLat = append(t.ackLat, s.ackLat.vals...)
		}
	}
	if el := t.lastAck.Sub(t.firstSend).Seconds(); el > 0 && !t.firstSend.IsZero() {
		t.publishElapsedSec = el
		t.publishPerSecond = float64(t.acked) / el
	}
	return t
}

// runPubSub is fanin, fanout and pairs: nPubs publishers, subscriber s on
// filter(s), publisher p publishing to topic(p); each message reaches
// perMsg subscribers.
func runPubSub(ctx context.Context, env *runEnv, nPubs, nSubs, perMsg int, filter func(s int) string, topic func(p int) string) (result, error) {
	cfg := env.cfg
	res := newResult(cfg, nPubs, nSubs)

	perSubSamples := max(cfg.maxSamples/nSubs, 10000)
	recs := make([]*recorder, nSubs)
	for i := range recs {
		recs[i] = newRecorder(env.start, env.runID, &env.progress, perSubSamples, uint64(i)+1000, false)
	}
	subs, err := connectAll(ctx, env, "sub", nSubs, func(i int) func(string, []byte) { return recs[i].observe })
	if err != nil {
		return res, fmt.Errorf("connecting subscribers: %w", err)
	}
	defer closeAll(subs)
	for i, s := range subs {
		if err := s.Subscribe(ctx, []string{filter(i)}, cfg.qos); err != nil {
			return res, fmt.Errorf("subscriber %d: %w", i, err)
		}
	}
	pubs, err := connectAll(ctx, env, "pub", nPubs, nil)
	if err != nil {
		return res, fmt.Errorf("connecting publishers: %w", err)
	}
	defer closeAll(pubs)

	maxLag := int64(cfg.maxLag)
	if maxLag < 0 { // auto: as many deliveries outstanding as the publishers' windows hold
		maxLag = int64(cfg.window) * int64(nPubs) * int64(perMsg)
	}
	res.MaxLag = maxLag
	g := newGate(maxLag, int64(perMsg), cfg.stall, &env.progress)

	var interval time.Duration
	if cfg.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(nPubs) / cfg.rate)
	}
	stopAt := time.Now().Add(cfg.duration)
	jobs := make([]pubJob, nPubs)
	for p := range jobs {
		t := topic(p)
		jobs[p] = pubJob{
			pub:      uint32(p),
			n:        cfg.count,
			topic:    func(int) string { return t },
			seq:      func(i int) uint32 { return uint32(i) },
			qos:      cfg.qos,
			stopAt:   stopAt,
			interval: interval,
			window:   cfg.window,
			gate:     g,
		}
	}
	env.log.Debug("publishing", "pubs", nPubs, "subs", nSubs, "per_pub", cfg.count)
	cpu := startCPU(cfg.brokerPID)
	stats, pubErr := runPublishers(ctx, env, pubs, jobs)
	pt := totals(stats)
	expected := pt.sent * int64(perMsg)
	waitDeliveries(ctx, &env.progress, expected, cfg.drain)
	cpuUsed, cpuErr := cpu.stop()

	var lat []int64
	var lastRecv time.Duration
	for _, r := range recs {
		s := r.snapshot()
		res.Delivered += s.unique
		res.Duplicates += s.dups
		res.Foreign += s.foreign
		if cfg.qos == 0 {
			// QoS 1 publishes are sent from concurrent goroutines
			// (client.go): their order is not defined.
			res.Reordered += s.reordered
		}
		lat = append(lat, s.lat...)
		lastRecv = max(lastRecv, s.lastRecv)
	}
	res.Sent, res.Acked = pt.sent, pt.acked
	res.Expected = expected
	res.Lost = max(expected-res.Delivered, 0)
	if expected > 0 {
		res.DeliveredRatio = float64(res.Delivered) / float64(expected)
	}
	if el := (lastRecv - env.since(pt.firstSend)).Seconds(); el > 0 && !pt.firstSend.IsZero() {
		res.ElapsedSec = el
		res.MsgsPerSec = float64(res.Delivered) / el
	}
	res.PublishPerSec = pt.publishPerSecond
	setCPU(&res, cpuUsed, cpuErr, res.Delivered)
	res.Latency = summarize(lat)
	res.AckLatency = summarize(pt.ackLat)
	if g != nil {
		res.GateStalls = g.stalls.Load()
		res.WrittenOff = g.writtenOff.Load()
	}
	if pubErr != nil {
		return res, fmt.Errorf("publishing: %w", pubErr)
	}
	return res, nil
}

func runFanin(ctx context.Context, env *runEnv) (result, error) {
	return runPubSub(ctx, env, env.cfg.pubs, env.cfg.subs, env.cfg.subs, func(int) string { return "bench/#" },
		func(p int) string { return "bench/" + strconv.Itoa(p) + "/x" })
}

func runFanout(ctx context.Context, env *runEnv) (result, error) {
	return runPubSub(ctx, env, env.cfg.pubs, env.cfg.subs, env.cfg.subs, func(int) string { return "bench/fanout" },
		func(int) string { return "bench/fanout" })
}

// runPairs is publisher/subscriber pairs: subscriber i receives only what
// publisher i publishes to bench/pair/<i>.
func runPairs(ctx context.Context, env *runEnv) (result, error) {
	topic := func(i int) string { return "bench/pair/" + strconv.Itoa(i) }
	return runPubSub(ctx, env, env.cfg.pubs, env.cfg.pubs, 1, topic, topic)
}

func retainedTopic(i int) string { return "bench/retained/" + strconv.Itoa(i) }

// retainedJobs splits k retained topics over len(pubs) publishers.
func retainedJobs(env *runEnv, nPubs, k int, empty bool, stopAt time.Time) []pubJob {
	jobs := make([]pubJob, nPubs)
	for p := range jobs {
		lo, hi := p*k/nPubs, (p+1)*k/nPubs
		jobs[p] = pubJob{
			pub:    uint32(p),
			n:      hi - lo,
			topic:  func(i int) string { return retainedTopic(lo + i) },
			seq:    func(i int) uint32 { return uint32(lo + i) },
			retain: true,
			qos:    env.cfg.qos,
			empty:  empty,
			stopAt: stopAt,
			window: env.cfg.window,
		}
	}
	return jobs
}

// runRetained publishes k retained messages on distinct topics, then (with
// -verify-retained) counts what a fresh subscriber gets back, then (with
// -clean-retained) clears them again so later runs start empty.
func runRetained(ctx context.Context, env *runEnv) (result, error) {
	cfg := env.cfg
	nPubs, k := cfg.pubs, cfg.count
	res := newResult(cfg, nPubs, 0)
	pubs, err := connectAll(ctx, env, "pub", nPubs, nil)
	if err != nil {
		return res, fmt.Errorf("connecting publishers: %w", err)
	}
	defer closeAll(pubs)

	cpu := startCPU(cfg.brokerPID)
	stats, pubErr := runPublishers(ctx, env, pubs, retainedJobs(env, nPubs, k, false, time.Now().Add(cfg.duration)))
	pt := totals(stats)
	cpuUsed, cpuErr := cpu.stop()
	setCPU(&res, cpuUsed, cpuErr, pt.acked)
	res.Sent, res.Acked = pt.sent, pt.acked
	res.ElapsedSec = pt.publishElapsedSec
	res.MsgsPerSec = pt.publishPerSecond
	res.PublishPerSec = pt.publishPerSecond
	res.AckLatency = summarize(pt.ackLat)
	res.Latency = res.AckLatency // for retained, latency is publish → PUBACK
	if pubErr != nil {
		return res, fmt.Errorf("publishing retained: %w", pubErr)
	}

	// The topics that were set: publisher p wrote lo_p .. lo_p+sent_p-1.
	var topics []string
	for p, job := range retainedJobs(env, nPubs, k, false, time.Time{}) {
		for i := range int(stats[p].sent) {
			topics = append(topics, job.topic(i))
		}
	}
	res.Expected = pt.acked
	res.RetainedExpected = pt.acked
	mode := cfg.verifyRetained
	if mode == "wildcard" || mode == "both" {
		batches := []subBatch{{filters: []string{"bench/retained/#"}, want: len(topics)}}
		s, fetch, err := fetchRetained(ctx, env, "wild", batches, cfg.drain)
		if err != nil {
			return res, fmt.Errorf("retained check with bench/retained/#: %w", err)
		}
		res.RetainedWildcard = s.unique
		res.RetainedFetchSec = fetch.Seconds()
		res.Foreign = s.foreign
		res.Duplicates += s.dups
		res.Delivered = s.unique
	}
	if mode == "exact" || mode == "both" {
		var batches []subBatch
		for lo := 0; lo < len(topics); lo += cfg.verifyBatch {
			b := topics[lo:min(lo+cfg.verifyBatch, len(topics))]
			batches = append(batches, subBatch{filters: b, want: len(b)})
		}
		s, _, err := fetchRetained(ctx, env, "exact", batches, min(cfg.drain, time.Second))
		if err != nil {
			return res, fmt.Errorf("retained check by exact topics: %w", err)
		}
		res.RetainedStored = s.unique
		res.Delivered = s.unique
		res.Duplicates += s.dups
	}
	if mode != "off" {
		res.Lost = max(pt.acked-res.Delivered, 0)
		if pt.acked > 0 {
			res.DeliveredRatio = float64(res.Delivered) / float64(pt.acked)
		}
	}

	if cfg.cleanRetained && pt.sent > 0 {
		// Clear every topic we may have set, acked or not. Not timed.
		jobs := retainedJobs(env, nPubs, k, true, time.Now().Add(cfg.duration+cfg.drain))
		for p := range jobs {
			jobs[p].n = int(stats[p].sent)
		}
		if _, err := runPublishers(ctx, env, pubs, jobs); err != nil {
			return res, fmt.Errorf("clearing retained messages: %w", err)
		}
	}
	return res, nil
}

// subBatch is one SUBSCRIBE of a retained check and how many of this run's
// retained messages it should bring.
type subBatch struct {
	filters []string
	want    int
}

// fetchRetained connects a fresh subscriber and subscribes to each batch of
// filters in turn, waiting after each until its retained messages are in or
// stop arriving (idle without a new one). It returns what arrived and the
// time from the first SUBSCRIBE to the last message.
func fetchRetained(ctx context.Context, env *runEnv, role string, batches []subBatch, idle time.Duration) (snapshot, time.Duration, error) {
	var progress atomic.Int64
	rec := newRecorder(env.start, env.runID, &progress, env.cfg.maxSamples, 7, false)
	subs, err := connectAll(ctx, env, role, 1, func(int) func(string, []byte) { return rec.observe })
	if err != nil {
		return snapshot{}, 0, err
	}
	defer closeAll(subs)
	began := time.Now()
	var want int64
	for _, b := range batches {
		if err := subs[0].Subscribe(ctx, b.filters, env.cfg.qos); err != nil {
			return rec.snapshot(), 0, err
		}
		want += int64(b.want)
		waitDeliveries(ctx, &progress, want, idle)
	}
	s := rec.snapshot()
	var fetch time.Duration
	if s.lastRecv > 0 {
		fetch = s.lastRecv - env.since(began)
	}
	return s, fetch, nil
}

func setCPU(res *result, used time.Duration, err error, msgs int64) {
	if err != nil {
		res.CPUError = err.Error()
		return
	}
	res.BrokerCPUSec = used.Seconds()
	if msgs > 0 {
		res.BrokerCPUUsPerMsg = float64(used.Microseconds()) / float64(msgs)
	}
}
