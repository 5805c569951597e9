package node

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gofrs/flock"
)

// LockFile is the name of the data-dir lock, held by the running node.
const LockFile = "LOCK"

// dataDirLock keeps a second process off a data dir in use: two nodes on
// one bbolt file and one raft log would corrupt both.
type dataDirLock struct{ fl *flock.Flock }

// lockTries spread a refused lock over ~100 ms: dataDirInUse of a start
// that failed holds the lock for an instant, a running node for good.
const (
	lockTries     = 5
	lockRetryWait = 25 * time.Millisecond
)

func lockDataDir(dir string) (*dataDirLock, error) {
	path := filepath.Join(dir, LockFile)
	fl := flock.New(path, flock.SetPermissions(0o600))
	for try := 1; ; try++ {
		ok, err := fl.TryLock()
		if err != nil {
			return nil, fmt.Errorf("lock data dir %s: %w", dir, err)
		}
		if ok {
			break
		}
		if try == lockTries {
			return nil, inUseError(dir)
		}
		time.Sleep(lockRetryWait)
	}
	// The pid is only a hint for the message above; the flock is the lock.
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		fl.Unlock()
		return nil, fmt.Errorf("lock data dir %s: %w", dir, err)
	}
	return &dataDirLock{fl: fl}, nil
}

func (l *dataDirLock) release() error { return l.fl.Unlock() }

// dataDirInUse reports, creating and changing nothing, whether another
// process holds the lock of the data dir: the error lockDataDir would
// give, or nil.
func dataDirInUse(dir string) error {
	fl := flock.New(filepath.Join(dir, LockFile), flock.SetFlag(os.O_RDONLY))
	ok, err := fl.TryLock()
	if err != nil {
		return nil // no data dir or no LOCK: nobody runs there
	}
	if ok {
		fl.Unlock()
		return nil
	}
	return inUseError(dir)
}

func inUseError(dir string) error {
	holder := "another process"
	if b, err := os.ReadFile(filepath.Join(dir, LockFile)); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			holder = fmt.Sprintf("another roost process (pid %d)", pid)
		}
	}
	return fmt.Errorf("data dir %s is in use by %s; stop it first or give this node its own data dir (node.data_dir / ROOST_NODE__DATA_DIR)", dir, holder)
}
