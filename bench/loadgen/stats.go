package main

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Payload layout (big endian), the rest of the payload is filler:
//
//	[0:8)   send time, nanoseconds since the run's common start
//	[8:16)  run id (messages of other runs, e.g. old retained ones, are ignored)
//	[16:20) publisher index
//	[20:24) sequence number within the publisher
const headerSize = 24

var errShortPayload = errors.New("payload shorter than the benchmark header")

type stamp struct {
	sentNS int64
	runID  uint64
	pub    uint32
	seq    uint32
}

func encodePayload(buf []byte, s stamp) {
	binary.BigEndian.PutUint64(buf[0:8], uint64(s.sentNS))
	binary.BigEndian.PutUint64(buf[8:16], s.runID)
	binary.BigEndian.PutUint32(buf[16:20], s.pub)
	binary.BigEndian.PutUint32(buf[20:24], s.seq)
}

func decodePayload(buf []byte) (stamp, error) {
	if len(buf) < headerSize {
		return stamp{}, errShortPayload
	}
	return stamp{
		sentNS: int64(binary.BigEndian.Uint64(buf[0:8])),
		runID:  binary.BigEndian.Uint64(buf[8:16]),
		pub:    binary.BigEndian.Uint32(buf[16:20]),
		seq:    binary.BigEndian.Uint32(buf[20:24]),
	}, nil
}

// bitset is a growable set of sequence numbers.
type bitset []uint64

// add sets bit i and reports whether it was newly set.
func (b *bitset) add(i uint32) bool {
	w := int(i / 64)
	if w >= len(*b) {
		*b = append(*b, make([]uint64, w-len(*b)+1)...)
	}
	m := uint64(1) << (i % 64)
	if (*b)[w]&m != 0 {
		return false
	}
	(*b)[w] |= m
	return true
}

// sampler keeps at most max samples by reservoir sampling, so memory stays
// bounded however long the run is while percentiles stay unbiased.
type sampler struct {
	max  int
	seen int64
	vals []int64
	rng  *rand.Rand
}

func newSampler(maxSamples int, seed uint64) *sampler {
	return &sampler{max: maxSamples, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (s *sampler) add(v int64) {
	s.seen++
	if len(s.vals) < s.max {
		s.vals = append(s.vals, v)
		return
	}
	if j := s.rng.Int64N(s.seen); j < int64(s.max) {
		s.vals[j] = v
	}
}

// recorder counts what one subscriber received. It is fed from the MQTT
// client's receive goroutine and read by the scenario once it is done.
type recorder struct {
	start    time.Time
	runID    uint64
	progress *atomic.Int64 // shared by all subscribers: unique deliveries of this run

	mu        sync.Mutex
	received  int64 // messages of this run, duplicates included
	unique    int64
	dups      int64
	foreign   int64 // messages of other runs or not ours
	reordered int64 // arrived after a later message of the same publisher
	seen      map[uint32]*bitset
	last      map[uint32]uint32 // highest sequence number seen, per publisher
	lat       *sampler
	firstRecv time.Duration
	lastRecv  time.Duration
	topics    map[string]struct{} // only when trackTopics
}

func newRecorder(start time.Time, runID uint64, progress *atomic.Int64, maxSamples int, seed uint64, trackTopics bool) *recorder {
	r := &recorder{
		start:    start,
		runID:    runID,
		progress: progress,
		seen:     make(map[uint32]*bitset),
		last:     make(map[uint32]uint32),
		lat:      newSampler(maxSamples, seed),
	}
	if trackTopics {
		r.topics = make(map[string]struct{})
	}
	return r
}

func (r *recorder) observe(topic string, payload []byte) {
	now := time.Since(r.start)
	st, err := decodePayload(payload)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || st.runID != r.runID {
		r.foreign++
		return
	}
	r.received++
	bs := r.seen[st.pub]
	if bs == nil {
		bs = new(bitset)
		r.seen[st.pub] = bs
	}
	if !bs.add(st.seq) {
		r.dups++
		return
	}
	r.unique++
	if last, ok := r.last[st.pub]; ok && st.seq < last {
		r.reordered++
	} else {
		r.last[st.pub] = st.seq
	}
	if r.firstRecv == 0 {
		r.firstRecv = now
	}
	r.lastRecv = now
	r.lat.add(int64(now) - st.sentNS)
	if r.topics != nil {
		r.topics[topic] = struct{}{}
	}
	r.progress.Add(1)
}

// snapshot is a consistent copy of a recorder's counters.
type snapshot struct {
	received, unique, dups, foreign int64
	reordered                       int64
	firstRecv, lastRecv             time.Duration
	lat                             []int64
	topics                          int
}

func (r *recorder) snapshot() snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return snapshot{
		received:  r.received,
		unique:    r.unique,
		dups:      r.dups,
		foreign:   r.foreign,
		reordered: r.reordered,
		firstRecv: r.firstRecv,
		lastRecv:  r.lastRecv,
		lat:       slices.Clone(r.lat.vals),
		topics:    len(r.topics),
	}
}

// percentile returns the p-th percentile (0..100) of sorted values by the
// nearest-rank method, or 0 for no values.
func percentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted)) + 0.999999999)
	rank = max(rank, 1)
	rank = min(rank, len(sorted))
	return sorted[rank-1]
}

// latencySummary holds milliseconds.
type latencySummary struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P90     float64 `json:"p90_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
	Mean    float64 `json:"mean_ms"`
}

func summarize(vals []int64) latencySummary {
	if len(vals) == 0 {
		return latencySummary{}
	}
	s := slices.Clone(vals)
	slices.Sort(s)
	var sum float64
	for _, v := range s {
		sum += float64(v)
	}
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	return latencySummary{
		Samples: len(s),
		P50:     ms(percentile(s, 50)),
		P90:     ms(percentile(s, 90)),
		P99:     ms(percentile(s, 99)),
		Max:     ms(s[len(s)-1]),
		Mean:    sum / float64(len(s)) / 1e6,
	}
}
