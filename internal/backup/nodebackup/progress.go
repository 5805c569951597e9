package nodebackup

import (
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/roostmq/roost/internal/backup"
)

// meter reports a backup's progress in bytes of the node's files read
// into the archive (CreateRequest.Progress). Only the goroutine writing
// the archive uses it.
type meter struct {
	fn          func(backup.Progress)
	start, last time.Time
	done, total int64
	sessionsEst int64 // the size of sessions.db counted in total
}

// progressEvery throttles the reports: a few a second are enough for a
// progress bar and cost nothing next to the backup.
const progressEvery = 200 * time.Millisecond

// newMeter counts the store's size, sessions.db's size on disk (its
// consistent copy replaces the estimate once made) and the sizes of the
// data dir and config files, and reports 0 of that.
func (m *Manager) newMeter(fn func(backup.Progress), storeSize int64, dataFiles, configFiles []string) *meter {
	size := func(p string) int64 {
		if fi, err := os.Stat(p); err == nil {
			return fi.Size()
		}
		return 0 // gone before it is read: the backup fails on it then
	}
	mt := &meter{fn: fn, start: time.Now(), total: storeSize}
	if m.opts.Sessions != nil {
		mt.sessionsEst = size(filepath.Join(m.opts.DataDir, SessionsFile))
		mt.total += mt.sessionsEst
	}
	for _, n := range dataFiles {
		mt.total += size(filepath.Join(m.opts.DataDir, n))
	}
	for _, p := range configFiles {
		mt.total += size(p)
	}
	mt.report(true)
	return mt
}

// setSessions replaces the estimate of sessions.db with its copy's size.
func (mt *meter) setSessions(n int64) {
	if mt == nil {
		return
	}
	mt.total += n - mt.sessionsEst
	mt.sessionsEst = n
}

func (mt *meter) add(n int) {
	mt.done += int64(n)
	mt.report(false)
}

// finish reports the end: done and total equal, whatever a file that
// changed size while it was read did to the count.
func (mt *meter) finish() {
	if mt == nil {
		return
	}
	mt.total = mt.done
	mt.report(true)
}

func (mt *meter) report(final bool) {
	now := time.Now()
	if !final && now.Sub(mt.last) < progressEvery {
		return
	}
	mt.last = now
	total := max(mt.total, mt.done) // never more than 100%
	rate := 0.0
	if d := now.Sub(mt.start).Seconds(); d > 0 {
		rate = float64(mt.done) / d
	}
	mt.fn(backup.Progress{Phase: "backup", Done: mt.done, Total: total, Bytes: mt.done, BytesTotal: total, Rate: rate})
}

// meteredReader counts what is read through it.
type meteredReader struct {
	r io.Reader
	m *meter
}

func (r *meteredReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.m.add(n)
	}
	return n, err
}
