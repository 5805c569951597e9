package backup

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Config files in an export are kept for reference. An import restores
// them only when asked (--restore-config-files), and only over this
// node's own config files or files in their directories: a backup never
// writes elsewhere on the machine.

// Config file statuses in an import report.
const (
	ConfigUnchanged    = "unchanged"     // the same content is here
	ConfigDiffers      = "differs"       // not restored (no --restore-config-files)
	ConfigMissing      = "missing"       // no such file here; not restored
	ConfigWouldRestore = "would-restore" // dry run with --restore-config-files
	ConfigRestored     = "restored"      // written; the old one kept as Backup
	ConfigNotHere      = "not-restorable"
	ConfigFailed       = "failed"
)

// ConfigFileReport is what an import does with one config file.
type ConfigFileReport struct {
	Path   string   `json:"path"`
	Status string   `json:"status"`
	Backup string   `json:"backup,omitempty"` // where the old file was kept
	Diff   []string `json:"diff,omitempty"`   // "-old line" / "+new line", at most 50
	Error  string   `json:"error,omitempty"`
}

// configFiles compares (and, with restore and apply, writes) the
// input's config files with this node's.
func (m *Manager) configFiles(files []ConfigFile, restore, apply bool) []ConfigFileReport {
	var out []ConfigFileReport
	local := m.opts.ConfigFiles()
	var dirs []string
	for _, f := range local {
		dirs = append(dirs, filepath.Dir(filepath.Clean(f)))
	}
	for _, f := range files {
		r := ConfigFileReport{Path: f.Path}
		path := filepath.Clean(f.Path)
		restorable := filepath.IsAbs(path) && (slices.Contains(local, path) || slices.ContainsFunc(dirs, func(d string) bool {
			return strings.HasPrefix(path, d+string(filepath.Separator))
		}))
		cur, err := os.ReadFile(path)
		switch {
		case err != nil && !errors.Is(err, os.ErrNotExist):
			r.Status, r.Error = ConfigFailed, err.Error()
		case err == nil && bytes.Equal(cur, f.Content):
			r.Status = ConfigUnchanged
		case !restorable:
			r.Status = ConfigNotHere
			r.Error = "not one of this node's config files nor in their directories"
		case !restore:
			r.Status = ConfigDiffers
			if err != nil {
				r.Status = ConfigMissing
			}
			r.Diff = lineDiff(cur, f.Content)
		case !apply:
			r.Status = ConfigWouldRestore
			r.Diff = lineDiff(cur, f.Content)
		default:
			r.Diff = lineDiff(cur, f.Content)
			if bak, err := restoreConfigFile(path, cur, err == nil, f); err != nil {
				r.Status, r.Error = ConfigFailed, err.Error()
				m.log.Error("import: restore config file", "path", path, "err", err)
			} else {
				r.Status, r.Backup = ConfigRestored, bak
				m.log.Info("import: restored a config file (takes effect at the next start)", "path", path, "backup", bak)
			}
		}
		out = append(out, r)
	}
	return out
}

// restoreConfigFile keeps the current file as path.bak (when there is
// one) and writes f's content atomically, with f's mode.
func restoreConfigFile(path string, cur []byte, exists bool, f ConfigFile) (string, error) {
	if sum := fmt.Sprintf("%x", sha256.Sum256(f.Content)); sum != f.SHA256 {
		return "", fmt.Errorf("content does not match its sha256 %s", f.SHA256)
	}
	mode := os.FileMode(0o600)
	if v, err := strconv.ParseUint(f.Mode, 8, 32); err == nil {
		mode = os.FileMode(v) & os.ModePerm
	}
	bak := ""
	if exists {
		bak = path + ".bak"
		if err := writeAtomic(bak, cur, mode); err != nil {
			return "", fmt.Errorf("keep the old file: %w", err)
		}
	}
	if err := writeAtomic(path, f.Content, mode); err != nil {
		return "", err
	}
	return bak, nil
}

func writeAtomic(path string, content []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	fail := func(err error) error {
		tmp.Close()
		os.Remove(name)
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		return fail(err)
	}
	if _, err := tmp.Write(content); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(name, path); err != nil {
		os.Remove(name)
		return err
	}
	return nil
}

// maxDiffLines bounds a config file diff in a report.
const maxDiffLines = 50

// lineDiff lists the lines removed ("-") and added ("+") from a to b, by
// a longest common subsequence (config files are short; long ones get a
// summary).
func lineDiff(a, b []byte) []string {
	al := splitLines(a)
	bl := splitLines(b)
	if len(al)*len(bl) > 4_000_000 {
		return []string{fmt.Sprintf("(%d lines here, %d in the file: too long to compare line by line)", len(al), len(bl))}
	}
	// lcs[i][j]: length of the LCS of al[i:] and bl[j:].
	lcs := make([][]int32, len(al)+1)
	for i := range lcs {
		lcs[i] = make([]int32, len(bl)+1)
	}
	for i := len(al) - 1; i >= 0; i-- {
		for j := len(bl) - 1; j >= 0; j-- {
			if al[i] == bl[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	n := 0
	emit := func(s string) {
		n++
		if len(out) < maxDiffLines {
			out = append(out, s)
		}
	}
	i, j := 0, 0
	for i < len(al) || j < len(bl) {
		switch {
		case i < len(al) && j < len(bl) && al[i] == bl[j]:
			i++
			j++
		case i < len(al) && (j == len(bl) || lcs[i+1][j] >= lcs[i][j+1]):
			emit("-" + al[i])
			i++
		default:
			emit("+" + bl[j])
			j++
		}
	}
	if n > len(out) {
		out = append(out, fmt.Sprintf("... and %d more changed lines", n-len(out)))
	}
	return out
}

func splitLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}
