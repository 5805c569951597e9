package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/roostmq/roost/internal/backup/target"
)

// Names of exports: roost-export-<UTC time>.json.gz on request,
// roost-export-<UTC time, ms>-auto.json.gz when scheduled (the ms keep
// them in time order by name). Retention deletes only the latter.
const (
	exportTimeLayout    = "20060102T150405Z"
	scheduledTimeLayout = "20060102T150405.000Z"
	scheduledSuffix     = "-auto"
	exportPrefix        = "roost-export-"
)

// ErrNoRemote is a request for the remote target where none is set
// (the API answers it with its own code: clients such as the dashboard
// tell it from other errors).
var ErrNoRemote = fmt.Errorf("%w: backup.target is not set", ErrBadRequest)

var errNoRemoteExports = fmt.Errorf("%w: the exports are in the node's backup dir (list them without remote)", ErrNoRemote)

// ResolveTarget resolves the "to" of an export or node backup request:
// "" is def (backup.target), "local" the node's backup dir, anything else
// (an absolute directory path, s3://bucket/prefix) goes to resolve, and
// with resolve nil is refused. what names the files in the refusal.
func ResolveTarget(to string, def target.Target, dir string, resolve func(string) (target.Target, error), what string) (target.Target, error) {
	switch {
	case to == "":
		return def, nil
	case to == "local":
		return target.NewDir(dir), nil
	case resolve == nil:
		return nil, fmt.Errorf("%w: this node writes %s only to %s", ErrBadRequest, what, def)
	}
	t, err := resolve(to)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return t, nil
}

// IsRemoteTarget reports whether tg is def (backup.target) and not the
// node's backup dir.
func IsRemoteTarget(tg, def target.Target, dir string) bool {
	return TargetLabel(tg, dir) != TargetLocal && tg.String() == def.String()
}

// targetOf resolves an export's "to".
func (m *Manager) targetOf(to string) (target.Target, error) {
	return ResolveTarget(to, m.opts.Target, m.opts.Dir, m.opts.Resolve, "exports")
}

// Target is backup.target (the backup dir when it is not set).
func (m *Manager) Target() target.Target { return m.opts.Target }

// remote is backup.target, for the listing, download and delete of
// remote files; an error when it is the backup dir itself.
func (m *Manager) remote() (target.Target, error) {
	if TargetLabel(m.opts.Target, m.opts.Dir) == TargetLocal {
		return nil, errNoRemoteExports
	}
	return m.opts.Target, nil
}

func (m *Manager) isRemote(tg target.Target) bool {
	return IsRemoteTarget(tg, m.opts.Target, m.opts.Dir)
}

// ObjectPath is where an object of t is: a file path or an s3:// URL.
func ObjectPath(t target.Target, name string) string {
	if d, ok := t.(*target.Dir); ok {
		return filepath.Join(d.Path(), name)
	}
	return t.String() + "/" + name
}

// TargetError maps a target's errors to this package's (ErrFileNotFound,
// ErrFileExists), keeping the target's message.
func TargetError(err error) error {
	switch {
	case errors.Is(err, target.ErrNotFound):
		return fmt.Errorf("%w: %v", ErrFileNotFound, err)
	case errors.Is(err, target.ErrExists):
		return fmt.Errorf("%w: %v", ErrFileExists, err)
	}
	return err
}

// RemoteFiles lists the data files (not node backups) at backup.target.
func (m *Manager) RemoteFiles(ctx context.Context) ([]FileInfo, error) {
	tg, err := m.remote()
	if err != nil {
		return nil, err
	}
	objs, err := tg.List(ctx)
	if err != nil {
		return nil, err
	}
	out := []FileInfo{}
	for _, o := range objs {
		if CheckName(o.Name) != nil || isNodeBackup(o.Name) {
			continue
		}
		out = append(out, FileInfo{Name: o.Name, Size: o.Size, ModifiedAt: o.ModifiedAt})
	}
	return out, nil
}

// OpenRemote streams a data file of backup.target.
func (m *Manager) OpenRemote(ctx context.Context, name string) (io.ReadCloser, FileInfo, error) {
	if err := CheckName(name); err != nil {
		return nil, FileInfo{}, err
	}
	tg, err := m.remote()
	if err != nil {
		return nil, FileInfo{}, err
	}
	rc, o, err := tg.Open(ctx, name)
	if err != nil {
		return nil, FileInfo{}, TargetError(err)
	}
	return rc, FileInfo{Name: name, Size: o.Size, ModifiedAt: o.ModifiedAt}, nil
}

// DeleteRemote deletes a data file of backup.target.
func (m *Manager) DeleteRemote(ctx context.Context, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	tg, err := m.remote()
	if err != nil {
		return err
	}
	return TargetError(tg.Delete(ctx, name))
}

// Fetch reads the export at url (s3://bucket/prefix/name) for one
// import: into a ReceivedFile of the backup dir, not kept (a dry run
// leaves nothing; the import reads the file twice, to validate and to
// stage, so it is not streamed). The caller removes it.
func (m *Manager) Fetch(ctx context.Context, url string) (*ReceivedFile, error) {
	if !target.IsURL(url) {
		return nil, fmt.Errorf("%w: %q is not an s3:// URL", ErrBadRequest, url)
	}
	spec, name, err := target.SplitObject(url)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if err := CheckName(name); err != nil {
		return nil, err
	}
	tg, err := m.targetOf(spec)
	if err != nil {
		return nil, err
	}
	rc, _, err := tg.Open(ctx, name)
	if err != nil {
		return nil, TargetError(err)
	}
	defer rc.Close()
	rf, err := m.Receive(name, rc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return rf, nil
}

// ExportSchedule is the state of the scheduled exports.
type ExportSchedule struct {
	Enabled     bool      `json:"enabled"`
	Interval    string    `json:"interval"`
	Keep        int       `json:"keep"`
	Target      string    `json:"target"`
	NextAt      time.Time `json:"next_at,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastFile    string    `json:"last_file,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// LastSkipped is the last interval this node let pass because it
	// was not the raft leader (the leader exports for the cluster).
	LastSkipped time.Time `json:"last_skipped,omitzero"`
}

// ScheduleStatus returns the state of the scheduled exports.
func (m *Manager) ScheduleStatus() ExportSchedule {
	m.smu.Lock()
	defer m.smu.Unlock()
	return m.sch
}

// isScheduledExport reports whether name is a scheduled export:
// roost-export-<UTC time, ms>-auto.json.gz (or -auto-N.json.gz).
func isScheduledExport(name string) bool {
	rest, ok := strings.CutPrefix(name, exportPrefix)
	if !ok || len(rest) < len(scheduledTimeLayout) || !strings.HasSuffix(rest, ".json.gz") {
		return false
	}
	if _, err := time.Parse(scheduledTimeLayout, rest[:len(scheduledTimeLayout)]); err != nil {
		return false
	}
	rest = strings.TrimSuffix(rest[len(scheduledTimeLayout):], ".json.gz")
	if rest == scheduledSuffix {
		return true
	}
	n, ok := strings.CutPrefix(rest, scheduledSuffix+"-")
	return ok && n != "" && strings.Trim(n, "0123456789") == ""
}

// RunExportSchedule exports the cluster every ExportInterval until ctx
// ends, on the leader only (so a cluster writes one export per interval,
// not one per node), to backup.target, keeping there the newest
// ExportKeep scheduled exports (exports made on request are never
// deleted). A failure is logged and shown; the next try is at the next
// interval.
func (m *Manager) RunExportSchedule(ctx context.Context) {
	iv := m.opts.ExportInterval
	if iv <= 0 {
		return
	}
	m.log.Info("scheduled exports on (made by the raft leader)", "interval", iv, "keep", m.opts.ExportKeep, "target", m.opts.Target.String())
	t := time.NewTimer(iv)
	defer t.Stop()
	m.setNext(time.Now().Add(iv))
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !m.opts.IsLeader() {
			m.smu.Lock()
			m.sch.LastSkipped = time.Now().UTC()
			m.smu.Unlock()
			// The leader's exports count for this node too (its health,
			// the alerts on it): read the newest from a shared target. The
			// node's own backup dir holds none of them: there this node
			// schedules nothing while it follows.
			if label := TargetLabel(m.opts.Target, m.opts.Dir); label == TargetLocal {
				m.opts.Health.Declare(KindDataExport, label, 0)
			} else {
				m.SeedHealth(ctx)
			}
		} else {
			m.opts.Health.Declare(KindDataExport, TargetLabel(m.opts.Target, m.opts.Dir), iv)
			res, err := m.Export(ctx, ExportRequest{scheduled: true})
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				if err = m.pruneExports(ctx); err != nil {
					m.opts.Health.Failure(KindDataExport, TargetLabel(m.opts.Target, m.opts.Dir), time.Now(), err)
				}
			}
			m.smu.Lock()
			if err != nil {
				m.sch.LastError, m.sch.LastErrorAt = err.Error(), time.Now().UTC()
				m.log.Error("scheduled export failed", "err", err)
			} else {
				m.sch.LastSuccess, m.sch.LastFile = time.Now().UTC(), res.Filename
			}
			m.smu.Unlock()
		}
		t.Reset(iv)
		m.setNext(time.Now().Add(iv))
	}
}

// SeedHealth records the newest export at backup.target as the last
// success of the exports there, so that their health (and the alerts on
// it) survive a restart. With scheduled exports only those count (the
// leader makes them for the cluster); else any export.
func (m *Manager) SeedHealth(ctx context.Context) {
	objs, err := m.opts.Target.List(ctx)
	if err != nil {
		m.log.Warn("cannot list the exports at the target for the last export", "target", m.opts.Target.String(), "err", err)
		return
	}
	var newest *target.Object
	for i, o := range objs {
		if CheckName(o.Name) != nil || isNodeBackup(o.Name) || !strings.HasPrefix(o.Name, exportPrefix) ||
			m.opts.ExportInterval > 0 && !isScheduledExport(o.Name) {
			continue
		}
		if newest == nil || o.ModifiedAt.After(newest.ModifiedAt) {
			newest = &objs[i]
		}
	}
	if newest != nil {
		m.opts.Health.Seed(KindDataExport, TargetLabel(m.opts.Target, m.opts.Dir), newest.ModifiedAt, newest.Name, newest.Size)
	}
}

func (m *Manager) setNext(at time.Time) {
	m.smu.Lock()
	m.sch.NextAt = at.UTC()
	m.smu.Unlock()
}

// pruneExports deletes, at backup.target, the oldest scheduled exports
// beyond ExportKeep, and clears the unfinished writes (S3 uploads, temp
// files) of scheduled exports older than one interval (a leader that
// died mid-upload; a newer one may be another leader's, still running).
func (m *Manager) pruneExports(ctx context.Context) error {
	if inc, ok := m.opts.Target.(target.Incomplete); ok {
		if names, err := inc.AbortIncomplete(ctx, isScheduledExport, time.Now().Add(-m.opts.ExportInterval)); err != nil {
			m.log.Warn("could not clear unfinished writes", "target", m.opts.Target.String(), "err", err)
		} else if len(names) > 0 {
			m.log.Info("cleared the unfinished writes of scheduled exports", "target", m.opts.Target.String(), "names", names)
		}
	}
	if m.opts.ExportKeep <= 0 {
		return nil
	}
	objs, err := m.opts.Target.List(ctx)
	if err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	var sched []string
	for _, o := range objs {
		if isScheduledExport(o.Name) {
			sched = append(sched, o.Name) // by name: by time
		}
	}
	for len(sched) > m.opts.ExportKeep {
		if err := m.opts.Target.Delete(ctx, sched[0]); err != nil {
			return fmt.Errorf("retention: %w", err)
		}
		m.log.Info("scheduled export deleted (export.keep)", "target", m.opts.Target.String(), "name", sched[0], "keep", m.opts.ExportKeep)
		sched = sched[1:]
	}
	return nil
}
