package backup

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roostmq/roost/internal/backup/target"
)

func TestIsScheduledExport(t *testing.T) {
	for name, want := range map[string]bool{
		"roost-export-20261203T101107.123Z-auto.json.gz":    true,
		"roost-export-20261203T101107.123Z-auto-2.json.gz":  true,
		"roost-export-20261203T101107Z.json.gz":             false, // on request
		"roost-export-20261203T101107Z-auto.json.gz":        false,
		"roost-export-20261203T101107.123Z-auto.json":       false,
		"roost-export-2026120XT101107.123Z-auto.json.gz":    false,
		"roost-export-20261203T101107.123Z-auto-x.json.gz":  false,
		"my-roost-export-20261203T101107.123Z-auto.json.gz": false,
	} {
		if got := isScheduledExport(name); got != want {
			t.Errorf("isScheduledExport(%q) = %v, want %v", name, got, want)
		}
	}
}

// Scheduled exports: made only while this node leads, to the target;
// retention there keeps the newest ExportKeep scheduled ones and never an
// export made on request.
func TestExportScheduleLeaderOnlyAndRetention(t *testing.T) {
	st := openStore(t)
	fill(t, st)
	dir := filepath.Join(t.TempDir(), "target")
	health := NewHealth()
	var leader atomic.Bool
	m := New(Options{Store: st, Dir: filepath.Join(t.TempDir(), "backup"), NodeName: "n1", Version: "test", Logger: quiet,
		Target: target.NewDir(dir), Health: health, ExportInterval: 50 * time.Millisecond, ExportKeep: 2, IsLeader: leader.Load})
	manual, err := m.Export(context.Background(), ExportRequest{Filename: "manual.json.gz"})
	if err != nil || manual.Path != filepath.Join(dir, "manual.json.gz") || !manual.Remote {
		t.Fatalf("manual export: %+v %v", manual, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.RunExportSchedule(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(10 * time.Second)
	for m.ScheduleStatus().LastSkipped.IsZero() {
		if time.Now().After(deadline) {
			t.Fatal("the schedule never ran")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"manual.json.gz"}) {
		t.Fatalf("a follower exported: %v", got)
	}
	leader.Store(true)
	scheduled := func() []string {
		var out []string
		for _, n := range names(t, dir) {
			if isScheduledExport(n) {
				out = append(out, n)
			}
		}
		return out
	}
	for health.Of(KindDataExport)[0].Successes < 5 {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatalf("scheduled exports: %+v", health.Of(KindDataExport))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if got := scheduled(); len(got) != 2 {
		t.Fatalf("after retention: %v scheduled exports, want 2", got)
	}
	if !slices.Contains(names(t, dir), "manual.json.gz") {
		t.Fatal("retention deleted the export made on request")
	}
	if s := m.ScheduleStatus(); s.LastSuccess.IsZero() || !isScheduledExport(s.LastFile) || s.LastError != "" {
		t.Fatalf("schedule status: %+v", s)
	}

	// Followers: with the shared target, a follower's health follows the
	// leader's scheduled exports there; with its own backup dir, where it
	// sees none, it shows no schedule while it follows.
	never := func() bool { return false }
	sharedHealth, localHealth := NewHealth(), NewHealth()
	follower := New(Options{Store: st, Dir: filepath.Join(t.TempDir(), "backup"), NodeName: "n2", Version: "test", Logger: quiet,
		Target: target.NewDir(dir), Health: sharedHealth, ExportInterval: 20 * time.Millisecond, IsLeader: never})
	local := New(Options{Store: st, Dir: filepath.Join(t.TempDir(), "backup"), NodeName: "n3", Version: "test", Logger: quiet,
		Health: localHealth, ExportInterval: 20 * time.Millisecond, IsLeader: never})
	if s := localHealth.Of(KindDataExport); len(s) != 1 || s[0].Target != TargetLocal || s[0].Interval != 20*time.Millisecond {
		t.Fatalf("before the first tick: %+v", s)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	var followers sync.WaitGroup
	for _, f := range []*Manager{follower, local} {
		followers.Go(func() { f.RunExportSchedule(ctx2) })
	}
	defer func() { cancel2(); followers.Wait() }()
	newest := scheduled()[1]
	for {
		sh, lo := sharedHealth.Of(KindDataExport)[0], localHealth.Of(KindDataExport)[0]
		if sh.LastName == newest && lo.Interval == 0 {
			if sh.Successes != 0 || sh.Interval != 20*time.Millisecond || !lo.LastSuccess.IsZero() {
				t.Fatalf("followers: shared %+v, local %+v", sh, lo)
			}
			break
		}
		if time.Now().After(deadline.Add(20 * time.Second)) {
			t.Fatalf("followers: shared %+v (want the leader's %s), local %+v (want interval 0)", sh, newest, lo)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}
