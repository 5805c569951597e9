package store

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

func userKV(t *testing.T, id, hash string) KV {
	t.Helper()
	b, err := json.Marshal(User{V: RecordVersion, Kind: KindUsername, ID: id, Algorithm: "plain", PasswordHash: hash})
	if err != nil {
		t.Fatal(err)
	}
	return KV{Key: UserKey(KindUsername, id), Value: b}
}

func aclKV(t *testing.T, id uint64, value, topic, perm string) KV {
	t.Helper()
	b, err := json.Marshal(ACLRule{V: RecordVersion, ID: id, Kind: KindUsername, Value: value, Topic: topic, Action: "all", Permission: perm})
	if err != nil {
		t.Fatal(err)
	}
	return KV{Key: ACLKey(id), Value: b}
}

// stageAndCommit stages recs per table in chunks of 2 and commits them.
func stageAndCommit(t *testing.T, s *Store, id, mode string, recs map[string][]KV) CommitResult {
	t.Helper()
	ctx := context.Background()
	begin, err := StageBegin(StageInfo{ID: id, Node: "n1", StartedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, begin); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for table, kvs := range recs {
		counts[table] = len(kvs)
		for i := 0; i < len(kvs); i += 2 {
			if _, err := s.Apply(ctx, StagePut(id, table, time.Now(), kvs[i:min(i+2, len(kvs))])); err != nil {
				t.Fatal(err)
			}
		}
	}
	op, err := StageCommit(id, CommitSpec{Mode: mode, Counts: counts})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Apply(ctx, op)
	if err != nil {
		t.Fatal(err)
	}
	return ParseCommitResult(res.Keys[0])
}

func tableMap(t *testing.T, s *Store, table string) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := s.View(func(tx *Tx) error {
		return tx.ForEach(table, func(k string, v []byte) error { out[k] = string(v); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestStageCommitMergeAndReplace(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	var mu sync.Mutex
	resets := 0
	s.OnChange(func(ch []Change) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range ch {
			if c.Reset() {
				resets++
			}
		}
	})
	old := userKV(t, "old", "o")
	keep := userKV(t, "keep", "k1")
	if _, err := s.Apply(ctx, Op{Type: OpPut, Table: TableUsers, Key: old.Key, Value: old.Value},
		Op{Type: OpPut, Table: TableUsers, Key: keep.Key, Value: keep.Value}); err != nil {
		t.Fatal(err)
	}

	// Merge: keep is updated, a and b added, old stays; the empty banned
	// table is committed by moving the staged bucket in.
	keep2 := userKV(t, "keep", "k2")
	ban, _ := json.Marshal(Ban{V: 1, Kind: KindClientID, Value: "x"})
	r := stageAndCommit(t, s, "s1", MergeMode, map[string][]KV{
		TableUsers:  {userKV(t, "a", "1"), userKV(t, "b", "2"), keep2},
		TableBanned: {{Key: BanKey(KindClientID, "x"), Value: ban}},
	})
	if !r.Committed || r.Index == 0 {
		t.Fatalf("merge not committed: %+v", r)
	}
	users := tableMap(t, s, TableUsers)
	if len(users) != 4 || users[keep.Key] != string(keep2.Value) || users[old.Key] != string(old.Value) {
		t.Fatalf("after merge: %v", users)
	}
	if b := tableMap(t, s, TableBanned); len(b) != 1 {
		t.Fatalf("banned after merge: %v", b)
	}

	// Replace: users becomes exactly the staged records; banned, not in
	// the spec, is untouched.
	r = stageAndCommit(t, s, "s2", ReplaceMode, map[string][]KV{TableUsers: {userKV(t, "z", "9")}})
	if !r.Committed {
		t.Fatalf("replace not committed: %+v", r)
	}
	if users := tableMap(t, s, TableUsers); len(users) != 1 || users["username:z"] == "" {
		t.Fatalf("after replace: %v", users)
	}
	if b := tableMap(t, s, TableBanned); len(b) != 1 {
		t.Fatalf("banned touched by a replace of users: %v", b)
	}
	// Replace with zero records empties the table.
	if r = stageAndCommit(t, s, "s3", ReplaceMode, map[string][]KV{TableBanned: nil}); !r.Committed {
		t.Fatalf("empty replace: %+v", r)
	}
	if b := tableMap(t, s, TableBanned); len(b) != 0 {
		t.Fatalf("banned after empty replace: %v", b)
	}
	mu.Lock()
	if resets != 3 {
		t.Errorf("observers saw %d reset changes, want 3 (one per commit)", resets)
	}
	mu.Unlock()
	if st, err := s.Stages(); err != nil || len(st) != 0 {
		t.Fatalf("stages left after commits: %+v %v", st, err)
	}

	// The same commit entry applied again (a retried forward) reports
	// success and changes nothing.
	op, _ := StageCommit("s2", CommitSpec{Mode: ReplaceMode, Counts: map[string]int{TableUsers: 1}})
	res, err := s.Apply(ctx, op)
	if err != nil {
		t.Fatal(err)
	}
	if again := ParseCommitResult(res.Keys[0]); !again.Committed || !again.Again {
		t.Fatalf("second commit of s2: %+v", again)
	}
}

func TestStageIncompleteOrAbortedIsNotCommitted(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	u := userKV(t, "u", "1")
	if _, err := s.Apply(ctx, Op{Type: OpPut, Table: TableUsers, Key: u.Key, Value: u.Value}); err != nil {
		t.Fatal(err)
	}
	_, before, _ := s.Digest()

	begin, _ := StageBegin(StageInfo{ID: "inc", Node: "n1"})
	s.Apply(ctx, begin, StagePut("inc", TableUsers, time.Now(), []KV{userKV(t, "v", "2")}))
	op, _ := StageCommit("inc", CommitSpec{Mode: ReplaceMode, Counts: map[string]int{TableUsers: 2}})
	res, err := s.Apply(ctx, op)
	if err != nil {
		t.Fatal(err)
	}
	if r := ParseCommitResult(res.Keys[0]); r.Committed || r.Reason == "" {
		t.Fatalf("incomplete stage committed: %+v", r)
	}

	begin, _ = StageBegin(StageInfo{ID: "ab", Node: "n1"})
	s.Apply(ctx, begin, StagePut("ab", TableUsers, time.Now(), []KV{userKV(t, "w", "3")}))
	if st, _ := s.Stages(); len(st) != 1 || st[0].ID != "ab" || st[0].Records != 1 || st[0].Node != "n1" || st[0].Touched.IsZero() {
		t.Fatalf("stages: %+v", st)
	}
	s.Apply(ctx, StageAbort("ab"))
	op, _ = StageCommit("ab", CommitSpec{Mode: MergeMode, Counts: map[string]int{TableUsers: 1}})
	res, _ = s.Apply(ctx, op)
	if r := ParseCommitResult(res.Keys[0]); r.Committed {
		t.Fatalf("aborted stage committed: %+v", r)
	}
	// A put after an abort stages nothing.
	s.Apply(ctx, StagePut("ab", TableUsers, time.Now(), []KV{userKV(t, "w", "3")}))
	_, after, _ := s.Digest()
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("tables changed:\n%v\n%v", before, after)
	}
	if st, _ := s.Stages(); len(st) != 0 {
		t.Fatalf("stages left: %+v", st)
	}
}

// A node that stops between staging and commit keeps its old data, with
// the stage still there (invisible) until it is aborted.
func TestStageCrashBeforeCommitKeepsOldData(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ctx := context.Background()
	u := userKV(t, "u", "1")
	s.Apply(ctx, Op{Type: OpPut, Table: TableUsers, Key: u.Key, Value: u.Value})
	_, before, _ := s.Digest()
	begin, _ := StageBegin(StageInfo{ID: "crash", Node: "n1"})
	if _, err := s.Apply(ctx, begin, StagePut("crash", TableUsers, time.Now(), []KV{userKV(t, "x", "2"), userKV(t, "u", "changed")})); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	defer s.Close()
	_, after, _ := s.Digest()
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("tables changed by a stage that was never committed:\n%v\n%v", before, after)
	}
	st, err := s.Stages()
	if err != nil || len(st) != 1 || st[0].Records != 2 {
		t.Fatalf("stage after reopen: %+v %v", st, err)
	}
	s.Apply(ctx, StageAbort("crash"))
	if st, _ := s.Stages(); len(st) != 0 {
		t.Fatalf("stage not aborted: %+v", st)
	}
}

func TestStageACLMerge(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	// Existing: 1 alice a/# allow, 2 bob b/# deny (ids from appends).
	for _, r := range []ACLRule{
		{V: 1, Kind: KindUsername, Value: "alice", Topic: "a/#", Action: "all", Permission: "allow"},
		{V: 1, Kind: KindUsername, Value: "bob", Topic: "b/#", Action: "all", Permission: "deny"},
	} {
		op, _ := Append(TableACL, r)
		if _, err := s.Apply(ctx, op); err != nil {
			t.Fatal(err)
		}
	}
	// Staged: alice identical (unchanged), bob allow (changed, keeps id
	// 2), carol with the file's id 1 (appended as 3), dave id 10 (kept).
	r := stageAndCommit(t, s, "acl1", MergeMode, map[string][]KV{TableACL: {
		aclKV(t, 1, "carol", "c/#", "allow"),
		aclKV(t, 5, "alice", "a/#", "allow"),
		aclKV(t, 6, "bob", "b/#", "allow"),
		aclKV(t, 10, "dave", "d/#", "deny"),
	}})
	if !r.Committed {
		t.Fatalf("%+v", r)
	}
	var rules []ACLRule
	s.View(func(tx *Tx) (err error) { rules, err = List[ACLRule](tx, TableACL); return err })
	got := ""
	for _, r := range rules {
		got += fmt.Sprintf("%d:%s:%s ", r.ID, r.Value, r.Permission)
	}
	if want := "1:alice:allow 2:bob:allow 3:carol:allow 10:dave:deny "; got != want {
		t.Fatalf("rules after merge: %s, want %s", got, want)
	}
	// The next appended rule gets an id after every imported one.
	op, _ := Append(TableACL, ACLRule{V: 1, Kind: KindAll, Topic: "#", Action: "all", Permission: "deny"})
	res, _ := s.Apply(ctx, op)
	if res.Keys[0] != ACLKey(11) {
		t.Fatalf("next append key %s, want %s", res.Keys[0], ACLKey(11))
	}
}

// Stage puts and their commit applied in one FSM batch (a follower
// catching up) must commit everything staged: bbolt cannot move a bucket
// written earlier in the same transaction, so the batch is split.
func TestStagePutsAndCommitInOneBatch(t *testing.T) {
	f, err := newFSM(filepath.Join(t.TempDir(), "state.db"), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	begin, _ := StageBegin(StageInfo{ID: "b1", Node: "n1"})
	var recs []KV
	for i := range 3000 {
		recs = append(recs, userKV(t, fmt.Sprintf("u%05d", i), "h"))
	}
	commit, _ := StageCommit("b1", CommitSpec{Mode: ReplaceMode, Counts: map[string]int{TableUsers: len(recs)}})
	logs := []*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogCommand, Data: encodeOps([]Op{begin})},
		{Index: 2, Term: 1, Type: raft.LogCommand, Data: encodeOps([]Op{StagePut("b1", TableUsers, time.Now(), recs[:1000])})},
		{Index: 3, Term: 1, Type: raft.LogCommand, Data: encodeOps([]Op{StagePut("b1", TableUsers, time.Now(), recs[1000:])})},
		{Index: 4, Term: 1, Type: raft.LogCommand, Data: encodeOps([]Op{commit})},
		{Index: 5, Term: 1, Type: raft.LogCommand, Data: encodeOps([]Op{{Type: OpPut, Table: TableConfig, Key: "k", Value: []byte(`{}`)}})},
	}
	resp := f.ApplyBatch(logs)
	r := ParseCommitResult(resp[3].(applyResult).keys[0])
	if !r.Committed {
		t.Fatalf("commit in batch: %+v", r)
	}
	n := 0
	f.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket([]byte(TableUsers)).Stats().KeyN
		return nil
	})
	if n != len(recs) {
		t.Fatalf("%d users after a batched stage+commit, want %d", n, len(recs))
	}
	if idx, _ := f.applied(); idx != 5 {
		t.Fatalf("applied index %d, want 5", idx)
	}
}

func TestHasOpTypeAndValidation(t *testing.T) {
	commit, _ := StageCommit("x", CommitSpec{Mode: MergeMode, Counts: map[string]int{TableUsers: 1}})
	put := Op{Type: OpPut, Table: TableUsers, Key: "k", Value: []byte("v")}
	if !hasOpType(encodeOps([]Op{put, commit}), OpStageCommit) || hasOpType(encodeOps([]Op{put}), OpStageCommit) {
		t.Fatal("hasOpType")
	}
	for _, bad := range []Op{
		{Type: OpStageBegin, Key: "../x", Value: []byte(`{}`)},
		{Type: OpStageBegin, Key: "_done", Value: []byte(`{}`)},
		{Type: OpStagePut, Key: "x", Table: TableMembers, Value: StagePut("x", TableUsers, time.Now(), nil).Value},
		{Type: OpStagePut, Key: "x", Table: TableUsers, Value: []byte{1, 2}},
		StagePut("x", TableUsers, time.Now(), []KV{{Key: "", Value: []byte("v")}}),
		{Type: OpStageCommit, Key: "x", Value: []byte(`{"mode":"wipe"}`)},
		{Type: OpStageCommit, Key: "x", Value: []byte(`{"mode":"merge","counts":{"members":1}}`)},
	} {
		if err := validateOps([]Op{bad}); err == nil {
			t.Errorf("op %s %q accepted", bad.Type, bad.Key)
		}
	}
	if err := validateOps([]Op{{Type: OpSync}, commit, StageAbort("x")}); err != nil {
		t.Fatal(err)
	}
}

func TestSyncPoint(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	u := userKV(t, "u", "1")
	res, err := s.Apply(context.Background(), Op{Type: OpPut, Table: TableUsers, Key: u.Key, Value: u.Value})
	if err != nil {
		t.Fatal(err)
	}
	idx, err := s.SyncPoint(context.Background())
	if err != nil || idx < res.Index {
		t.Fatalf("sync point %d (%v), want >= %d", idx, err, res.Index)
	}
}
