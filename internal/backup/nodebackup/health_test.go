package nodebackup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roostmq/roost/internal/backup"
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
	newManager(h2).SeedHealth()
	seeded := h2.StatusByTarget()
	if len(seeded) != 1 || !seeded[0].LastSuccess.Equal(fi.ModTime().UTC()) || seeded[0].Size != fi.Size() ||
		seeded[0].Successes != 0 {
		t.Fatalf("seeded from the backup dir: %+v, want the time %s and size %d of %s", seeded, fi.ModTime().UTC(), fi.Size(), res.Name)
	}
}
