package backup

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"
)

// Kinds of backup, and the target of the node's own backup dir, as the
// health records (and /metrics labels) name them.
const (
	KindNodeBackup = "node_backup" // physical backups of the data dir (nodebackup)
	KindDataExport = "data_export" // logical exports (Export)
	TargetLocal    = "local"       // <data_dir>/backup on the node's own disk
)

// TargetStatus is the health of one kind of backup written to one
// target: what an operator alerts on ("no success in two intervals",
// "the last run failed").
type TargetStatus struct {
	Kind   string `json:"kind"`   // KindNodeBackup | KindDataExport
	Target string `json:"target"` // TargetLocal, or a remote target without credentials
	// Interval of the scheduled runs to this target; 0: none scheduled.
	Interval    time.Duration `json:"interval"`
	LastSuccess time.Time     `json:"last_success,omitzero"`
	// Duration and Size are those of the last success. A success found
	// on disk at start (Seed) has a size but no duration.
	Duration    time.Duration `json:"duration"`
	Size        int64         `json:"size"`
	LastFailure time.Time     `json:"last_failure,omitzero"`
	LastError   string        `json:"last_error,omitempty"`
	Successes   uint64        `json:"successes"` // since start
	Failures    uint64        `json:"failures"`  // since start
}

// Health keeps the TargetStatus of every (kind, target) of one node, fed
// by every backup and export it runs, scheduled or asked for. It is safe
// for concurrent use; the zero value is not: use NewHealth.
type Health struct {
	mu sync.Mutex
	m  map[healthKey]*TargetStatus
}

type healthKey struct{ kind, target string }

// NewHealth returns an empty Health.
func NewHealth() *Health { return &Health{m: map[healthKey]*TargetStatus{}} }

func (h *Health) get(kind, target string) *TargetStatus {
	k := healthKey{kind, target}
	st := h.m[k]
	if st == nil {
		st = &TargetStatus{Kind: kind, Target: target}
		h.m[k] = st
	}
	return st
}

// Declare makes (kind, target) known before its first run, with the
// interval of its schedule (0: none), so its status shows from start.
func (h *Health) Declare(kind, target string, interval time.Duration) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.get(kind, target).Interval = interval
}

// Seed records a success found at start (the newest backup in the
// target), unless one was recorded since: the status then survives a
// restart. It counts no success.
func (h *Health) Seed(kind, target string, at time.Time, size int64) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.get(kind, target)
	if at.After(st.LastSuccess) {
		st.LastSuccess, st.Size, st.Duration = at.UTC(), size, 0
	}
}

// Success records a run that wrote a backup of size bytes, finished at.
func (h *Health) Success(kind, target string, at time.Time, d time.Duration, size int64) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.get(kind, target)
	st.LastSuccess, st.Duration, st.Size = at.UTC(), d, size
	st.Successes++
}

// Failure records a run that failed at, with err as its reason.
func (h *Health) Failure(kind, target string, at time.Time, err error) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.get(kind, target)
	st.LastFailure, st.LastError = at.UTC(), err.Error()
	st.Failures++
}

// Record records the outcome of a run that started at start: a success
// of size bytes, or a failure, unless err says the run never started
// (the request was refused, another run held the lock) or its caller
// gave up: those say nothing of the target's health.
func (h *Health) Record(kind, target string, start time.Time, size int64, err error) {
	now := time.Now()
	switch {
	case err == nil:
		h.Success(kind, target, now, now.Sub(start), size)
	case errors.Is(err, ErrBadRequest), errors.Is(err, ErrFileExists), errors.Is(err, ErrImportInProgress),
		errors.Is(err, context.Canceled):
	default:
		h.Failure(kind, target, now, err)
	}
}

// StatusByTarget returns a copy of every status, by kind then target.
func (h *Health) StatusByTarget() []TargetStatus {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	out := make([]TargetStatus, 0, len(h.m))
	for _, st := range h.m {
		out = append(out, *st)
	}
	h.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Target < out[j].Target
	})
	return out
}
