package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// gate throttles publishers end to end: a publish may start only while fewer
// than limit deliveries are outstanding (published but not yet received by
// the subscribers). This keeps QoS 0 publishers from simply overrunning the
// broker's per-client queues, so the run measures what the broker delivers,
// not what it drops. If nothing arrives for stall while publishers wait, the
// outstanding deliveries are written off (counted in stalls) so a lossy
// broker cannot hang the run; the loss then shows in the delivered ratio.
type gate struct {
	limit      int64
	perMsg     int64 // deliveries per published message (number of subscribers)
	stall      time.Duration
	done       *atomic.Int64 // unique deliveries observed so far
	sent       atomic.Int64  // deliveries owed for messages published so far
	writtenOff atomic.Int64
	stalls     atomic.Int64
}

func newGate(limit, perMsg int64, stall time.Duration, done *atomic.Int64) *gate {
	if limit <= 0 {
		return nil
	}
	return &gate{limit: max(limit, perMsg), perMsg: perMsg, stall: stall, done: done}
}

func (g *gate) acquire(ctx context.Context) error {
	if g == nil {
		return nil
	}
	var waitingSince time.Time
	lastDone := g.done.Load()
	for {
		d := g.done.Load()
		out := g.sent.Load() - d - g.writtenOff.Load()
		if out+g.perMsg <= g.limit || out <= 0 {
			g.sent.Add(g.perMsg)
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("waiting for deliveries to catch up: %w", err)
		}
		now := time.Now()
		switch {
		case d != lastDone || waitingSince.IsZero():
			lastDone, waitingSince = d, now
		case now.Sub(waitingSince) > g.stall:
			g.writtenOff.Add(out)
			g.stalls.Add(1)
			waitingSince = time.Time{}
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// pubJob is one publisher's share of a scenario.
type pubJob struct {
	pub      uint32
	n        int                // messages to publish at most
	topic    func(i int) string // topic of the i-th message
	seq      func(i int) uint32 // sequence number written into the i-th payload
	retain   bool
	qos      byte
	empty    bool          // publish empty payloads (clearing retained messages)
	stopAt   time.Time     // stop publishing at this time even if n is not reached
	interval time.Duration // pacing between messages; 0 = as fast as the window allows
	window   int           // messages awaiting their ack at most
	gate     *gate
}

type pubStats struct {
	sent, acked int64
	firstSend   time.Time
	lastAck     time.Time
	ackLat      *sampler // publish → PUBACK, nanoseconds (QoS 1 only)
}

type pending struct {
	ch   <-chan ackResult
	sent time.Time
}

// publishLoop publishes job.n messages (or until job.stopAt / ctx ends),
// keeping at most job.window unacknowledged, then waits for all acks.
func publishLoop(ctx context.Context, env *runEnv, cl client, job pubJob) (pubStats, error) {
	st := pubStats{ackLat: newSampler(env.cfg.maxSamples, uint64(job.pub)+1)}
	queue := make([]pending, 0, job.window)
	wait := func(p pending) error {
		select {
		case r := <-p.ch:
			if r.err != nil {
				return r.err
			}
			st.acked++
			st.ackLat.add(int64(r.at.Sub(p.sent)))
			if r.at.After(st.lastAck) {
				st.lastAck = r.at
			}
			return nil
		case <-ctx.Done():
			return fmt.Errorf("waiting for ack: %w", ctx.Err())
		}
	}
	size := env.cfg.size
	if job.empty {
		size = 0
	}
	var next time.Time
	for i := 0; i < job.n; i++ {
		if ctx.Err() != nil || time.Now().After(job.stopAt) {
			break
		}
		if job.interval > 0 {
			if next.IsZero() {
				next = time.Now()
			}
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			next = next.Add(job.interval)
		}
		if err := job.gate.acquire(ctx); err != nil {
			break // run deadline: stop publishing, report what we have
		}
		if len(queue) == job.window {
			if err := wait(queue[0]); err != nil {
				return st, fmt.Errorf("publisher %d: %w", job.pub, err)
			}
			queue = queue[1:]
		}
		buf := make([]byte, size)
		now := time.Now()
		if !job.empty {
			encodePayload(buf, stamp{
				sentNS: int64(now.Sub(env.start)),
				runID:  env.runID,
				pub:    job.pub,
				seq:    job.seq(i),
			})
		}
		ch, err := cl.Publish(ctx, job.topic(i), job.qos, job.retain, buf)
		if err != nil {
			return st, fmt.Errorf("publisher %d: %w", job.pub, err)
		}
		st.sent++
		if st.firstSend.IsZero() {
			st.firstSend = now
		}
		if ch == nil {
			st.acked++
			st.lastAck = time.Now()
			continue
		}
		queue = append(queue, pending{ch: ch, sent: now})
	}
	for _, p := range queue {
		if err := wait(p); err != nil {
			return st, fmt.Errorf("publisher %d: %w", job.pub, err)
		}
	}
	return st, nil
}

// waitDeliveries waits until progress reaches want, nothing has arrived for
// idle, or ctx ends.
func waitDeliveries(ctx context.Context, progress *atomic.Int64, want int64, idle time.Duration) {
	last := progress.Load()
	lastChange := time.Now()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		cur := progress.Load()
		if cur >= want {
			return
		}
		if cur != last {
			last, lastChange = cur, time.Now()
		} else if time.Since(lastChange) > idle {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
