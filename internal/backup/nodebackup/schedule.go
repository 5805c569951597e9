package nodebackup

import (
	"context"
	"fmt"
	"time"

	"github.com/roostmq/roost/internal/backup"
)

// ScheduleStatus is what `roost ctl status` and GET /api/v1/backups show
// of the scheduled backups.
type ScheduleStatus struct {
	Enabled     bool      `json:"enabled"`
	Interval    string    `json:"interval"`
	Keep        int       `json:"keep"`
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

// RunSchedule makes a backup every Interval until ctx ends, keeping the
// newest Keep scheduled ones (backups made on request are never
// deleted). A failure is logged and shown in Status; the next try is at
// the next interval.
func (m *Manager) RunSchedule(ctx context.Context) {
	if m.opts.Interval <= 0 {
		return
	}
	m.log.Info("scheduled backups on", "interval", m.opts.Interval, "keep", m.opts.Keep, "dir", m.opts.Dir)
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
			if err = m.prune(); err != nil {
				// The backup is written, but the run failed: the dir grows.
				m.opts.Health.Failure(backup.KindNodeBackup, backup.TargetLocal, time.Now(), err)
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

// prune deletes the oldest scheduled backups beyond Keep.
func (m *Manager) prune() error {
	if m.opts.Keep <= 0 {
		return nil
	}
	all, err := m.List()
	if err != nil {
		return err
	}
	var sched []Info
	for _, b := range all {
		if b.Scheduled {
			sched = append(sched, b)
		}
	}
	for len(sched) > m.opts.Keep { // names sort by time: oldest first
		if err := m.Delete(sched[0].Name); err != nil {
			return fmt.Errorf("retention: delete %s: %w", sched[0].Name, err)
		}
		m.log.Info("scheduled backup deleted (backup.keep)", "file", sched[0].Name, "keep", m.opts.Keep)
		sched = sched[1:]
	}
	return nil
}
