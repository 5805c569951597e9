package store

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
)

// Physical backups of one node (DESIGN §7): the state db as of one raft
// index, with the raft facts needed to bring the node back at that index.

// StateFile is the name of the state db in the data dir, and RaftDir the
// directory of the raft log and snapshots.
const (
	StateFile = "store.db"
	RaftDir   = "raft"
)

// RaftServer is one member of a raft configuration.
type RaftServer struct {
	ID       string
	Address  string
	Suffrage string // "voter", "nonvoter" or "staging"
}

// RaftMeta is what raft must know to restart from a state db: the index
// and term of its last applied entry, the configuration in force and the
// node's election state.
type RaftMeta struct {
	Index, Term        uint64
	ConfigurationIndex uint64
	Servers            []RaftServer
	CurrentTerm        uint64
	LastVoteTerm       uint64
	LastVoteCand       string
}

// Backup is a consistent, read-only view of the state db for a node
// backup. Writers are not blocked while it is open; Close it soon all the
// same (bbolt cannot reuse the pages it holds).
type Backup struct {
	tx   *bolt.Tx
	Meta RaftMeta
	// Tables counts the records of each replicated table.
	Tables map[string]int
}

// BeginBackup opens a backup view. The raft configuration is the one in
// force at the view's index when no membership change is in flight; one
// committed after the view is read again (a few tries) so that it never
// describes a later index than the state.
func (s *Store) BeginBackup() (*Backup, error) {
	r := s.r()
	for try := 0; ; try++ {
		cf := r.GetConfiguration()
		if err := cf.Error(); err != nil {
			return nil, fmt.Errorf("store: backup: read raft configuration: %w", err)
		}
		cfgIndex, _ := strconv.ParseUint(r.Stats()["latest_configuration_index"], 10, 64)
		s.fsm.mu.RLock()
		tx, err := s.fsm.db.Begin(false)
		s.fsm.mu.RUnlock()
		if err != nil {
			return nil, fmt.Errorf("store: backup: begin read: %w", err)
		}
		index, term := readApplied(tx)
		if (cfgIndex > index || index == 0) && try < 20 {
			_ = tx.Rollback()
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if index == 0 {
			// Raft state rebuilt at index 0 would not start: there is
			// nothing to back up before the first entry is applied.
			_ = tx.Rollback()
			return nil, errors.New("store: backup: nothing applied yet (raft index 0); try again once the node has started")
		}
		b := &Backup{tx: tx, Tables: map[string]int{}}
		b.Meta.Index, b.Meta.Term = index, term
		b.Meta.ConfigurationIndex = min(cfgIndex, index)
		for _, srv := range cf.Configuration().Servers {
			b.Meta.Servers = append(b.Meta.Servers, RaftServer{ID: string(srv.ID), Address: string(srv.Address), Suffrage: suffrageName(srv.Suffrage)})
		}
		if b.Meta.CurrentTerm, err = s.logStore.GetUint64(keyCurrentTerm); err != nil && !isNotFound(err) {
			_ = tx.Rollback()
			return nil, fmt.Errorf("store: backup: read current term: %w", err)
		}
		b.Meta.CurrentTerm = max(b.Meta.CurrentTerm, term)
		b.Meta.LastVoteTerm, _ = s.logStore.GetUint64(keyLastVoteTerm)
		cand, _ := s.logStore.Get(keyLastVoteCand)
		b.Meta.LastVoteCand = string(cand)
		for _, t := range Tables {
			if bk := tx.Bucket([]byte(t)); bk != nil {
				b.Tables[t] = bk.Stats().KeyN
			}
		}
		return b, nil
	}
}

// Size is the number of bytes WriteTo writes.
func (b *Backup) Size() int64 { return b.tx.Size() }

// WriteTo writes the state db as a whole bbolt file.
func (b *Backup) WriteTo(w io.Writer) (int64, error) { return b.tx.WriteTo(w) }

// Close releases the view.
func (b *Backup) Close() error { return b.tx.Rollback() }

// The keys hashicorp/raft keeps in its stable store.
var (
	keyCurrentTerm  = []byte("CurrentTerm")
	keyLastVoteTerm = []byte("LastVoteTerm")
	keyLastVoteCand = []byte("LastVoteCand")
)

func isNotFound(err error) bool { return errors.Is(err, raftboltdb.ErrKeyNotFound) }

func suffrageName(s raft.ServerSuffrage) string {
	switch s {
	case raft.Voter:
		return "voter"
	case raft.Nonvoter:
		return "nonvoter"
	default:
		return "staging"
	}
}

func parseSuffrage(s string) (raft.ServerSuffrage, error) {
	switch s {
	case "voter":
		return raft.Voter, nil
	case "nonvoter":
		return raft.Nonvoter, nil
	case "staging":
		return raft.Staging, nil
	}
	return 0, fmt.Errorf("unknown raft suffrage %q", s)
}

// StateInfo describes a state db file.
type StateInfo struct {
	Index, Term uint64
	Tables      map[string]int
}

// CheckStateFile opens a state db read-only and checks that it is one:
// bbolt's own consistency check, the tables present, an applied index.
func CheckStateFile(path string) (StateInfo, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return StateInfo{}, fmt.Errorf("open state db %s: %w", path, err)
	}
	defer db.Close()
	info := StateInfo{Tables: map[string]int{}}
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("state db %s is damaged: %w", path, err)
		}
		if tx.Bucket(metaBucket) == nil {
			return fmt.Errorf("%s is not a roost state db (no meta table)", path)
		}
		info.Index, info.Term = readApplied(tx)
		for _, t := range Tables {
			b := tx.Bucket([]byte(t))
			if b == nil {
				return fmt.Errorf("%s is not a roost state db (no %s table)", path, t)
			}
			info.Tables[t] = b.Stats().KeyN
		}
		return nil
	})
	return info, err
}

// WriteRaftState creates the raft dir of a node restored from a backup
// (dir must not exist): one raft snapshot holding the state db at
// stateFile, at meta's index, term and configuration, and an empty log
// whose stable store carries meta's election state. Started on it, raft
// takes up from meta.Index and the leader sends what followed. With
// single set, the configuration is this node alone (id, address), as a
// new one-voter cluster.
func WriteRaftState(dir, stateFile string, meta RaftMeta, single *RaftServer) error {
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("raft dir %s exists", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var cfg raft.Configuration
	servers := meta.Servers
	if single != nil {
		servers = []RaftServer{{ID: single.ID, Address: single.Address, Suffrage: "voter"}}
	}
	for _, s := range servers {
		suf, err := parseSuffrage(s.Suffrage)
		if err != nil {
			return err
		}
		cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.Address), Suffrage: suf})
	}
	if len(cfg.Servers) == 0 {
		return errors.New("the backup records no raft configuration")
	}
	cfgIndex := meta.ConfigurationIndex
	if single != nil || cfgIndex == 0 || cfgIndex > meta.Index {
		cfgIndex = meta.Index
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, NewRaftLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return fmt.Errorf("create raft snapshot store: %w", err)
	}
	// The transport only encodes the legacy peers list (addresses as
	// bytes, as every raft transport does).
	_, enc := raft.NewInmemTransport("")
	sink, err := snaps.Create(raft.SnapshotVersionMax, meta.Index, meta.Term, cfg, cfgIndex, enc)
	if err != nil {
		return fmt.Errorf("create raft snapshot: %w", err)
	}
	f, err := os.Open(stateFile)
	if err != nil {
		sink.Cancel()
		return err
	}
	_, err = io.Copy(sink, f)
	f.Close()
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("write raft snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("write raft snapshot: %w", err)
	}
	logs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	if err != nil {
		return fmt.Errorf("create raft log: %w", err)
	}
	term := max(meta.CurrentTerm, meta.Term)
	if single != nil {
		term++ // a new election era for the one-voter cluster
	}
	voteTerm, voteCand := meta.LastVoteTerm, []byte(meta.LastVoteCand)
	if single != nil {
		voteTerm, voteCand = 0, nil
	}
	err = errors.Join(logs.SetUint64(keyCurrentTerm, term),
		logs.SetUint64(keyLastVoteTerm, voteTerm), logs.Set(keyLastVoteCand, voteCand))
	if cerr := logs.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write raft election state: %w", err)
	}
	return syncDir(dir)
}
