package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

func openTest(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(Options{Dir: dir, NodeID: "n1", Advertise: "127.0.0.1:4370", Bootstrap: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func mustPut(t *testing.T, table, key string, rec any) Op {
	t.Helper()
	op, err := Put(table, key, rec)
	if err != nil {
		t.Fatal(err)
	}
	return op
}

func TestApplyViewAndReopen(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ctx := context.Background()
	u := User{V: RecordVersion, Kind: KindUsername, ID: "alice", Algorithm: "sha256", PasswordHash: "x"}
	if _, err := s.Apply(ctx, mustPut(t, TableUsers, UserKey(u.Kind, u.ID), u)); err != nil {
		t.Fatal(err)
	}
	rule := ACLRule{V: RecordVersion, Kind: KindAll, Topic: "a/#", Action: "all", Permission: "allow"}
	op, _ := Append(TableACL, rule)
	res, err := s.Apply(ctx, op, op)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Keys) != 2 || res.Keys[0] == res.Keys[1] {
		t.Fatalf("append keys: %v", res.Keys)
	}
	idx1, dig1, err := s.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, dir)
	defer s.Close()
	var got User
	var rules []ACLRule
	err = s.View(func(tx *Tx) error {
		var ok bool
		got, ok, err = Get[User](tx, TableUsers, "username:alice")
		if !ok {
			return fmt.Errorf("alice missing after reopen")
		}
		rules, err = List[ACLRule](tx, TableACL)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "alice" || got.PasswordHash != "x" {
		t.Fatalf("got %+v", got)
	}
	if len(rules) != 2 || rules[0].ID != 1 || rules[1].ID != 2 {
		t.Fatalf("rules %+v", rules)
	}
	// The log replayed on start must not be applied twice: appends would
	// then have made more rules.
	idx2, dig2, _ := s.Digest()
	if idx2 < idx1 {
		t.Fatalf("applied index went back: %d < %d", idx2, idx1)
	}
	for i := range dig1 {
		if dig1[i] != dig2[i] {
			t.Fatalf("table %s changed across restart: %+v vs %+v", dig1[i].Table, dig1[i], dig2[i])
		}
	}
}

func TestConcurrentWritesShareEntries(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	before := s.AppliedIndex()
	const n = 2000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		op := mustPut(t, TableRetained, fmt.Sprintf("t/%d", i), Retained{V: 1, Topic: fmt.Sprintf("t/%d", i), Payload: []byte("p")})
		s.ApplyAsync(ctx, []Op{op}, func(_ *Result, err error) {
			if err != nil {
				errs <- err
			}
			wg.Done()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	entries := s.AppliedIndex() - before
	var count int
	s.View(func(tx *Tx) error { count = tx.Count(TableRetained); return nil })
	if count != n {
		t.Fatalf("count %d want %d", count, n)
	}
	if entries >= n/2 {
		t.Fatalf("%d writes took %d raft entries: not batched", n, entries)
	}
	t.Logf("%d writes in %d raft entries", n, entries)
}

func TestSnapshotRestoreAndClear(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		if _, err := s.Apply(ctx, mustPut(t, TableBanned, fmt.Sprintf("clientid:c%d", i), Ban{V: 1, Kind: KindClientID, Value: fmt.Sprint(i)})); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	_, d1, _ := s.Digest()

	// A snapshot is a whole state file: restoring it into a fresh FSM
	// gives the same digest.
	snap, err := s.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := snap.(*boltSnapshot).tx.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	s.Close()

	var resets int
	f, err := newFSM(t.TempDir()+"/store.db", slog.Default(), func(ch []Change) {
		if len(ch) == 1 && ch[0].Reset() {
			resets++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	if resets != 1 {
		t.Fatalf("resets %d", resets)
	}
	s2 := &Store{fsm: f}
	_, d2, _ := s2.Digest()
	for i := range d1 {
		if d1[i] != d2[i] {
			t.Fatalf("digest differs after restore: %+v vs %+v", d1[i], d2[i])
		}
	}
	f.close()

	s = openTest(t, dir)
	defer s.Close()
	if _, err := s.Apply(ctx, Clear(TableBanned)); err != nil {
		t.Fatal(err)
	}
	s.View(func(tx *Tx) error {
		if n := tx.Count(TableBanned); n != 0 {
			t.Fatalf("banned not cleared: %d", n)
		}
		return nil
	})
}

func TestOnChangeAndUnknownTable(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	got := make(chan Change, 4)
	s.OnChange(func(ch []Change) {
		for _, c := range ch {
			got <- c
		}
	})
	ctx := context.Background()
	if _, err := s.Apply(ctx, Delete(TableUsers, "username:nobody")); err != nil {
		t.Fatal(err)
	}
	c := <-got
	if c.Type != OpDelete || c.Table != TableUsers || c.Key != "username:nobody" {
		t.Fatalf("change %+v", c)
	}
}

func TestDecodeOpsRejectsGarbage(t *testing.T) {
	ops := []Op{{Type: OpPut, Table: "users", Key: "k", Value: []byte("v")}, Delete("acl", "x")}
	b := encodeOps(ops)
	back, err := decodeOps(b)
	if err != nil || len(back) != 2 || back[0].Key != "k" || string(back[0].Value) != "v" || back[1].Type != OpDelete {
		t.Fatalf("roundtrip: %+v %v", back, err)
	}
	for i := 0; i < len(b); i++ {
		if _, err := decodeOps(b[:i]); err == nil {
			t.Fatalf("truncated to %d bytes decoded without error", i)
		}
	}
}

func FuzzDecodeOps(f *testing.F) {
	f.Add(encodeOps([]Op{{Type: OpPut, Table: "users", Key: "k", Value: []byte("v")}}))
	f.Add([]byte{1, 255, 255, 255, 255, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		ops, err := decodeOps(b)
		if err == nil {
			if again, err := decodeOps(encodeOps(ops)); err != nil || len(again) != len(ops) {
				t.Fatalf("re-encode: %v", err)
			}
		}
	})
}

func TestUserBinarySaltRoundTrip(t *testing.T) {
	for _, salt := range []string{"", "hex0123abcd", "\x00\xff\xfe\x80", "ok\xc3"} {
		u := User{V: 1, Kind: KindUsername, ID: "u", Salt: salt, Algorithm: "sha256", PasswordHash: "h"}
		b, err := json.Marshal(u)
		if err != nil {
			t.Fatal(err)
		}
		var back User
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back != u {
			t.Fatalf("salt %q: round trip gave %+v from %s", salt, back, b)
		}
	}
}
