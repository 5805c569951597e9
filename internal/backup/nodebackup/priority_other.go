//go:build !linux

package nodebackup

// lowerThreadPriority does nothing where threads have no nice value of
// their own.
func lowerThreadPriority(int) {}
