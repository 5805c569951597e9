package nodebackup

import (
	"testing"

	"golang.org/x/sys/unix"
)

// threadNice returns the nice value of the calling OS thread. The raw
// getpriority system call answers 20 - nice.
func threadNice(t *testing.T) int {
	t.Helper()
	p, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	return 20 - p
}

func TestInBackgroundLowersOnlyItsThread(t *testing.T) {
	before := threadNice(t)
	if before >= backupNice {
		t.Skipf("this process already runs at nice %d", before)
	}
	var inside int
	inBackground(func() { inside = threadNice(t) })
	if inside != backupNice {
		t.Errorf("backup thread at nice %d, want %d", inside, backupNice)
	}
	if after := threadNice(t); after != before {
		t.Errorf("calling thread went from nice %d to %d", before, after)
	}
}
