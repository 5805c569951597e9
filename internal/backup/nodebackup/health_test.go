package nodebackup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roostmq/roost/internal/backup"
	"github.com/roostmq/roost/internal/backup/target"
	"github.com/roostmq/roost/internal/config"
)

func TestHealthRecordsEveryBackup(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil, 0)
	defer n.st.Close()
	newManager := func(h *backup.Health) *Manager {
		return New(Options{Store: n.st, DataDir: dir, Dir: filepath.Join(dir, config.BackupDirName),
			Identity: func() config.Identity { return n.id }, Version: "test", Logger: quiet, Health: h})
	}
	h := backup.NewHealth()
	m := newManager(h)
	status := func() backup.TargetStatus {
		t.Helper()
		all := h.StatusByTarget()
		if len(all) != 1 || all[0].Kind != backup.KindNodeBackup || all[0].Target != backup.TargetLocal {
			t.Fatalf("health %+v, want node_backup/local alone", all)
		}
		return all[0]
	}
	if s := status(); !s.LastSuccess.IsZero() || s.Interval != 0 {
		t.Fatalf("before any backup: %+v", s)
	}
	ctx := context.Background()
	res, err := m.Create(ctx, CreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	s := status()
	if s.Successes != 1 || s.Size != fi.Size() || s.LastSuccess.IsZero() || s.Duration <= 0 || s.Failures != 0 {
		t.Fatalf("after a backup of %d bytes: %+v", fi.Size(), s)
	}

	// Refused requests say nothing of the target's health.
	if _, err := m.Create(ctx, CreateRequest{Name: "../x.tar.zst"}); err == nil {
		t.Fatal("a name with a path was accepted")
	}
	if _, err := m.Create(ctx, CreateRequest{Name: res.Name}); err == nil {
		t.Fatal("a taken name was accepted")
	}
	if s := status(); s.Failures != 0 || s.Successes != 1 {
		t.Fatalf("refused requests counted: %+v", s)
	}

	// A backup dir that cannot be written: a failure with its reason.
	bdir := filepath.Join(dir, config.BackupDirName)
	if err := os.Rename(bdir, bdir+".aside"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bdir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, CreateRequest{}); err == nil {
		t.Fatal("a backup into a file instead of a dir succeeded")
	}
	s = status()
	if s.Failures != 1 || !s.LastFailure.After(s.LastSuccess) || !strings.Contains(s.LastError, "not a directory") {
		t.Fatalf("after a failed backup: %+v", s)
	}
	if err := os.Remove(bdir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bdir+".aside", bdir); err != nil {
		t.Fatal(err)
	}

	// A restarted node finds its newest backup on disk.
	h2 := backup.NewHealth()
	newManager(h2).SeedHealth(ctx)
	seeded := h2.StatusByTarget()
	if len(seeded) != 1 || !seeded[0].LastSuccess.Equal(fi.ModTime().UTC()) || seeded[0].Size != fi.Size() ||
		seeded[0].Successes != 0 {
		t.Fatalf("seeded from the backup dir: %+v, want the time %s and size %d of %s", seeded, fi.ModTime().UTC(), fi.Size(), res.Name)
	}
}

// Backups to other targets are recorded under the target's name ("local"
// only for the backup dir), and a restarted node seeds each from its own
// backups there: a shared target also holds other nodes'.
func TestHealthPerTarget(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir, nil, 0)
	defer n.st.Close()
	shared := filepath.Join(t.TempDir(), "shared")
	resolve := func(spec string) (target.Target, error) { return target.New(spec, target.S3Config{}) }
	newManager := func(h *backup.Health) *Manager {
		return New(Options{Store: n.st, DataDir: dir, Dir: filepath.Join(dir, config.BackupDirName),
			Target: target.NewDir(shared), Resolve: resolve, Interval: time.Hour,
			Identity: func() config.Identity { return n.id }, Version: "test", Logger: quiet, Health: h})
	}
	h := backup.NewHealth()
	m := newManager(h)
	ctx := context.Background()
	res, err := m.Create(ctx, CreateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, CreateRequest{To: "local", Name: "here.tar.zst"}); err != nil {
		t.Fatal(err)
	}
	all := h.StatusByTarget()
	if len(all) != 2 || all[0].Target != shared || all[1].Target != backup.TargetLocal ||
		all[0].LastName != res.Name || all[0].Successes != 1 || all[0].Interval != time.Hour ||
		all[1].LastName != "here.tar.zst" || all[1].Successes != 1 || all[1].Interval != 0 {
		t.Fatalf("health %+v, want the default target %s (scheduled) and local", all, shared)
	}

	// Another node's newer backup in the shared target is not this node's.
	other := filepath.Join(shared, "roost-backup-"+n.id.Name+"-b-20990101T000000.000Z.tar.zst")
	if err := os.WriteFile(other, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	h2 := backup.NewHealth()
	newManager(h2).SeedHealth(ctx)
	seeded := h2.Of(backup.KindNodeBackup)
	if len(seeded) != 1 || seeded[0].Target != shared || seeded[0].LastName != res.Name || seeded[0].Size != res.Size {
		t.Fatalf("seeded from %s: %+v, want %s", shared, seeded, res.Name)
	}
}
