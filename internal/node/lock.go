package node

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gofrs/flock"
)

// LockFile is the name of the data-dir lock, held by the running node.
const LockFile = "LOCK"

// dataDirLock keeps a second process off a data dir in use: two nodes on
// one bbolt file and one raft log would corrupt both.
type dataDirLock struct{ fl *flock.Flock }

func lockDataDir(dir string) (*dataDirLock, error) {
	path := filepath.Join(dir, LockFile)
	fl := flock.New(path, flock.SetPermissions(0o600))
	ok, err := fl.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock data dir %s: %w", dir, err)
	}
	if !ok {
		holder := "another process"
		if b, err := os.ReadFile(path); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				holder = fmt.Sprintf("another roost process (pid %d)", pid)
			}
		}
		return nil, fmt.Errorf("data dir %s is in use by %s; stop it first or give this node its own data dir (node.data_dir / ROOST_NODE__DATA_DIR)", dir, holder)
	}
	// The pid is only a hint for the message above; the flock is the lock.
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		fl.Unlock()
		return nil, fmt.Errorf("lock data dir %s: %w", dir, err)
	}
	return &dataDirLock{fl: fl}, nil
}

func (l *dataDirLock) release() error { return l.fl.Unlock() }
