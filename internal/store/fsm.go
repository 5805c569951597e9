package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// metaBucket holds the store's own bookkeeping, next to the tables.
var (
	metaBucket      = []byte("_meta")
	keyAppliedIndex = []byte("applied_index")
	keyAppliedTerm  = []byte("applied_term")
)

// fsm is the persistent raft state machine: every apply writes its records
// and the last applied raft index in one bbolt transaction, so on start
// entries at or below that index are skipped rather than replayed onto
// the data again.
type fsm struct {
	path   string
	log    *slog.Logger
	notify func([]Change)

	mu sync.RWMutex // guards db against Restore swapping it
	db *bolt.DB

	// counts are the records of each table as of the last apply, kept by
	// every apply so that a count is a cheap read (bbolt's Stats walks
	// every page of the table). Keys: countedTables, fixed at newFSM.
	counts map[string]*atomic.Int64
	stats  applyStats
}

// applyStats count the FSM's work since start (for /metrics).
type applyStats struct {
	batches atomic.Uint64 // ApplyBatch calls: bbolt transactions
	entries atomic.Uint64 // raft entries passed to them
	nanos   atomic.Int64  // time spent in those transactions
}

// countedTables are the buckets whose records are counted.
func countedTables() []string { return append([]string{TableMembers}, Tables...) }

// countDelta collects one transaction's changes to the counts: records
// added (or removed) per table, and the tables whose count is set, not
// moved, by add (cleared or replaced whole in the transaction).
type countDelta struct {
	add map[string]int64
	set map[string]bool
}

func (d *countDelta) inc(table string, n int64) {
	if d.add == nil {
		d.add = map[string]int64{}
	}
	d.add[table] += n
}

// reset makes n the table's count, to be moved by the ops after it.
func (d *countDelta) reset(table string, n int64) {
	if d.set == nil {
		d.set = map[string]bool{}
	}
	d.inc(table, n-d.add[table])
	d.set[table] = true
}

// keyCount walks a bucket inside a write transaction: bbolt's Stats reads
// only the committed pages and misses the transaction's own writes.
func keyCount(b *bolt.Bucket) int64 {
	var n int64
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

// keyProbe tells whether a key is in a bucket, reusing one cursor while
// the ops stay on one bucket (Bucket.Get makes a cursor each time). Seek
// walks from the root, so the cursor stays right across puts.
type keyProbe struct {
	b *bolt.Bucket
	c *bolt.Cursor
}

func (p *keyProbe) has(b *bolt.Bucket, key string) bool {
	if p.b != b {
		p.b, p.c = b, b.Cursor()
	}
	k, _ := p.c.Seek([]byte(key))
	return string(k) == key
}

// setCounts counts every table of db (at open and after a restore).
func (f *fsm) setCounts(db *bolt.DB) {
	_ = db.View(func(tx *bolt.Tx) error {
		for t, c := range f.counts {
			if b := tx.Bucket([]byte(t)); b != nil {
				c.Store(int64(b.Stats().KeyN))
			}
		}
		return nil
	})
}

// count returns the records of table as of the last apply (0 for a
// table it does not know).
func (f *fsm) count(table string) int64 {
	if c, ok := f.counts[table]; ok {
		return c.Load()
	}
	return 0
}

func openStateDB(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: time.Second,
		// A large virtual mapping lets long read transactions (snapshots,
		// backups, exports) run without blocking writers on a remap.
		InitialMmapSize: 1 << 30,
		FreelistType:    bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("open state db %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range append([]string{string(metaBucket), TableMembers}, Tables...) {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func newFSM(path string, log *slog.Logger, notify func([]Change)) (*fsm, error) {
	db, err := openStateDB(path)
	if err != nil {
		return nil, err
	}
	f := &fsm{path: path, log: log, notify: notify, db: db, counts: map[string]*atomic.Int64{}}
	for _, t := range countedTables() {
		f.counts[t] = new(atomic.Int64)
	}
	f.setCounts(db)
	return f, nil
}

func (f *fsm) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.db.Close()
}

// wipe replaces the state with an empty one.
func (f *fsm) wipe() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.db.Close(); err != nil {
		return fmt.Errorf("close state db: %w", err)
	}
	if err := os.Remove(f.path); err != nil && !os.IsNotExist(err) {
		return err
	}
	db, err := openStateDB(f.path)
	if err != nil {
		return err
	}
	f.db = db
	f.setCounts(db)
	if f.notify != nil {
		f.notify([]Change{{}})
	}
	return nil
}

func readApplied(tx *bolt.Tx) (index, term uint64) {
	m := tx.Bucket(metaBucket)
	if v := m.Get(keyAppliedIndex); len(v) == 8 {
		index = binary.BigEndian.Uint64(v)
	}
	if v := m.Get(keyAppliedTerm); len(v) == 8 {
		term = binary.BigEndian.Uint64(v)
	}
	return index, term
}

// applied returns the raft index and term of the last entry in the state.
func (f *fsm) applied() (index, term uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	_ = f.db.View(func(tx *bolt.Tx) error {
		index, term = readApplied(tx)
		return nil
	})
	return index, term
}

// Apply implements raft.FSM for single entries.
func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// applyResult is the response of one command entry: the keys its ops
// touched, in op order (an OpAppend's generated key included).
type applyResult struct {
	keys []string
	err  error
}

// ApplyBatch implements raft.BatchingFSM: one bbolt transaction for the
// whole batch of committed entries.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	// A stage commit moves staged buckets whole, which bbolt can do only
	// for buckets not written earlier in the same transaction: each one
	// starts a transaction of its own.
	if j := nextStageCommit(logs, 1); j > 0 {
		return append(f.ApplyBatch(logs[:j]), f.ApplyBatch(logs[j:])...)
	}
	resp := make([]any, len(logs))
	var changes []Change
	var delta countDelta
	f.mu.RLock()
	defer f.mu.RUnlock()
	start := time.Now()
	err := f.db.Update(func(tx *bolt.Tx) error {
		delta = countDelta{}
		applied, _ := readApplied(tx)
		var last *raft.Log
		for i, l := range logs {
			if l.Index <= applied {
				continue // already in the state: written before a restart
			}
			last = l
			if l.Type != raft.LogCommand {
				continue
			}
			ops, err := decodeOps(l.Data)
			if err != nil {
				// A command this build cannot read must not be skipped
				// silently: that would fork the replicas.
				return fmt.Errorf("raft entry %d: %w", l.Index, err)
			}
			keys, ch, err := applyOps(tx, ops, l.Index, &delta)
			if err != nil {
				return fmt.Errorf("raft entry %d: %w", l.Index, err)
			}
			resp[i] = applyResult{keys: keys}
			changes = append(changes, ch...)
		}
		if last == nil {
			return nil
		}
		var b [8]byte
		m := tx.Bucket(metaBucket)
		binary.BigEndian.PutUint64(b[:], last.Index)
		if err := m.Put(keyAppliedIndex, bytes.Clone(b[:])); err != nil {
			return err
		}
		binary.BigEndian.PutUint64(b[:], last.Term)
		return m.Put(keyAppliedTerm, bytes.Clone(b[:]))
	})
	if err != nil {
		// The state is untouched (the transaction rolled back); a replica
		// that cannot apply the log must stop rather than diverge.
		f.log.Error("store: cannot apply committed raft entries; stopping", "err", err)
		panic(fmt.Sprintf("roost store: %v", err))
	}
	for t, n := range delta.add {
		switch c := f.counts[t]; {
		case c == nil:
		case delta.set[t]:
			c.Store(n)
		default:
			c.Add(n)
		}
	}
	f.stats.batches.Add(1)
	f.stats.entries.Add(uint64(len(logs)))
	f.stats.nanos.Add(int64(time.Since(start)))
	if len(changes) > 0 && f.notify != nil {
		f.notify(changes)
	}
	return resp
}

func applyOps(tx *bolt.Tx, ops []Op, index uint64, delta *countDelta) ([]string, []Change, error) {
	keys := make([]string, len(ops))
	changes := make([]Change, 0, len(ops))
	var probe keyProbe
	for i, op := range ops {
		if isStageOp(op.Type) {
			key, ch, err := applyStageOp(tx, op, index)
			if err != nil {
				return nil, nil, fmt.Errorf("op %d: %w", i, err)
			}
			if op.Type == OpStageCommit { // tables replaced or merged whole
				for _, t := range Tables {
					delta.reset(t, keyCount(tx.Bucket([]byte(t))))
				}
			}
			keys[i] = key
			changes = append(changes, ch...)
			continue
		}
		b := tx.Bucket([]byte(op.Table))
		if b == nil {
			return nil, nil, fmt.Errorf("op %d: unknown table %q", i, op.Table)
		}
		switch op.Type {
		case OpPut:
			if !probe.has(b, op.Key) {
				delta.inc(op.Table, 1)
			}
			if err := b.Put([]byte(op.Key), op.Value); err != nil {
				return nil, nil, fmt.Errorf("op %d: put %s/%s: %w", i, op.Table, op.Key, err)
			}
		case OpDelete:
			if probe.has(b, op.Key) {
				delta.inc(op.Table, -1)
			}
			if err := b.Delete([]byte(op.Key)); err != nil {
				return nil, nil, fmt.Errorf("op %d: delete %s/%s: %w", i, op.Table, op.Key, err)
			}
		case OpAppend:
			seq, err := b.NextSequence()
			if err != nil {
				return nil, nil, err
			}
			val, err := setID(op.Value, seq)
			if err != nil {
				return nil, nil, fmt.Errorf("op %d: append to %s: %w", i, op.Table, err)
			}
			op.Key, op.Value = ACLKey(seq), val
			if !probe.has(b, op.Key) {
				delta.inc(op.Table, 1)
			}
			if err := b.Put([]byte(op.Key), op.Value); err != nil {
				return nil, nil, err
			}
		case OpClear:
			delta.reset(op.Table, 0)
			seq := b.Sequence()
			if err := tx.DeleteBucket([]byte(op.Table)); err != nil {
				return nil, nil, err
			}
			nb, err := tx.CreateBucket([]byte(op.Table))
			if err != nil {
				return nil, nil, err
			}
			// Keep the sequence: ids handed out before stay unique.
			if err := nb.SetSequence(seq); err != nil {
				return nil, nil, err
			}
		default:
			return nil, nil, fmt.Errorf("op %d: unknown op type %d", i, op.Type)
		}
		keys[i] = op.Key
		changes = append(changes, Change{Type: op.Type, Table: op.Table, Key: op.Key, Value: op.Value, Index: index})
	}
	return keys, changes, nil
}

// setID sets the "id" member of a JSON object to id.
func setID(obj []byte, id uint64) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(obj, &m); err != nil {
		return nil, fmt.Errorf("record is not a JSON object: %w", err)
	}
	m["id"] = json.RawMessage(fmt.Sprint(id))
	return json.Marshal(m)
}

// Snapshot implements raft.FSM. The read transaction is opened here, on
// the FSM goroutine, so the snapshot is exactly the state at the index
// raft asked for, while Persist streams it and writes continue.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	tx, err := f.db.Begin(false)
	f.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("begin snapshot read: %w", err)
	}
	return &boltSnapshot{tx: tx}, nil
}

type boltSnapshot struct{ tx *bolt.Tx }

func (s *boltSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.tx.WriteTo(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("write snapshot: %w", err)
	}
	return sink.Close()
}

func (s *boltSnapshot) Release() { _ = s.tx.Rollback() }

// Restore implements raft.FSM: the snapshot is a whole bbolt file; it is
// written beside the live one, synced, and swapped in by rename.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	tmp := f.path + ".restore"
	if err := writeFileSync(tmp, rc); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.db.Close(); err != nil {
		return fmt.Errorf("restore snapshot: close state db: %w", err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if err := syncDir(filepath.Dir(f.path)); err != nil {
		return err
	}
	db, err := openStateDB(f.path)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.db = db
	f.setCounts(db)
	if f.notify != nil {
		idx, _ := readAppliedDB(db)
		f.notify([]Change{{Index: idx}})
	}
	return nil
}

func readAppliedDB(db *bolt.DB) (index, term uint64) {
	_ = db.View(func(tx *bolt.Tx) error {
		index, term = readApplied(tx)
		return nil
	})
	return index, term
}

func writeFileSync(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
