package backup

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/roostmq/roost/internal/backup/target"
)

// TestReceivedFileAndStaleTemps: a received file is hidden (not in Files)
// until Remove; at start, RemoveStaleTemps removes the temp files an
// unfinished node backup, export, upload, import or received file left
// (and those of earlier versions' names), and nothing else.
func TestReceivedFileAndStaleTemps(t *testing.T) {
	m := New(Options{Dir: filepath.Join(t.TempDir(), "backup"), Logger: quiet})
	rf, err := m.Receive("in.json", strings.NewReader(`{"format":"roost-export"}`))
	if err != nil {
		t.Fatal(err)
	}
	if files, _ := m.Files(); len(files) != 0 {
		t.Errorf("a received file is listed: %+v", files)
	}
	if err := rf.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := rf.Remove(); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if _, err := m.Receive("../in.json", strings.NewReader("x")); err == nil {
		t.Error("Receive took a name outside the backup dir")
	}

	keep := []string{"a.json", "roost-backup-n1-20260101T000000.000Z.tar.zst", "b.tmp", ".other-1.tmp", ".partial"}
	// Written by the node as the writes make them: a directory target's
	// object being written (target.Dir.Put: node backups, exports), the
	// sessions copy of a node backup; and the temp files of this package.
	stale := []string{target.TempPrefix + "roost-backup-n1-20260101T000000.000Z-auto.tar.zst-123",
		target.TempPrefix + "roost-export-20260101T000000Z.json.gz-456", target.TempPrefix + "sessions-789",
		".upload-1.tmp", ".export-2.tmp", ".spool-3.tmp", ".received-4.tmp", ".tmp-backup-5", ".tmp-sessions-6"}
	for _, what := range []string{uploadTemp, spoolTemp, receivedTemp} {
		f, err := m.createTemp(what)
		if err != nil {
			t.Fatal(err)
		}
		f.Close() // left as a crash leaves it
	}
	for _, n := range append(append([]string{}, keep...), stale...) {
		if err := os.WriteFile(filepath.Join(m.Dir(), n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m.RemoveStaleTemps()
	ents, _ := os.ReadDir(m.Dir())
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	slices.Sort(left)
	slices.Sort(keep)
	if !slices.Equal(left, keep) {
		t.Errorf("left %v, want %v", left, keep)
	}
}
