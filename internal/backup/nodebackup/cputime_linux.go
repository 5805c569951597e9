package nodebackup

import (
	"time"

	"golang.org/x/sys/unix"
)

// cpuTimes returns the CPU time used so far by the calling thread and by
// the whole process; zero when the clocks cannot be read.
func cpuTimes() (thread, process time.Duration) {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) == nil {
		thread = time.Duration(ts.Nano())
	}
	if unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts) == nil {
		process = time.Duration(ts.Nano())
	}
	return thread, process
}
