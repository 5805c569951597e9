package backup

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestReceivedFileAndStaleTemps: a received file is hidden (not in Files)
// until Remove; at start, RemoveStaleTemps removes the temp files an
// unfinished upload, export, import or received file left, and nothing
// else.
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

	keep := []string{"a.json", ".tmp-backup-1.tar", "b.tmp", ".other-1.tmp"}
	stale := []string{".upload-1.tmp", ".export-2.tmp", ".spool-3.tmp", ".received-4.tmp"}
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
