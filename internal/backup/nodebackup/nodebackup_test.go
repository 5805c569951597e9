package nodebackup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roostmq/roost/internal/backup"
	"github.com/roostmq/roost/internal/backup/archive"
	"github.com/roostmq/roost/internal/config"
	"github.com/roostmq/roost/internal/store"
)

var quiet = slog.New(slog.DiscardHandler)

// node is a store in a data dir with an identity, as a running node has.
type node struct {
	dir string
	id  config.Identity
	st  *store.Store
	m   *Manager
}

func startNode(t *testing.T, dir string, id *config.Identity, keep int) *node {
	t.Helper()
	n := &node{dir: dir}
	if id == nil {
		nid, err := config.NewIdentity("n1")
		if err != nil {
			t.Fatal(err)
		}
		id = &nid
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := config.WriteIdentity(dir, nid); err != nil {
			t.Fatal(err)
		}
	}
	n.id = *id
	st, err := store.Open(store.Options{Dir: dir, NodeID: id.NodeID, Advertise: "127.0.0.1:4370", Bootstrap: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	n.st = st
	n.m = New(Options{Store: st, DataDir: dir, Dir: filepath.Join(dir, config.BackupDirName),
		Identity: func() config.Identity { return n.id }, Version: "test", Logger: quiet, Keep: keep})
	return n
}

func (n *node) addUsers(t *testing.T, from, count int) {
	t.Helper()
	for i := from; i < from+count; i++ {
		u := store.User{V: store.RecordVersion, Kind: store.KindUsername, ID: fmt.Sprintf("u%d", i), Algorithm: "sha256", PasswordHash: "x"}
		op, err := store.Put(store.TableUsers, store.UserKey(u.Kind, u.ID), u)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.st.Apply(context.Background(), op); err != nil {
			t.Fatal(err)
		}
	}
}

func (n *node) users(t *testing.T) int {
	t.Helper()
	c := 0
	n.st.View(func(tx *store.Tx) error { c = tx.Count(store.TableUsers); return nil })
	return c
}

// listing is every file under dir with its size and content, to compare.
func listing(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(&b, "%s %v %d", rel, fi.Mode(), fi.Size())
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			fmt.Fprintf(&b, " %x", data)
		}
		b.WriteByte('\n')
		return nil
	})
	return b.String()
}

func TestCreateVerifyRestore(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	n := startNode(t, data, nil, 0)
	n.addUsers(t, 0, 20)
	res, err := n.m.Create(context.Background(), CreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Tables[store.TableUsers] != 20 || res.NodeID != n.id.NodeID || !strings.HasPrefix(res.Name, "roost-backup-n1-") {
		t.Fatalf("result %+v", res)
	}
	if _, err := n.m.Create(context.Background(), CreateRequest{Name: res.Name}); err == nil {
		t.Fatal("a second backup under a taken name succeeded")
	}
	n.addUsers(t, 20, 5) // after the backup
	n.st.Close()

	f, err := os.Open(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Verify(f, archive.ReadOptions{}, root)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if v.StateIndex != res.RaftIndex || v.StateTables[store.TableUsers] != 20 {
		t.Fatalf("verified %+v", v)
	}

	// Another node's data dir: refused, untouched.
	other := filepath.Join(root, "other")
	o := startNode(t, other, nil, 0)
	o.st.Close()
	before := listing(t, other)
	f, _ = os.Open(res.Path)
	_, err = Restore(f, RestoreOptions{DataDir: other})
	f.Close()
	var one *OtherNodeError
	if !errors.As(err, &one) || !strings.Contains(err.Error(), "roost ctl data import") {
		t.Fatalf("restore onto another node: %v", err)
	}
	if after := listing(t, other); after != before {
		t.Fatal("a refused restore changed the data dir")
	}
	if ents, _ := filepath.Glob(filepath.Join(root, "*pre-restore*")); len(ents) != 0 {
		t.Fatalf("a refused restore left %v", ents)
	}

	// Its own data dir: restored, the old one kept aside, backups moved over.
	f, _ = os.Open(res.Path)
	rep, err := Restore(f, RestoreOptions{DataDir: data})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if rep.MovedAside == "" || rep.RaftIndex != res.RaftIndex {
		t.Fatalf("report %+v", rep)
	}
	if _, err := os.Stat(filepath.Join(rep.MovedAside, store.StateFile)); err != nil {
		t.Fatalf("the previous data dir was not kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, config.BackupDirName, res.Name)); err != nil {
		t.Fatalf("the backups did not move to the restored data dir: %v", err)
	}
	r := startNode(t, data, &n.id, 0)
	defer r.st.Close()
	if got := r.users(t); got != 20 {
		t.Fatalf("restored node has %d users, want the backup's 20", got)
	}
}

func TestForceNewClusterGetsNewClusterID(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	n := startNode(t, data, nil, 0)
	n.addUsers(t, 0, 3)
	res, err := n.m.Create(context.Background(), CreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	n.st.Close()
	cp := filepath.Join(root, "copy.tar.zst")
	if err := copyFile(res.Path, cp); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(data) // the whole node is lost
	f, _ := os.Open(cp)
	rep, err := Restore(f, RestoreOptions{DataDir: data, ForceNewCluster: true})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	id, err := config.ReadIdentity(data)
	if err != nil {
		t.Fatal(err)
	}
	if id.ClusterID == n.id.ClusterID || rep.ClusterID != id.ClusterID || id.NodeID != n.id.NodeID || rep.MovedAside != "" {
		t.Fatalf("identity %+v, report %+v, old cluster %s", id, rep, n.id.ClusterID)
	}
	r := startNode(t, data, &id, 0)
	defer r.st.Close()
	if got := r.users(t); got != 3 {
		t.Fatalf("%d users, want 3", got)
	}
	r.addUsers(t, 3, 1) // it is a working one-voter cluster
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	_, err = io.Copy(out, in)
	return err
}

func TestRetentionKeepsNewestScheduledOnly(t *testing.T) {
	root := t.TempDir()
	n := startNode(t, filepath.Join(root, "data"), nil, 2)
	defer n.st.Close()
	manual, err := n.m.Create(context.Background(), CreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// Another node's scheduled backup, in a shared target, whose name
	// starts like this node's: never this node's to delete.
	other := n.m.defaultName("n1-b", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), false, true)
	if _, err := n.m.Create(context.Background(), CreateRequest{Name: other}); err != nil {
		t.Fatal(err)
	}
	var sched []string
	for i := range 4 {
		name := n.m.defaultName("n1", time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC), false, true)
		if _, err := n.m.Create(context.Background(), CreateRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
		sched = append(sched, name)
		if err := n.m.prune(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	list, err := n.m.List(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range list {
		got = append(got, b.Name)
	}
	want := []string{sched[2], sched[3], manual.Name, other}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("after retention: %v, want %v", got, want)
	}
}

// A restore killed between the swap and the move aside leaves the
// previous data dir in its staging dir: the next restore keeps it (as
// .pre-restore-…), while an unfinished extraction is just removed.
func TestRemoveStaleKeepsASwappedOutDataDir(t *testing.T) {
	parent := t.TempDir()
	swappedOut := filepath.Join(parent, ".data.restoring-A")
	partial := filepath.Join(parent, ".data.restoring-B")
	unswapped := filepath.Join(parent, ".data.restoring-C")
	for _, d := range []string{swappedOut, partial, unswapped} {
		os.MkdirAll(filepath.Join(d, "data"), 0o700)
		os.WriteFile(filepath.Join(d, "data", config.IdentityFile), []byte("{}"), 0o600)
	}
	os.WriteFile(swappedOut+swappingSuffix, nil, 0o600)
	os.WriteFile(unswapped+swappingSuffix, nil, 0o600)
	os.WriteFile(filepath.Join(unswapped, "data", restoreMarker), nil, 0o600)
	removeStale(parent, "data")
	ents, _ := os.ReadDir(parent)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "data.pre-restore-A" {
		t.Fatalf("after removeStale: %v, want only data.pre-restore-A", names)
	}
	if _, err := os.Stat(filepath.Join(parent, "data.pre-restore-A", config.IdentityFile)); err != nil {
		t.Fatal(err)
	}
}

// A backup asked for progress reports 0 first, then more and more bytes,
// and at the end exactly the bytes of every file in the archive.
func TestCreateReportsProgressInBytes(t *testing.T) {
	n := startNode(t, filepath.Join(t.TempDir(), "data"), nil, 0)
	defer n.st.Close()
	n.addUsers(t, 0, 50)
	var got []backup.Progress
	res, err := n.m.Create(context.Background(), CreateRequest{Progress: func(p backup.Progress) { got = append(got, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 2 {
		t.Fatalf("progress reports %+v, want a first and a last at least", got)
	}
	if first := got[0]; first.Done != 0 || first.Total <= 0 || first.Phase != "backup" {
		t.Fatalf("first report %+v, want 0 of a known total in phase backup", first)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Done < got[i-1].Done || got[i].Done > got[i].Total || got[i].Bytes != got[i].Done || got[i].BytesTotal != got[i].Total {
			t.Fatalf("report %d %+v after %+v: bytes must grow and stay within the total", i, got[i], got[i-1])
		}
	}
	f, err := os.Open(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Verify(f, archive.ReadOptions{}, t.TempDir())
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var archived int64
	for _, fe := range v.Manifest.Files {
		archived += fe.Size
	}
	if last := got[len(got)-1]; last.Done != archived || last.Total != archived {
		t.Fatalf("last report %+v, want done = total = %d, the bytes of the archived files", last, archived)
	}
}

// CheckCreate refuses what Create would refuse at once, and writes nothing.
func TestCheckCreateRefusesBeforeWork(t *testing.T) {
	n := startNode(t, filepath.Join(t.TempDir(), "data"), nil, 0)
	defer n.st.Close()
	res, err := n.m.Create(context.Background(), CreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	before := listing(t, n.m.opts.Dir)
	for _, c := range []struct {
		req  CreateRequest
		want error
	}{
		{CreateRequest{Name: res.Name}, backup.ErrFileExists},
		{CreateRequest{Name: "x.tar"}, backup.ErrBadRequest},
		{CreateRequest{Recipients: []string{"age1nope"}}, backup.ErrBadRequest},
		{CreateRequest{Recipients: []string{"age1nope"}, Passphrase: "p"}, backup.ErrBadRequest},
		{CreateRequest{To: "/elsewhere"}, backup.ErrBadRequest}, // this node has no Resolve
	} {
		if err := n.m.CheckCreate(context.Background(), c.req); !errors.Is(err, c.want) {
			t.Errorf("CheckCreate(%+v) = %v, want %v", c.req, err, c.want)
		}
	}
	if err := n.m.CheckCreate(context.Background(), CreateRequest{Name: "fresh.tar.zst"}); err != nil {
		t.Errorf("CheckCreate of a good request: %v", err)
	}
	n.m.mu.Lock() // a backup running
	err = n.m.CheckCreate(context.Background(), CreateRequest{})
	n.m.mu.Unlock()
	if !errors.Is(err, backup.ErrImportInProgress) || !strings.Contains(err.Error(), "another backup") {
		t.Errorf("CheckCreate while a backup runs: %v", err)
	}
	if after := listing(t, n.m.opts.Dir); after != before {
		t.Errorf("CheckCreate changed the backup dir:\n%s\nthen\n%s", before, after)
	}
}
