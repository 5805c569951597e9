package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
)

// wantCounts checks the cheap counts against a walk of every table.
func wantCounts(t *testing.T, s *Store, when string) {
	t.Helper()
	if err := s.View(func(tx *Tx) error {
		for _, table := range countedTables() {
			if got, want := s.Count(table), int64(tx.Count(table)); got != want {
				t.Errorf("%s: Count(%s) = %d, the table holds %d", when, table, got, want)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestCountFollowsEveryKindOfWrite(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ctx := context.Background()
	ret := func(topic string) Op {
		return mustPut(t, TableRetained, topic, Retained{V: RecordVersion, Topic: topic, Payload: []byte("x")})
	}
	for i := range 20 {
		if _, err := s.Apply(ctx, ret(fmt.Sprintf("t/%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Count(TableRetained); got != 20 {
		t.Fatalf("after 20 puts: Count = %d", got)
	}
	// Replacing a record, deleting one twice and one that never was, in
	// one entry: the count moves by the records that came and went.
	if _, err := s.Apply(ctx, ret("t/1"), ret("t/new"), Delete(TableRetained, "t/2"),
		Delete(TableRetained, "t/2"), Delete(TableRetained, "nope")); err != nil {
		t.Fatal(err)
	}
	if got := s.Count(TableRetained); got != 20 {
		t.Fatalf("after replace+add+delete: Count = %d, want 20", got)
	}
	wantCounts(t, s, "after puts and deletes")

	rule := ACLRule{V: RecordVersion, Kind: KindAll, Topic: "a/#", Action: "all", Permission: "allow"}
	app, _ := Append(TableACL, rule)
	if _, err := s.Apply(ctx, app, app, app); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, s, "after appends")

	// A clear followed by a put in the same entry.
	if _, err := s.Apply(ctx, Clear(TableRetained), ret("after/clear")); err != nil {
		t.Fatal(err)
	}
	if got := s.Count(TableRetained); got != 1 {
		t.Fatalf("after clear+put: Count = %d, want 1", got)
	}

	// Stage commits: merge adds, replace sets the table to the stage.
	if r := stageAndCommit(t, s, "m1", MergeMode, map[string][]KV{
		TableUsers: {userKV(t, "a", "1"), userKV(t, "b", "2")}}); !r.Committed {
		t.Fatalf("merge: %+v", r)
	}
	wantCounts(t, s, "after a merge commit")
	if r := stageAndCommit(t, s, "r1", ReplaceMode, map[string][]KV{TableUsers: {userKV(t, "z", "9")}}); !r.Committed {
		t.Fatalf("replace: %+v", r)
	}
	if got := s.Count(TableUsers); got != 1 {
		t.Fatalf("after replace commit: users Count = %d, want 1", got)
	}
	wantCounts(t, s, "after a replace commit")

	m := s.RaftMetrics()
	if m.FSMBatches == 0 || m.FSMEntries < m.FSMBatches || m.FSMApplyTime <= 0 {
		t.Errorf("fsm apply stats not counted: %+v", m)
	}
	if m.State != "leader" || !m.HasLeader || m.Term < 1 || m.Voters != 1 || !m.Servers || m.HasContact ||
		m.AppliedIndex == 0 || m.CommitIndex < m.AppliedIndex || m.LastLogIndex < m.CommitIndex {
		t.Errorf("raft metrics of a one-voter leader: %+v", m)
	}
	if m.LeaderChanges != 1 {
		t.Errorf("leader changes = %d, want 1 (this node elected once)", m.LeaderChanges)
	}

	// Counts are read from the file at open, and after a snapshot restore.
	snap, err := s.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := snap.(*boltSnapshot).tx.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	wantCounts(t, s, "after reopen")
	if got := s.Count(TableRetained); got != 1 {
		t.Errorf("after reopen: retained Count = %d, want 1", got)
	}
	s.Close()

	f, err := newFSM(t.TempDir()+"/store.db", slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	if n := f.count(TableACL); n != 0 {
		t.Fatalf("fresh fsm: acl count %d", n)
	}
	if err := f.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	if got := f.count(TableACL); got != 3 {
		t.Errorf("after restore: acl count = %d, want 3", got)
	}
	if got := f.count(TableUsers); got != 1 {
		t.Errorf("after restore: users count = %d, want 1", got)
	}
}
