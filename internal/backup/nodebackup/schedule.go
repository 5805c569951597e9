package nodebackup

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/roostmq/roost/internal/backup"
	"github.com/roostmq/roost/internal/backup/target"
)

// ScheduleStatus is what `roost ctl status` and GET /api/v1/backups show
// of the scheduled backups.
type ScheduleStatus struct {
	Enabled     bool      `json:"enabled"`
	Interval    string    `json:"interval"`
	Keep        int       `json:"keep"`
	Target      string    `json:"target"` // where they go: a directory or s3://bucket/prefix
	NextAt      time.Time `json:"next_at,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastFile    string    `json:"last_file,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Status returns the state of the scheduled backups.
func (m *Manager) Status() ScheduleStatus {
	m.smu.Lock()
	defer m.smu.Unlock()
	return m.sch
}

// RunSchedule makes a backup every Interval until ctx ends, to the
// default target, keeping there the newest Keep scheduled backups of
// this node (backups made on request, and other nodes' in a shared
// bucket, are never deleted). A failure is logged and shown in Status;
// the next try is at the next interval.
func (m *Manager) RunSchedule(ctx context.Context) {
	if m.opts.Interval <= 0 {
		return
	}
	m.log.Info("scheduled backups on", "interval", m.opts.Interval, "keep", m.opts.Keep, "target", m.opts.Target.String())
	t := time.NewTimer(m.opts.Interval)
	defer t.Stop()
	m.setNext(time.Now().Add(m.opts.Interval))
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		res, err := m.Create(ctx, CreateRequest{scheduled: true})
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if err = m.prune(ctx); err != nil {
				// The backup is written, but the run failed: the target grows.
				m.opts.Health.Failure(backup.KindNodeBackup, m.label(m.opts.Target), time.Now(), err)
			}
		}
		m.smu.Lock()
		if err != nil {
			m.sch.LastError, m.sch.LastErrorAt = err.Error(), time.Now().UTC()
			m.log.Error("scheduled backup failed", "err", err)
		} else {
			m.sch.LastSuccess, m.sch.LastFile = time.Now().UTC(), res.Name
		}
		m.smu.Unlock()
		t.Reset(m.opts.Interval)
		m.setNext(time.Now().Add(m.opts.Interval))
	}
}

func (m *Manager) setNext(at time.Time) {
	m.smu.Lock()
	m.sch.NextAt = at.UTC()
	m.smu.Unlock()
}

// ownScheduled reports whether name is a scheduled backup of this node:
// roost-backup-<this node>-<time>-auto.tar.zst[.age], exactly (node n1
// does not own n1-b's).
func (m *Manager) ownScheduled(name string) bool {
	return isScheduledName(name) && m.ownName(name)
}

// ownName reports whether name is a default name of this node's
// backups: roost-backup-<this node>-<time>[-auto].tar.zst[.age].
func (m *Manager) ownName(name string) bool {
	if !strings.HasPrefix(name, namePrefix) || !IsBackupName(name) {
		return false
	}
	rest := strings.TrimSuffix(strings.TrimSuffix(name, agedExt), plainExt)
	rest = strings.TrimSuffix(strings.TrimPrefix(rest, namePrefix), autoSuffix)
	if len(rest) < len(timeLayout)+1 {
		return false
	}
	node, at := rest[:len(rest)-len(timeLayout)-1], rest[len(rest)-len(timeLayout):]
	if _, err := time.Parse(timeLayout, at); err != nil {
		return false
	}
	return node == nameNode(m.opts.Identity().Name)
}

// prune deletes, at the default target, this node's oldest scheduled
// backups beyond Keep; it also clears what unfinished writes of its
// scheduled backups left (S3 uploads, temp files cut off by a crash; the
// one just made is complete, and no other runs meanwhile).
func (m *Manager) prune(ctx context.Context) error {
	if inc, ok := m.opts.Target.(target.Incomplete); ok {
		if names, err := inc.AbortIncomplete(ctx, m.ownScheduled, time.Now()); err != nil {
			m.log.Warn("could not clear unfinished writes", "target", m.opts.Target.String(), "err", err)
		} else if len(names) > 0 {
			m.log.Info("cleared the unfinished writes of scheduled backups", "target", m.opts.Target.String(), "names", names)
		}
	}
	if m.opts.Keep <= 0 {
		return nil
	}
	all, err := m.list(ctx, m.opts.Target)
	if err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	var sched []Info
	for _, b := range all {
		if m.ownScheduled(b.Name) {
			sched = append(sched, b)
		}
	}
	for len(sched) > m.opts.Keep { // names sort by time: oldest first
		if err := m.opts.Target.Delete(ctx, sched[0].Name); err != nil {
			return fmt.Errorf("retention: %w", err)
		}
		m.log.Info("scheduled backup deleted (backup.keep)", "target", m.opts.Target.String(), "name", sched[0].Name, "keep", m.opts.Keep)
		sched = sched[1:]
	}
	return nil
}
