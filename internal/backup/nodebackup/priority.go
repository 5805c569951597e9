package nodebackup

import "runtime"

// backupNice is the nice value of the threads that read, hash and
// compress a backup: a backup is background work and should take the CPU
// time the broker leaves, not share it equally. Measured on 2 cores with
// publishers at 2000 msg/s: publish p99 during a backup 1.7-3x its level
// without one at nice 0, 1.1-2x at 19. With the broker saturated a niced
// thread that holds a Go processor while the kernel runs others delays
// the runtime too (2-3.6x either way); the yielder's pacing covers that.
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
