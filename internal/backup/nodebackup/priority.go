package nodebackup

import "runtime"

// backupNice is the nice value of the threads that read, hash and
// compress a backup: a backup is background work and should take the CPU
// time the broker leaves, not share it equally. On 2 cores under publish
// load, at the default priority a backup took publish p99 to 2.2-2.5x its
// level without one (bench/backup.sh).
const backupNice = 19

// inBackground runs fn on a goroutine of its own OS thread, at backupNice
// where the system allows it, and waits for it. The thread ends with fn
// (it is never unlocked), so its priority does not leak to other
// goroutines.
func inBackground(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		lowerThreadPriority(backupNice)
		fn()
	}()
	<-done
}
