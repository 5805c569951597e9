package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestPayloadRoundTrip(t *testing.T) {
	buf := make([]byte, headerSize+8)
	want := stamp{sentNS: 123456789, runID: 0xdeadbeefcafe, pub: 7, seq: 4242}
	encodePayload(buf, want)
	got, err := decodePayload(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if _, err := decodePayload(buf[:headerSize-1]); err == nil {
		t.Fatal("short payload decoded without error")
	}
}

func TestPercentileNearestRank(t *testing.T) {
	v := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, c := range []struct {
		p    float64
		want int64
	}{{50, 5}, {90, 9}, {99, 10}, {100, 10}, {0, 1}} {
		if got := percentile(v, c.p); got != c.want {
			t.Errorf("p%.0f = %d, want %d", c.p, got, c.want)
		}
	}
	if percentile(nil, 50) != 0 {
		t.Error("percentile of nothing should be 0")
	}
}

func TestRecorderCountsUniqueDuplicatesForeign(t *testing.T) {
	var progress atomic.Int64
	start := time.Now()
	r := newRecorder(start, 42, &progress, 1000, 1, true)
	msg := func(run uint64, pub, seq uint32) []byte {
		b := make([]byte, headerSize)
		encodePayload(b, stamp{sentNS: int64(time.Since(start)), runID: run, pub: pub, seq: seq})
		return b
	}
	r.observe("a", msg(42, 0, 1))
	r.observe("a", msg(42, 0, 1)) // duplicate
	r.observe("b", msg(42, 1, 1))
	r.observe("c", msg(42, 0, 200))
	r.observe("x", msg(7, 0, 2)) // other run
	r.observe("y", []byte("short"))
	s := r.snapshot()
	if s.unique != 3 || s.dups != 1 || s.foreign != 2 || s.received != 4 || s.topics != 3 {
		t.Fatalf("snapshot %+v", s)
	}
	if progress.Load() != 3 {
		t.Fatalf("progress %d, want 3", progress.Load())
	}
}

func TestSamplerIsBounded(t *testing.T) {
	s := newSampler(100, 1)
	for i := range 10000 {
		s.add(int64(i))
	}
	if len(s.vals) != 100 || s.seen != 10000 {
		t.Fatalf("kept %d of %d", len(s.vals), s.seen)
	}
}

func TestGateWritesOffAfterStall(t *testing.T) {
	var done atomic.Int64
	g := newGate(2, 1, 20*time.Millisecond, &done)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 2 {
		if err := g.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing is delivered: the third acquire must not block forever.
	if err := g.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if g.stalls.Load() != 1 || g.writtenOff.Load() != 2 {
		t.Fatalf("stalls %d written off %d", g.stalls.Load(), g.writtenOff.Load())
	}
	if newGate(0, 1, time.Second, &done) != nil {
		t.Fatal("limit 0 should disable the gate")
	}
}

func TestLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:1883": true, "localhost:1883": true, "[::1]:1883": true,
		"10.0.0.1:1883": false, "example.com:1883": false, "nonsense": false,
	} {
		if err := checkLoopback(addr); (err == nil) != ok {
			t.Errorf("checkLoopback(%q) = %v", addr, err)
		}
	}
}
