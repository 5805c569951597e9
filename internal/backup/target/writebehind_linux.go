package target

import (
	"os"

	"golang.org/x/sys/unix"
)

// writeBehindStep is how much of a backup file may be written before the
// kernel is told to write it to disk.
const writeBehindStep = 8 << 20

// writeBehind writes a backup file and has the kernel write it out as it
// goes (sync_file_range), keeping at most about two steps of it dirty in
// the page cache. Without it, hundreds of MB sat dirty until the final
// fsync, and on ext4 that fsync's journal commit held up the raft log's
// and the store's own fsyncs: one replicated write waited 300 ms at the
// end of a 1M-user backup (bench/backup.sh, writeprobe.py).
type writeBehind struct {
	f       *os.File
	written int64 // bytes written so far
	started int64 // writeback started for [0, started)
	waited  int64 // and finished for [0, waited)
}

func newWriteBehind(f *os.File) *writeBehind { return &writeBehind{f: f} }

func (w *writeBehind) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.written += int64(n)
	if err == nil && w.written-w.started >= writeBehindStep {
		fd := int(w.f.Fd())
		// Errors here only lose the early start: the final fsync still
		// writes everything.
		_ = unix.SyncFileRange(fd, w.started, w.written-w.started, unix.SYNC_FILE_RANGE_WRITE)
		if w.started > w.waited {
			_ = unix.SyncFileRange(fd, w.waited, w.started-w.waited,
				unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
			w.waited = w.started
		}
		w.started = w.written
	}
	return n, err
}
