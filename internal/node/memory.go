package node

import (
	"context"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Memory headroom of the Go heap.
//
// `roost start` runs the collector at GOGC=400: a broker allocates per
// message, and at Go's default of 100 the collector costs about a quarter
// of the CPU per message (bench/). But GOGC=400 lets the heap grow to five
// times what is live: a node holding 300 MB of retained messages and rules
// went to 1.6 GB after a large import. So the heap may grow by GOGC's
// factor only up to heapFloor; beyond that, to twice what is live (Go's
// default behaviour). The bound is a soft memory limit that follows the
// live heap; an operator's own GOMEMLIMIT turns this off.
const (
	heapFloor        = 256 << 20
	heapLiveFactor   = 2
	heapTuneInterval = 500 * time.Millisecond
)

// boundHeap keeps the soft memory limit at max(heapFloor, 2 × live heap)
// until ctx ends.
func boundHeap(ctx context.Context) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	set := func() {
		metrics.Read(sample)
		limit := int64(heapFloor)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			if live := int64(sample[0].Value.Uint64()); live*heapLiveFactor > limit {
				limit = live * heapLiveFactor
			}
		}
		debug.SetMemoryLimit(limit)
	}
	set()
	t := time.NewTicker(heapTuneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			debug.SetMemoryLimit(math.MaxInt64)
			return
		case <-t.C:
			set()
		}
	}
}
