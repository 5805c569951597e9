package nodebackup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/roostmq/roost/internal/backup/archive"
	"github.com/roostmq/roost/internal/config"
	"github.com/roostmq/roost/internal/store"
)

// Verified is what a whole check of a backup found.
type Verified struct {
	Manifest archive.Manifest `json:"manifest"`
	// State is what the store snapshot itself says (it must agree with
	// the manifest).
	StateIndex  uint64         `json:"state_index"`
	StateTables map[string]int `json:"state_tables"`
}

// Verify checks a backup completely, offline: every file against the
// manifest (size, sha256), and that the store snapshot opens, passes
// bbolt's consistency check and is at the manifest's raft index, and that
// node.json and sessions.db are what they claim. It extracts into a temp
// dir under tmpParent ("" for the system's) and removes it.
func Verify(src io.Reader, ro archive.ReadOptions, tmpParent string) (*Verified, error) {
	dir, err := os.MkdirTemp(tmpParent, ".roost-verify-*")
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "x")
	m, err := archive.Extract(src, ro, out)
	if err != nil {
		return nil, err
	}
	return checkExtracted(out, m)
}

// checkExtracted checks what only makes sense once extracted: the store
// snapshot, node.json and sessions.db.
func checkExtracted(dir string, m archive.Manifest) (*Verified, error) {
	data := filepath.Join(dir, strings.TrimSuffix(dataPrefix, "/"))
	state := filepath.Join(data, store.StateFile)
	if _, err := os.Stat(state); err != nil {
		return nil, &archive.FileError{Path: dataPrefix + store.StateFile, Problem: "missing: a node backup holds the store"}
	}
	info, err := store.CheckStateFile(state)
	if err != nil {
		return nil, &archive.FileError{Path: dataPrefix + store.StateFile, Problem: err.Error()}
	}
	if info.Index != m.Raft.Index {
		return nil, &archive.FileError{Path: dataPrefix + store.StateFile,
			Problem: fmt.Sprintf("store is at raft index %d, the manifest says %d", info.Index, m.Raft.Index)}
	}
	for t, n := range m.Tables {
		if info.Tables[t] != n {
			return nil, &archive.FileError{Path: dataPrefix + store.StateFile,
				Problem: fmt.Sprintf("table %s has %d records, the manifest says %d", t, info.Tables[t], n)}
		}
	}
	id, err := config.ReadIdentity(data)
	if err != nil {
		return nil, &archive.FileError{Path: dataPrefix + config.IdentityFile, Problem: err.Error()}
	}
	if id.NodeID != m.NodeID {
		return nil, &archive.FileError{Path: dataPrefix + config.IdentityFile,
			Problem: fmt.Sprintf("node id %s, the manifest says %s", id.NodeID, m.NodeID)}
	}
	if p := filepath.Join(data, SessionsFile); fileExists(p) {
		if err := checkBolt(p); err != nil {
			return nil, &archive.FileError{Path: dataPrefix + SessionsFile, Problem: err.Error()}
		}
	}
	return &Verified{Manifest: m, StateIndex: info.Index, StateTables: info.Tables}, nil
}

func checkBolt(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("does not open: %w", err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("damaged: %w", err)
		}
		return nil
	})
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// RestoreOptions say what to restore where.
type RestoreOptions struct {
	DataDir string
	Read    archive.ReadOptions
	// ForceNewCluster makes the restored node a new one-voter cluster
	// (with a new cluster id) instead of a member of its old cluster.
	ForceNewCluster bool
	Now             func() time.Time
}

// RestoreReport is what Restore did.
type RestoreReport struct {
	DataDir         string         `json:"data_dir"`
	MovedAside      string         `json:"moved_aside,omitempty"` // the previous data dir, kept
	Node            string         `json:"node"`
	NodeID          string         `json:"node_id"`
	ClusterID       string         `json:"cluster_id"`
	RaftIndex       uint64         `json:"raft_index"`
	RaftTerm        uint64         `json:"raft_term"`
	BackupCreatedAt time.Time      `json:"backup_created_at"`
	Tables          map[string]int `json:"tables"`
	ForceNewCluster bool           `json:"force_new_cluster"`
	Members         []string       `json:"members"` // raft voters the node will talk to
	ConfigFiles     []string       `json:"config_files,omitempty"`
	DurationMS      int64          `json:"duration_ms"`
}

// OtherNodeError refuses a backup of another node: a node's store and
// raft identity are its own.
type OtherNodeError struct {
	BackupNode, BackupNodeID, BackupCluster string
	DataDir, DirNode, DirNodeID             string
}

func (e *OtherNodeError) Error() string {
	return fmt.Sprintf("this backup is of node %q (node id %s, cluster %s), but data dir %s belongs to node %q (node id %s): "+
		"a node backup restores only the node it was taken on. To move data to another node or cluster, export it "+
		"(`roost ctl data export` on the source) and import it there (`roost ctl data import FILE`)",
		e.BackupNode, e.BackupNodeID, e.BackupCluster, e.DataDir, e.DirNode, e.DirNodeID)
}

// Restore puts a backup in place of a stopped node's data dir. It
// extracts and verifies the whole backup beside the data dir first, and
// refuses another node's backup, without touching the data dir; then it
// swaps the restored dir in, in one atomic rename (renameat2
// RENAME_EXCHANGE), and moves the previous one aside as
// <data_dir>.pre-restore-<time>. Killed at any point, the data dir is the
// old one or the restored one.
func Restore(src io.Reader, opts RestoreOptions) (*RestoreReport, error) {
	start := time.Now()
	if opts.Now == nil {
		opts.Now = time.Now
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, err
	}
	dataDir = filepath.Clean(dataDir)
	// A symlinked data dir (to a volume, say) is restored where it points:
	// swapping the link itself would put the data beside it.
	if real, err := filepath.EvalSymlinks(dataDir); err == nil {
		dataDir = real
	}
	parent, base := filepath.Dir(dataDir), filepath.Base(dataDir)
	exists := false
	if fi, err := os.Stat(dataDir); err == nil {
		if !fi.IsDir() {
			return nil, fmt.Errorf("data dir %s is not a directory", dataDir)
		}
		exists = true
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var current *config.Identity
	if exists {
		// The node must be stopped: hold its lock for the whole restore
		// (a node creates the lock file when it first starts; without one
		// none ever ran here, and creating it would change the dir).
		if lockPath := filepath.Join(dataDir, LockFile); fileExists(lockPath) {
			fl := flock.New(lockPath)
			ok, err := fl.TryLock()
			if err != nil {
				return nil, fmt.Errorf("lock data dir %s: %w", dataDir, err)
			}
			if !ok {
				return nil, fmt.Errorf("data dir %s is in use by a running roost: stop the node first (restore runs on a stopped node)", dataDir)
			}
			defer fl.Unlock()
		}
		if id, err := config.ReadIdentity(dataDir); err == nil {
			current = &id
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read the identity of data dir %s: %w", dataDir, err)
		}
	} else if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	removeStale(parent, base)

	stamp := opts.Now().UTC().Format(timeLayout)
	staging := unique(filepath.Join(parent, "."+base+".restoring-"+stamp))
	swapped := false
	defer func() {
		if !swapped { // after the swap, staging may hold the previous data dir
			os.RemoveAll(staging)
		}
	}()
	m, err := archive.Extract(src, opts.Read, staging)
	if err != nil {
		return nil, err
	}
	if current != nil && current.NodeID != m.NodeID {
		return nil, &OtherNodeError{BackupNode: m.Node, BackupNodeID: m.NodeID, BackupCluster: m.ClusterID,
			DataDir: dataDir, DirNode: current.Name, DirNodeID: current.NodeID}
	}
	if _, err := checkExtracted(staging, m); err != nil {
		return nil, err
	}
	newData := filepath.Join(staging, strings.TrimSuffix(dataPrefix, "/"))
	rep := &RestoreReport{DataDir: dataDir, Node: m.Node, NodeID: m.NodeID, ClusterID: m.ClusterID,
		RaftIndex: m.Raft.Index, RaftTerm: m.Raft.Term, BackupCreatedAt: m.CreatedAt, Tables: m.Tables,
		ForceNewCluster: opts.ForceNewCluster}
	meta := store.RaftMeta{Index: m.Raft.Index, Term: m.Raft.Term, ConfigurationIndex: m.Raft.ConfigurationIndex,
		CurrentTerm: m.Raft.CurrentTerm, LastVoteTerm: m.Raft.LastVoteTerm, LastVoteCand: m.Raft.LastVoteCand}
	var self *store.RaftServer
	for _, s := range m.Raft.Servers {
		meta.Servers = append(meta.Servers, store.RaftServer{ID: s.ID, Address: s.Address, Suffrage: s.Suffrage})
		if s.ID == m.NodeID {
			self = &store.RaftServer{ID: s.ID, Address: s.Address}
		}
	}
	var single *store.RaftServer
	if opts.ForceNewCluster {
		if self == nil {
			return nil, fmt.Errorf("the backup's raft configuration does not list node %s: cannot make it a new cluster", m.NodeID)
		}
		single = self
		id, err := config.ReadIdentity(newData)
		if err != nil {
			return nil, err
		}
		if id.ClusterID, err = config.NewID(); err != nil {
			return nil, err
		}
		if err := config.WriteIdentity(newData, id); err != nil {
			return nil, err
		}
		rep.ClusterID = id.ClusterID
	}
	if err := store.WriteRaftState(filepath.Join(newData, store.RaftDir), filepath.Join(newData, store.StateFile), meta, single); err != nil {
		return nil, fmt.Errorf("rebuild the raft state: %w", err)
	}
	for _, s := range meta.Servers {
		if single == nil || s.ID == single.ID {
			rep.Members = append(rep.Members, s.ID+"@"+s.Address)
		}
	}
	for _, f := range m.Files {
		if strings.HasPrefix(f.Path, configPrefix) {
			rep.ConfigFiles = append(rep.ConfigFiles, "/"+strings.TrimPrefix(f.Path, configPrefix))
		}
	}
	if err := os.Chmod(newData, 0o700); err != nil {
		return nil, err
	}
	// Marks the restored dir until it is in place: a staging dir whose
	// data/ lacks it holds a previous data dir (see removeStale).
	if err := os.WriteFile(filepath.Join(newData, restoreMarker), nil, 0o600); err != nil {
		return nil, err
	}
	if err := syncPath(newData); err != nil {
		return nil, err
	}
	if err := syncPath(staging); err != nil {
		return nil, err
	}
	// From here the staging dir may come to hold the previous data dir:
	// say so beside it, for removeStale.
	intent := staging + swappingSuffix
	if err := os.WriteFile(intent, nil, 0o600); err != nil {
		return nil, err
	}
	defer func() {
		if !swapped || !fileExists(filepath.Join(staging, "data")) {
			os.Remove(intent)
		}
	}()
	if err := syncPath(parent); err != nil {
		return nil, err
	}

	if !exists {
		if err := os.Rename(newData, dataDir); err != nil {
			return nil, fmt.Errorf("put the restored data dir in place: %w", err)
		}
	} else {
		if err := swapDirs(newData, dataDir); err != nil {
			return nil, err
		}
		swapped = true
		// newData is now the previous data dir: keep it aside, with the
		// backups it held moved to the restored one.
		aside := unique(filepath.Join(parent, base+".pre-restore-"+stamp))
		if err := os.Rename(newData, aside); err != nil {
			return nil, &AfterSwapError{fmt.Errorf("moving the previous data dir (now %s) aside failed: %w", newData, err)}
		}
		os.Remove(staging)
		rep.MovedAside = aside
		oldBackups := filepath.Join(aside, config.BackupDirName)
		if fileExists(oldBackups) {
			_ = os.Rename(oldBackups, filepath.Join(dataDir, config.BackupDirName))
		}
		os.Remove(filepath.Join(aside, LockFile))
	}
	os.Remove(filepath.Join(dataDir, restoreMarker))
	if err := syncPath(parent); err != nil {
		return nil, err
	}
	rep.DurationMS = time.Since(start).Milliseconds()
	return rep, nil
}

// swapDirs exchanges two directories in one step. Where the filesystem
// cannot (no RENAME_EXCHANGE), it renames twice: the data dir is then
// absent for an instant, and a crash in that instant leaves it under
// its .pre-restore name, which the error of the next start points to.
func swapDirs(newDir, dataDir string) error {
	err := unix.Renameat2(unix.AT_FDCWD, newDir, unix.AT_FDCWD, dataDir, unix.RENAME_EXCHANGE)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("swap the restored data dir in: %w (is the data dir a mount point? restore onto a directory inside the volume)", err)
	}
	tmp := newDir + ".old"
	if err := os.Rename(dataDir, tmp); err != nil {
		return fmt.Errorf("move the data dir aside: %w", err)
	}
	if err := os.Rename(newDir, dataDir); err != nil {
		_ = os.Rename(tmp, dataDir)
		return fmt.Errorf("put the restored data dir in place: %w", err)
	}
	return os.Rename(tmp, newDir)
}

// restoreMarker is in a restored data dir until it is swapped in; a
// file named after the staging dir with swappingSuffix exists while the
// swap may have happened.
const (
	restoreMarker  = ".restore-incomplete"
	swappingSuffix = ".swapping"
)

// AfterSwapError is a failure after the restored data dir was put in
// place: the restore happened, but something after it did not.
type AfterSwapError struct{ Err error }

func (e *AfterSwapError) Error() string {
	return "the restored data dir is in place, but " + e.Err.Error()
}
func (e *AfterSwapError) Unwrap() error { return e.Err }

// unique returns path, or path-2, path-3… when it exists.
func unique(path string) string {
	p := path
	for i := 2; fileExists(p); i++ {
		p = fmt.Sprintf("%s-%d", path, i)
	}
	return p
}

// removeStale clears what a killed restore of this data dir left: a
// staging dir is removed, unless its data/ is a previous data dir (swapped
// out, not yet moved aside), which is moved aside instead.
func removeStale(parent, base string) {
	ents, _ := os.ReadDir(parent)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "."+base+".restoring-") || strings.HasSuffix(e.Name(), swappingSuffix) {
			continue
		}
		staging := filepath.Join(parent, e.Name())
		data := filepath.Join(staging, strings.TrimSuffix(dataPrefix, "/"))
		intent := staging + swappingSuffix
		// Without the intent file the swap never began: staging holds a
		// partial or unused restore. With it, data/ without the marker is
		// the previous data dir.
		if fileExists(intent) && fileExists(data) && !fileExists(filepath.Join(data, restoreMarker)) {
			stamp := strings.TrimPrefix(e.Name(), "."+base+".restoring-")
			if os.Rename(data, unique(filepath.Join(parent, base+".pre-restore-"+stamp))) != nil {
				continue // keep it rather than lose it
			}
		}
		os.RemoveAll(staging)
		os.Remove(intent)
	}
}

func syncPath(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
