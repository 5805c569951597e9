package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// Staging: how an import changes every table at once, on every node.
//
// A large import is far bigger than one raft entry should be, yet it must
// reach the tables all at once or not at all. So it is staged:
// OpStageBegin creates a staging area, OpStagePut entries (each a bounded
// batch of records) fill it, and one OpStageCommit entry applies it to
// the tables in one bbolt transaction and removes it. Until that entry
// commits the tables are untouched; a crash or kill -9 of any node before
// it leaves the stage behind, invisible to every reader, and the next
// import (OpStageAbort) removes it. The stage is part of the replicated
// state — in raft snapshots too — so every replica commits the same records.
//
// Layout in the state db:
//
//	_stage/<id>/_info      JSON StageInfo (from OpStageBegin)
//	_stage/<id>/_touched   8 bytes: unix ms of the last put (from the op, not the clock)
//	_stage/<id>/<table>/   staged records: key → value exactly as they will be stored
//	_stage/_done/<id>      JSON CommitResult of a committed stage, so that a commit
//	                       entry applied again (a retried forward) reports success
//
// Committing a table whose records the stage replaces — replace mode, or
// merge into an empty table — moves the staged bucket in place of the
// table (bbolt MoveBucket), so restoring a million records into a new
// cluster costs no more memory than restoring ten. Merging into a
// non-empty table writes each new or changed record in the commit
// transaction. Observers get one Reset change: they reload.

var (
	stageBucket = []byte("_stage")
	doneBucket  = []byte("_done")
	infoKey     = []byte("_info")
	touchedKey  = []byte("_touched")
)

// Commit modes of a stage.
const (
	// MergeMode inserts or updates records by key and deletes nothing.
	// ACL rules (keyed by their position) match on kind, value, topic
	// and action instead: a matching rule takes the staged permission,
	// others are appended after the existing rules.
	MergeMode = "merge"
	// ReplaceMode makes each committed table equal to its staged records.
	ReplaceMode = "replace"
)

// keptDone is how many committed stage ids are remembered.
const keptDone = 64

// StageInfo describes a stage: what OpStageBegin carries, plus what the
// state says about it when listed (Stages).
type StageInfo struct {
	ID        string    `json:"id"`
	Node      string    `json:"node"`             // the node running the import
	Source    string    `json:"source,omitempty"` // file name or format, for operators
	StartedAt time.Time `json:"started_at"`

	Index   uint64    `json:"index,omitempty"`   // raft index of the begin entry
	Touched time.Time `json:"touched,omitzero"`  // time carried by the last put
	Records int       `json:"records,omitempty"` // staged so far
}

// CommitSpec is what OpStageCommit carries: the mode and, per table to
// commit, how many records must be staged for it. A stage that does not
// hold exactly these counts is not committed (something was lost or
// aborted): the tables stay as they are.
type CommitSpec struct {
	Mode   string         `json:"mode"`
	Counts map[string]int `json:"counts"`
}

// CommitResult is the outcome of an OpStageCommit, returned as the op's
// Result key (see ParseCommitResult). A commit that cannot apply does
// nothing: a replica never fails an entry for what it finds in the state.
type CommitResult struct {
	Committed bool   `json:"committed"`
	Index     uint64 `json:"index,omitempty"` // raft index of the commit entry
	Again     bool   `json:"again,omitempty"` // the stage was committed by an earlier entry
	Reason    string `json:"reason,omitempty"`
}

// ParseCommitResult reads the Result key of an OpStageCommit.
func ParseCommitResult(key string) CommitResult {
	var r CommitResult
	if err := json.Unmarshal([]byte(key), &r); err != nil {
		return CommitResult{Reason: fmt.Sprintf("unreadable commit result %q", key)}
	}
	return r
}

// KV is one staged record.
type KV struct {
	Key   string
	Value []byte
}

var stageIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func validStageID(id string) error {
	if !stageIDPattern.MatchString(id) {
		return fmt.Errorf("bad stage id %q (1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit)", id)
	}
	return nil
}

// StageBegin returns the op creating stage info.ID (replacing a stage of
// that id, if any).
func StageBegin(info StageInfo) (Op, error) {
	if err := validStageID(info.ID); err != nil {
		return Op{}, err
	}
	b, err := json.Marshal(StageInfo{ID: info.ID, Node: info.Node, Source: info.Source, StartedAt: info.StartedAt})
	if err != nil {
		return Op{}, err
	}
	return Op{Type: OpStageBegin, Key: info.ID, Value: b}, nil
}

// stagePutVersion prefixes the packed records of an OpStagePut.
const stagePutVersion = 1

// StagePut returns the op adding recs of table to stage id. touched is
// recorded as the stage's last activity. Keep one op to a few MB.
func StagePut(id, table string, touched time.Time, recs []KV) Op {
	n := 1 + 2*binary.MaxVarintLen64
	for _, r := range recs {
		n += 2*binary.MaxVarintLen64 + len(r.Key) + len(r.Value)
	}
	b := make([]byte, 0, n)
	b = append(b, stagePutVersion)
	b = binary.AppendUvarint(b, uint64(max(touched.UnixMilli(), 0)))
	b = binary.AppendUvarint(b, uint64(len(recs)))
	for _, r := range recs {
		b = binary.AppendUvarint(b, uint64(len(r.Key)))
		b = append(b, r.Key...)
		b = binary.AppendUvarint(b, uint64(len(r.Value)))
		b = append(b, r.Value...)
	}
	return Op{Type: OpStagePut, Table: table, Key: id, Value: b}
}

// StageCommit returns the op committing stage id.
func StageCommit(id string, spec CommitSpec) (Op, error) {
	if err := validStageID(id); err != nil {
		return Op{}, err
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return Op{}, err
	}
	return Op{Type: OpStageCommit, Key: id, Value: b}, nil
}

// StageAbort returns the op removing stage id.
func StageAbort(id string) Op { return Op{Type: OpStageAbort, Key: id} }

// unpackStage calls fn for each record packed by StagePut. The slices
// point into b.
func unpackStage(b []byte, fn func(k, v []byte) error) (touchedMs uint64, err error) {
	bad := errors.New("malformed staged records")
	if len(b) < 1 || b[0] != stagePutVersion {
		return 0, fmt.Errorf("%w: unknown version", bad)
	}
	b = b[1:]
	touchedMs, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, bad
	}
	b = b[n:]
	count, n := binary.Uvarint(b)
	if n <= 0 || count > uint64(len(b)) {
		return 0, bad
	}
	b = b[n:]
	next := func() ([]byte, error) {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return nil, bad
		}
		v := b[n : n+int(l)]
		b = b[n+int(l):]
		return v, nil
	}
	for range count {
		k, err := next()
		if err != nil {
			return 0, err
		}
		v, err := next()
		if err != nil {
			return 0, err
		}
		if err := fn(k, v); err != nil {
			return 0, err
		}
	}
	if len(b) != 0 {
		return 0, fmt.Errorf("%w: %d trailing bytes", bad, len(b))
	}
	return touchedMs, nil
}

func isStageOp(t OpType) bool { return t >= OpStageBegin && t <= OpSync }

func stageOpName(t OpType) string {
	switch t {
	case OpStageBegin:
		return "stage-begin"
	case OpStagePut:
		return "stage-put"
	case OpStageCommit:
		return "stage-commit"
	case OpStageAbort:
		return "stage-abort"
	case OpSync:
		return "sync"
	}
	return fmt.Sprintf("op(%d)", byte(t))
}

func stageTable(t string) bool { return t != TableMembers && knownTable(t) }

// validateStageOp refuses stage ops a replica could not apply as meant.
func validateStageOp(op Op) error {
	if op.Type == OpSync {
		return nil
	}
	if err := validStageID(op.Key); err != nil {
		return err
	}
	if len(op.Value) > maxValueSize {
		return fmt.Errorf("%s of stage %s: %d bytes, more than the %d allowed", op.Type, op.Key, len(op.Value), maxValueSize)
	}
	switch op.Type {
	case OpStageBegin:
		var info StageInfo
		if err := json.Unmarshal(op.Value, &info); err != nil {
			return fmt.Errorf("stage-begin %s: bad info: %w", op.Key, err)
		}
	case OpStagePut:
		if !stageTable(op.Table) {
			return fmt.Errorf("stage-put %s: unknown table %q", op.Key, op.Table)
		}
		_, err := unpackStage(op.Value, func(k, v []byte) error {
			switch {
			case len(k) == 0:
				return fmt.Errorf("empty key in table %s", op.Table)
			case len(k) > bolt.MaxKeySize:
				return fmt.Errorf("key in table %s is %d bytes, more than the %d allowed", op.Table, len(k), bolt.MaxKeySize)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("stage-put %s: %w", op.Key, err)
		}
	case OpStageCommit:
		if _, err := decodeSpec(op.Value); err != nil {
			return fmt.Errorf("stage-commit %s: %w", op.Key, err)
		}
	}
	return nil
}

func decodeSpec(b []byte) (CommitSpec, error) {
	var spec CommitSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		return spec, fmt.Errorf("bad commit spec: %w", err)
	}
	if spec.Mode != MergeMode && spec.Mode != ReplaceMode {
		return spec, fmt.Errorf("bad commit mode %q (merge or replace)", spec.Mode)
	}
	for t, n := range spec.Counts {
		if !stageTable(t) {
			return spec, fmt.Errorf("unknown table %q in commit spec", t)
		}
		if n < 0 {
			return spec, fmt.Errorf("negative count %d for table %s", n, t)
		}
	}
	return spec, nil
}

// nextStageCommit returns the position, from from on, of the first entry
// carrying an OpStageCommit, or -1.
func nextStageCommit(logs []*raft.Log, from int) int {
	for i := from; i < len(logs); i++ {
		if logs[i].Type == raft.LogCommand && hasOpType(logs[i].Data, OpStageCommit) {
			return i
		}
	}
	return -1
}

// hasOpType reports whether an encoded command has an op of type t,
// without decoding (and copying) the ops.
func hasOpType(b []byte, t OpType) bool {
	if len(b) < 1 || b[0] != commandVersion {
		return false
	}
	b = b[1:]
	count, n := binary.Uvarint(b)
	if n <= 0 {
		return false
	}
	b = b[n:]
	for range count {
		if len(b) < 1 {
			return false
		}
		if OpType(b[0]) == t {
			return true
		}
		b = b[1:]
		for range 3 { // table, key, value
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return false
			}
			b = b[n+int(l):]
		}
	}
	return false
}

// applyStageOp applies one stage op. It fails only when bbolt does: what
// it finds in the state (a missing stage, a stage with fewer records
// than the commit expects) makes it do nothing, the same on every replica.
func applyStageOp(tx *bolt.Tx, op Op, index uint64) (string, []Change, error) {
	switch op.Type {
	case OpSync:
		return "", nil, nil
	case OpStageBegin:
		root, err := tx.CreateBucketIfNotExists(stageBucket)
		if err != nil {
			return "", nil, err
		}
		if root.Bucket([]byte(op.Key)) != nil {
			if err := root.DeleteBucket([]byte(op.Key)); err != nil {
				return "", nil, err
			}
		}
		sb, err := root.CreateBucket([]byte(op.Key))
		if err != nil {
			return "", nil, err
		}
		var info StageInfo
		if err := json.Unmarshal(op.Value, &info); err != nil {
			return "", nil, nil // refused by validateStageOp; never here
		}
		info.Index = index
		b, err := json.Marshal(info)
		if err != nil {
			return "", nil, err
		}
		return "", nil, sb.Put(infoKey, b)
	case OpStagePut:
		sb := stage(tx, op.Key)
		if sb == nil {
			return "", nil, nil // aborted meanwhile: the commit will find it missing
		}
		if _, err := unpackStage(op.Value, func(k, v []byte) error { return nil }); err != nil {
			return "", nil, nil // refused by validateStageOp; never here
		}
		tb, err := sb.CreateBucketIfNotExists([]byte(op.Table))
		if err != nil {
			return "", nil, err
		}
		ms, err := unpackStage(op.Value, func(k, v []byte) error { return tb.Put(k, v) })
		if err != nil {
			return "", nil, err
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], ms)
		return "", nil, sb.Put(touchedKey, b[:])
	case OpStageAbort:
		root := tx.Bucket(stageBucket)
		if root == nil || root.Bucket([]byte(op.Key)) == nil {
			return "", nil, nil
		}
		return "", nil, root.DeleteBucket([]byte(op.Key))
	case OpStageCommit:
		res, err := commitStage(tx, op.Key, op.Value, index)
		if err != nil {
			return "", nil, err
		}
		b, err := json.Marshal(res)
		if err != nil {
			return "", nil, err
		}
		var ch []Change
		if res.Committed && !res.Again {
			ch = []Change{{Index: index}} // a Reset: observers reload the tables
		}
		return string(b), ch, nil
	}
	return "", nil, fmt.Errorf("unknown stage op %d", op.Type)
}

func stage(tx *bolt.Tx, id string) *bolt.Bucket {
	root := tx.Bucket(stageBucket)
	if root == nil {
		return nil
	}
	return root.Bucket([]byte(id))
}

func commitStage(tx *bolt.Tx, id string, rawSpec []byte, index uint64) (CommitResult, error) {
	root := tx.Bucket(stageBucket)
	if root != nil {
		if done := root.Bucket(doneBucket); done != nil {
			if v := done.Get([]byte(id)); v != nil {
				var r CommitResult
				_ = json.Unmarshal(v, &r)
				r.Again = true
				return r, nil
			}
		}
	}
	sb := stage(tx, id)
	if sb == nil {
		return CommitResult{Reason: fmt.Sprintf("no stage %s: it was aborted or removed", id)}, nil
	}
	spec, err := decodeSpec(rawSpec)
	if err != nil {
		return CommitResult{Reason: err.Error()}, nil
	}
	var tables []string
	for _, t := range Tables { // a fixed order: every replica does the same
		if _, ok := spec.Counts[t]; ok {
			tables = append(tables, t)
		}
	}
	fail := func(format string, args ...any) (CommitResult, error) {
		if err := root.DeleteBucket([]byte(id)); err != nil {
			return CommitResult{}, err
		}
		return CommitResult{Reason: fmt.Sprintf(format, args...)}, nil
	}
	for _, t := range tables {
		n := 0
		if tb := sb.Bucket([]byte(t)); tb != nil {
			n = tb.Stats().KeyN
		}
		if n != spec.Counts[t] {
			return fail("stage %s is incomplete: %d records staged for table %s, want %d", id, n, t, spec.Counts[t])
		}
	}
	if tb := sb.Bucket([]byte(TableACL)); tb != nil && spec.Counts[TableACL] > 0 {
		if err := tb.ForEach(func(k, v []byte) error {
			_, err := decodeACLStaged(k, v)
			return err
		}); err != nil {
			return fail("stage %s: %v", id, err)
		}
	}

	for _, t := range tables {
		real := tx.Bucket([]byte(t))
		first, _ := real.Cursor().First()
		empty := first == nil
		switch {
		case spec.Mode == ReplaceMode || empty:
			if err := swapInStaged(tx, sb, t); err != nil {
				return CommitResult{}, fmt.Errorf("commit stage %s: table %s: %w", id, t, err)
			}
		case t == TableACL:
			if err := mergeACL(real, sb.Bucket([]byte(t))); err != nil {
				return CommitResult{}, fmt.Errorf("commit stage %s: table %s: %w", id, t, err)
			}
		default:
			if staged := sb.Bucket([]byte(t)); staged != nil {
				if err := staged.ForEach(func(k, v []byte) error {
					if bytes.Equal(real.Get(k), v) {
						return nil
					}
					return real.Put(k, v)
				}); err != nil {
					return CommitResult{}, fmt.Errorf("commit stage %s: table %s: %w", id, t, err)
				}
			}
		}
	}

	if err := root.DeleteBucket([]byte(id)); err != nil {
		return CommitResult{}, err
	}
	res := CommitResult{Committed: true, Index: index}
	done, err := root.CreateBucketIfNotExists(doneBucket)
	if err != nil {
		return CommitResult{}, err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return CommitResult{}, err
	}
	if err := done.Put([]byte(id), b); err != nil {
		return CommitResult{}, err
	}
	// Forget the oldest (ids start with their time) beyond keptDone.
	if extra := done.Stats().KeyN - keptDone; extra > 0 {
		var old [][]byte
		c := done.Cursor()
		for k, _ := c.First(); k != nil && len(old) < extra; k, _ = c.Next() {
			old = append(old, bytes.Clone(k))
		}
		for _, k := range old {
			if err := done.Delete(k); err != nil {
				return CommitResult{}, err
			}
		}
	}
	return res, nil
}

// swapInStaged makes table t the staged bucket (or empty when nothing
// was staged for it), keeping the table's sequence so ids stay unique.
func swapInStaged(tx *bolt.Tx, sb *bolt.Bucket, t string) error {
	name := []byte(t)
	seq := tx.Bucket(name).Sequence()
	staged := sb.Bucket(name)
	if staged != nil && t == TableACL {
		if k, _ := staged.Cursor().Last(); k != nil {
			if id, err := strconv.ParseUint(string(k), 16, 64); err == nil {
				seq = max(seq, id)
			}
		}
	}
	if err := tx.DeleteBucket(name); err != nil {
		return err
	}
	if staged != nil {
		if err := tx.MoveBucket(name, sb, nil); err != nil {
			return fmt.Errorf("move staged records in: %w", err)
		}
	} else if _, err := tx.CreateBucket(name); err != nil {
		return err
	}
	return tx.Bucket(name).SetSequence(seq)
}

// ACLMatch is what makes two ACL rules "the same rule" when merging.
type ACLMatch struct{ Kind, Value, Topic, Action string }

// MatchOf returns the merge identity of a rule.
func (r *ACLRule) MatchOf() ACLMatch {
	return ACLMatch{Kind: r.Kind, Value: r.Value, Topic: r.Topic, Action: r.Action}
}

func decodeACLStaged(k, v []byte) (ACLRule, error) {
	var r ACLRule
	if err := json.Unmarshal(v, &r); err != nil {
		return r, fmt.Errorf("staged acl rule %s: %w", k, err)
	}
	return r, nil
}

// mergeACL merges staged rules (in their order) into a non-empty ACL
// table: the n-th staged rule with a given ACLMatch meets the n-th
// existing one (unchanged when the permission is the same, else it takes
// the staged rule under the existing id); unmatched staged rules are
// appended, keeping their own id when it is above every id in use.
func mergeACL(real, staged *bolt.Bucket) error {
	if staged == nil {
		return nil
	}
	type existing struct {
		id   uint64
		perm string
	}
	idx := map[ACLMatch][]existing{}
	maxID := real.Sequence()
	if err := real.ForEach(func(k, v []byte) error {
		id, err := strconv.ParseUint(string(k), 16, 64)
		if err != nil {
			return nil // not a rule key: leave it alone
		}
		maxID = max(maxID, id)
		var r ACLRule
		if json.Unmarshal(v, &r) != nil {
			return nil // undecodable: it matches nothing
		}
		idx[r.MatchOf()] = append(idx[r.MatchOf()], existing{id, r.Permission})
		return nil
	}); err != nil {
		return err
	}
	type put struct {
		key string
		val []byte
	}
	var puts []put
	if err := staged.ForEach(func(k, v []byte) error {
		r, err := decodeACLStaged(k, v)
		if err != nil {
			return err
		}
		m := r.MatchOf()
		if list := idx[m]; len(list) > 0 {
			e := list[0]
			idx[m] = list[1:]
			if e.perm == r.Permission {
				return nil
			}
			nv, err := setID(v, e.id)
			if err != nil {
				return err
			}
			puts = append(puts, put{ACLKey(e.id), nv})
			return nil
		}
		id := r.ID
		val := v
		if id <= maxID {
			id = maxID + 1
			if val, err = setID(v, id); err != nil {
				return err
			}
		}
		maxID = id
		puts = append(puts, put{ACLKey(id), val})
		return nil
	}); err != nil {
		return err
	}
	for _, p := range puts {
		if err := real.Put([]byte(p.key), p.val); err != nil {
			return err
		}
	}
	return real.SetSequence(maxID)
}

// WithRecordID returns the JSON object obj with its "id" member set to
// id, encoded as the store encodes an appended ACL rule.
func WithRecordID(obj []byte, id uint64) ([]byte, error) { return setID(obj, id) }

// Stages lists the stages in the local state, oldest first.
func (s *Store) Stages() ([]StageInfo, error) {
	var out []StageInfo
	err := s.View(func(t *Tx) error {
		root := t.tx.Bucket(stageBucket)
		if root == nil {
			return nil
		}
		return root.ForEachBucket(func(k []byte) error {
			if bytes.Equal(k, doneBucket) {
				return nil
			}
			sb := root.Bucket(k)
			var info StageInfo
			if v := sb.Get(infoKey); v != nil {
				_ = json.Unmarshal(v, &info)
			}
			info.ID = string(k)
			if v := sb.Get(touchedKey); len(v) == 8 {
				info.Touched = time.UnixMilli(int64(binary.BigEndian.Uint64(v))).UTC()
			}
			_ = sb.ForEachBucket(func(t []byte) error {
				info.Records += sb.Bucket(t).Stats().KeyN
				return nil
			})
			out = append(out, info)
			return nil
		})
	})
	return out, err
}

// SyncPoint returns a raft index such that the local state, once it has
// applied that index, reflects every write committed before the call: a
// linearizable read point. The leader confirms it with a raft barrier; a
// follower commits an OpSync entry through the leader and waits until it
// has applied it. The caller then reads with View (whose AppliedIndex is
// at least the returned index).
func (s *Store) SyncPoint(ctx context.Context) (uint64, error) {
	if s.IsLeader() {
		idx, err := s.Barrier(ctx)
		if err == nil {
			return idx, nil
		}
		if !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, raft.ErrLeadershipLost) {
			return 0, err
		}
	}
	res, err := s.Apply(ctx, Op{Type: OpSync})
	if err != nil {
		return 0, fmt.Errorf("store: sync point: %w", err)
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for s.AppliedIndex() < res.Index {
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("store: sync point: waiting to apply index %d (at %d): %w", res.Index, s.AppliedIndex(), ctx.Err())
		case <-t.C:
		}
	}
	return res.Index, nil
}
