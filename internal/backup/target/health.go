package target

import (
	"sort"
	"sync"
	"time"
)

// Kinds of what is written to a target.
const (
	KindNodeBackup = "node-backup"
	KindDataExport = "data-export"
)

// Status is the record of one kind of object written to one target:
// what `roost ctl status`, `ctl backup list`, GET /api/v1/backups and
// the metrics show. Every run counts, scheduled or on request. Times are
// UTC; zero when it never happened since the node started.
type Status struct {
	Kind   string `json:"kind"`   // node-backup | data-export
	Target string `json:"target"` // the target's String(): a directory or s3://bucket/prefix
	// LastSuccess and what it wrote: object name, bytes, how long it took.
	LastSuccess    time.Time `json:"last_success,omitzero"`
	LastName       string    `json:"last_name,omitempty"`
	LastSize       int64     `json:"last_size,omitempty"`
	LastDurationMS int64     `json:"last_duration_ms,omitempty"`
	// LastFailure and its reason (the error, which names the target and
	// the S3 error code; never a credential).
	LastFailure time.Time `json:"last_failure,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Successes   int64     `json:"successes"`
	Failures    int64     `json:"failures"`
}

// Health keeps a Status per (kind, target) for the life of the process.
// It is safe for concurrent use.
type Health struct {
	mu sync.Mutex
	m  map[[2]string]*Status
}

// NewHealth returns an empty Health.
func NewHealth() *Health { return &Health{m: map[[2]string]*Status{}} }

// Success records a run that wrote name (size bytes) to target.
func (h *Health) Success(kind, target, name string, size int64, took time.Duration) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.entry(kind, target)
	s.LastSuccess, s.LastName, s.LastSize, s.LastDurationMS = time.Now().UTC(), name, size, took.Milliseconds()
	s.Successes++
}

// Failure records a run that failed with err.
func (h *Health) Failure(kind, target string, err error) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.entry(kind, target)
	s.LastFailure, s.LastError = time.Now().UTC(), err.Error()
	s.Failures++
}

func (h *Health) entry(kind, target string) *Status {
	k := [2]string{kind, target}
	s := h.m[k]
	if s == nil {
		s = &Status{Kind: kind, Target: target}
		h.m[k] = s
	}
	return s
}

// Snapshot returns a copy of every record, by kind then target (the
// accessor for a metrics exporter).
func (h *Health) Snapshot() []Status {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Status, 0, len(h.m))
	for _, s := range h.m {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Target < out[j].Target
	})
	return out
}

// Of returns the records of one kind.
func (h *Health) Of(kind string) []Status {
	out := []Status{}
	for _, s := range h.Snapshot() {
		if s.Kind == kind {
			out = append(out, s)
		}
	}
	return out
}

// Ensure makes a record for (kind, target) exist, so that a configured
// target shows before its first run.
func (h *Health) Ensure(kind, target string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.entry(kind, target)
}
