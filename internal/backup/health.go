package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/roostmq/roost/internal/backup/target"
)

// Kinds of backup, and the target of the node's own backup dir, as the
// health records (and /metrics labels) name them.
const (
	KindNodeBackup = "node_backup" // physical backups of the data dir (nodebackup)
	KindDataExport = "data_export" // logical exports (Export)
	TargetLocal    = "local"       // <data_dir>/backup on the node's own disk
)

// TargetLabel names t in the health records: TargetLocal for the node's
// own backup dir (localDir), else the target's String() (a directory's
// path or s3://bucket/prefix: never a credential).
func TargetLabel(t target.Target, localDir string) string {
	if d, ok := t.(*target.Dir); ok && filepath.Clean(d.Path()) == filepath.Clean(localDir) {
		return TargetLocal
	}
	return t.String()
}

// TargetStatus is the health of one kind of backup written to one
// target: what an operator alerts on ("no success in two intervals",
// "the last run failed") and what `roost ctl status`, `ctl backup list`
// and GET /api/v1/backups show.
type TargetStatus struct {
	Kind   string // KindNodeBackup | KindDataExport
	Target string // TargetLocal, or a remote target without credentials (TargetLabel)
	// Interval of the scheduled runs to this target; 0: none scheduled.
	Interval    time.Duration
	LastSuccess time.Time
	// LastName, Duration and Size are those of the last success. A
	// success found at the target at start (Seed) has a name and size
	// but no duration.
	LastName    string
	Duration    time.Duration
	Size        int64
	LastFailure time.Time
	LastError   string // names the target and, for S3, the error code; never a credential
	Successes   uint64 // since start
	Failures    uint64 // since start
}

// targetStatusJSON is TargetStatus on the wire: the durations as an
// interval text ("1h0m0s") and milliseconds, as the rest of the API.
type targetStatusJSON struct {
	Kind           string    `json:"kind"`
	Target         string    `json:"target"`
	Interval       string    `json:"interval,omitempty"`
	LastSuccess    time.Time `json:"last_success,omitzero"`
	LastName       string    `json:"last_name,omitempty"`
	LastSize       int64     `json:"last_size,omitempty"`
	LastDurationMS int64     `json:"last_duration_ms,omitempty"`
	LastFailure    time.Time `json:"last_failure,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
	Successes      uint64    `json:"successes"`
	Failures       uint64    `json:"failures"`
}

func (s TargetStatus) MarshalJSON() ([]byte, error) {
	o := targetStatusJSON{Kind: s.Kind, Target: s.Target, LastSuccess: s.LastSuccess, LastName: s.LastName, LastSize: s.Size,
		LastDurationMS: s.Duration.Milliseconds(), LastFailure: s.LastFailure, LastError: s.LastError,
		Successes: s.Successes, Failures: s.Failures}
	if s.Interval > 0 {
		o.Interval = s.Interval.String()
	}
	return json.Marshal(o)
}

func (s *TargetStatus) UnmarshalJSON(b []byte) error {
	var o targetStatusJSON
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	var iv time.Duration
	if o.Interval != "" {
		var err error
		if iv, err = time.ParseDuration(o.Interval); err != nil {
			return fmt.Errorf("target status interval: %w", err)
		}
	}
	*s = TargetStatus{Kind: o.Kind, Target: o.Target, Interval: iv, LastSuccess: o.LastSuccess, LastName: o.LastName,
		Size: o.LastSize, Duration: time.Duration(o.LastDurationMS) * time.Millisecond, LastFailure: o.LastFailure,
		LastError: o.LastError, Successes: o.Successes, Failures: o.Failures}
	return nil
}

// Health keeps the TargetStatus of every (kind, target) of one node, fed
// by every backup and export it runs, to any target, scheduled or asked
// for. It is safe for concurrent use; the zero value is not: use
// NewHealth. A nil *Health records nothing.
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

// Seed records a success found at the target (the newest backup there,
// at start), unless a newer one was recorded: the status then survives
// a restart. It counts no success.
func (h *Health) Seed(kind, target string, at time.Time, name string, size int64) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.get(kind, target)
	if at.After(st.LastSuccess) {
		st.LastSuccess, st.LastName, st.Size, st.Duration = at.UTC(), name, size, 0
	}
}

// Success records a run that wrote name, of size bytes, finished at
// after d.
func (h *Health) Success(kind, target string, at time.Time, d time.Duration, name string, size int64) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.get(kind, target)
	st.LastSuccess, st.Duration, st.LastName, st.Size = at.UTC(), d, name, size
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
// that wrote name (size bytes), or a failure, unless err says the run
// never started (the request was refused, another run held the lock) or
// its caller gave up (ctx ended): those say nothing of the target's
// health.
func (h *Health) Record(ctx context.Context, kind, target string, start time.Time, name string, size int64, err error) {
	now := time.Now()
	switch {
	case err == nil:
		h.Success(kind, target, now, now.Sub(start), name, size)
	case errors.Is(err, ErrBadRequest), errors.Is(err, ErrFileExists), errors.Is(err, ErrImportInProgress),
		errors.Is(err, context.Canceled), ctx.Err() != nil:
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

// Of returns the statuses of one kind, by target.
func (h *Health) Of(kind string) []TargetStatus {
	out := []TargetStatus{}
	for _, s := range h.StatusByTarget() {
		if s.Kind == kind {
			out = append(out, s)
		}
	}
	return out
}
