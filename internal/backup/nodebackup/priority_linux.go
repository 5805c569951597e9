package nodebackup

import "golang.org/x/sys/unix"

// lowerThreadPriority sets the nice value of the calling OS thread (Linux
// keeps one per thread). Raising it needs no privilege; a failure leaves
// the thread as it was, which only costs the broker some CPU.
func lowerThreadPriority(nice int) {
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), nice)
}
