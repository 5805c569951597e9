package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// A backup view written to a file, with the raft state WriteRaftState
// builds beside it, is a data dir a node starts on at the backup's index;
// writes made after the backup are not in it.
func TestBackupRestoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	s := openTest(t, src)
	for i := range 50 {
		u := User{V: RecordVersion, Kind: KindUsername, ID: fmt.Sprintf("u%d", i), Algorithm: "sha256", PasswordHash: "x"}
		if _, err := s.Apply(ctx, mustPut(t, TableUsers, UserKey(u.Kind, u.ID), u)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := s.BeginBackup()
	if err != nil {
		t.Fatal(err)
	}
	// A write while the view is open is not in it.
	late := User{V: RecordVersion, Kind: KindUsername, ID: "late", Algorithm: "sha256", PasswordHash: "x"}
	if _, err := s.Apply(ctx, mustPut(t, TableUsers, UserKey(late.Kind, late.ID), late)); err != nil {
		t.Fatal(err)
	}
	if b.Tables[TableUsers] != 50 {
		t.Fatalf("backup counts %v, want 50 users", b.Tables)
	}
	if len(b.Meta.Servers) != 1 || b.Meta.Servers[0].ID != "n1" || b.Meta.Index == 0 || b.Meta.Term == 0 || b.Meta.CurrentTerm < b.Meta.Term {
		t.Fatalf("backup meta %+v", b.Meta)
	}
	dst := t.TempDir()
	f, err := os.Create(filepath.Join(dst, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	n, err := b.WriteTo(f)
	if err != nil || n != b.Size() {
		t.Fatalf("write %d of %d bytes: %v", n, b.Size(), err)
	}
	f.Close()
	meta := b.Meta
	b.Close()
	_, wantDigest := digestAt(t, s)
	s.Close()

	info, err := CheckStateFile(filepath.Join(dst, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	if info.Index != meta.Index || info.Tables[TableUsers] != 50 {
		t.Fatalf("state file info %+v, meta %+v", info, meta)
	}
	if err := WriteRaftState(filepath.Join(dst, RaftDir), filepath.Join(dst, StateFile), meta, nil); err != nil {
		t.Fatal(err)
	}
	if err := WriteRaftState(filepath.Join(dst, RaftDir), filepath.Join(dst, StateFile), meta, nil); err == nil {
		t.Fatal("WriteRaftState over an existing raft dir succeeded")
	}
	r := openTest(t, dst) // a one-voter cluster of n1: it elects itself
	if got := r.AppliedIndex(); got < meta.Index {
		t.Fatalf("restored node at index %d, backup at %d", got, meta.Index)
	}
	if err := r.View(func(tx *Tx) error {
		if tx.Get(TableUsers, UserKey(KindUsername, "late")) != nil {
			return fmt.Errorf("a write after the backup is in the restored state")
		}
		if c := tx.Count(TableUsers); c != 50 {
			return fmt.Errorf("restored %d users, want 50", c)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The restored node takes writes, and survives a restart.
	if _, err := r.Apply(ctx, mustPut(t, TableUsers, UserKey(late.Kind, late.ID), late)); err != nil {
		t.Fatal(err)
	}
	r.Close()
	r = openTest(t, dst)
	defer r.Close()
	if _, d := digestAt(t, r); !reflect.DeepEqual(d, wantDigest) {
		t.Fatalf("digest after restore and the same write %v, want %v", d, wantDigest)
	}
}

// WriteRaftState with single makes a one-voter cluster of a node whose
// backup names other voters.
func TestWriteRaftStateSingle(t *testing.T) {
	src := t.TempDir()
	s := openTest(t, src)
	// Leadership comes before the first entry is applied; under load the
	// gap is long enough to matter.
	for deadline := time.Now().Add(10 * time.Second); s.AppliedIndex() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("nothing applied 10 s after the store opened")
		}
	}
	b, err := s.BeginBackup()
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	f, _ := os.Create(filepath.Join(dst, StateFile))
	if _, err := b.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	meta := b.Meta
	b.Close()
	s.Close()
	t.Logf("meta %+v", meta)
	// As if the backup came from a three-node cluster: without single,
	// this node could not elect itself.
	meta.Servers = append(meta.Servers, RaftServer{ID: "n2", Address: "127.0.0.1:1", Suffrage: "voter"},
		RaftServer{ID: "n3", Address: "127.0.0.1:2", Suffrage: "voter"})
	if err := WriteRaftState(filepath.Join(dst, RaftDir), filepath.Join(dst, StateFile), meta,
		&RaftServer{ID: "n1", Address: "127.0.0.1:4370"}); err != nil {
		t.Fatal(err)
	}
	r := openTest(t, dst)
	defer r.Close()
	cfg := r.Raft().GetConfiguration()
	if err := cfg.Error(); err != nil || len(cfg.Configuration().Servers) != 1 {
		t.Fatalf("configuration %+v, %v", cfg.Configuration(), err)
	}
}

func TestCheckStateFileRejectsOtherFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.db")
	os.WriteFile(p, []byte("not a bbolt file at all, just text"), 0o600)
	if _, err := CheckStateFile(p); err == nil {
		t.Fatal("a text file passed as a state db")
	}
}

func digestAt(t *testing.T, s *Store) (uint64, []TableDigest) {
	t.Helper()
	i, d, err := s.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return i, d
}
