package e2e

// Helpers for the node backup tests (backup_test.go): `roost ctl backup`,
// the offline `roost backup` and `roost restore` commands, and exact
// listings of data dirs to prove that a refused or killed restore left
// one untouched.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// backupResult is the JSON of `roost ctl backup create -o json`.
type backupResult struct {
	Name       string         `json:"name"`
	Path       string         `json:"path"`
	Size       int64          `json:"size"`
	Scheduled  bool           `json:"scheduled"`
	Encrypted  bool           `json:"encrypted"`
	Node       string         `json:"node"`
	NodeID     string         `json:"node_id"`
	ClusterID  string         `json:"cluster_id"`
	RaftIndex  uint64         `json:"raft_index"`
	RaftTerm   uint64         `json:"raft_term"`
	Tables     map[string]int `json:"tables"`
	Files      int            `json:"files"`
	DurationMS int64          `json:"duration_ms"`
	ViewMS     int64          `json:"view_ms"`
	LocalFile  string         `json:"local_file"`
}

// backupManifest is the JSON of `roost backup inspect -o json`.
type backupManifest struct {
	Format        string    `json:"format"`
	FormatVersion int       `json:"format_version"`
	Node          string    `json:"node"`
	NodeID        string    `json:"node_id"`
	ClusterID     string    `json:"cluster_id"`
	CreatedAt     time.Time `json:"created_at"`
	Raft          struct {
		Index   uint64 `json:"index"`
		Term    uint64 `json:"term"`
		Servers []struct {
			ID       string `json:"id"`
			Address  string `json:"address"`
			Suffrage string `json:"suffrage"`
		} `json:"servers"`
	} `json:"raft"`
	Tables map[string]int `json:"tables"`
	Files  []struct {
		Path   string `json:"path"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	} `json:"files"`
}

func (m backupManifest) fileSHA(path string) string {
	for _, f := range m.Files {
		if f.Path == path {
			return f.SHA256
		}
	}
	return ""
}

// restoreReport is the JSON of `roost restore -o json`.
type restoreReport struct {
	DataDir         string         `json:"data_dir"`
	MovedAside      string         `json:"moved_aside"`
	Node            string         `json:"node"`
	NodeID          string         `json:"node_id"`
	ClusterID       string         `json:"cluster_id"`
	RaftIndex       uint64         `json:"raft_index"`
	Tables          map[string]int `json:"tables"`
	ForceNewCluster bool           `json:"force_new_cluster"`
	Members         []string       `json:"members"`
}

// backupList is the JSON of `roost ctl backup list -o json` and of
// GET /api/v1/backups.
type backupList struct {
	Backups []struct {
		Name      string `json:"name"`
		Size      int64  `json:"size"`
		Scheduled bool   `json:"scheduled"`
		Encrypted bool   `json:"encrypted"`
	} `json:"backups"`
	Schedule struct {
		Enabled     bool      `json:"enabled"`
		Interval    string    `json:"interval"`
		Keep        int       `json:"keep"`
		LastSuccess time.Time `json:"last_success"`
		LastFile    string    `json:"last_file"`
		LastError   string    `json:"last_error"`
	} `json:"schedule"`
}

// createBackup runs `roost ctl backup create -o json ARGS...` on n.
func createBackup(t *testing.T, n *node, args ...string) backupResult {
	t.Helper()
	out := n.mustCtl(append([]string{"backup", "create", "-o", "json"}, args...)...)
	var r backupResult
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Name == "" {
		t.Fatalf("backup create -o json: %v\n%s", err, out)
	}
	return r
}

// roost runs the roost binary with env only (no node's env): the offline
// commands need no running node.
func roost(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, roostBin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// inspectBackup runs `roost backup inspect FILE -o json`.
func inspectBackup(t *testing.T, file string, keyArgs ...string) backupManifest {
	t.Helper()
	out, errOut, err := roost(t, append([]string{"backup", "inspect", file, "-o", "json"}, keyArgs...)...)
	if err != nil {
		t.Fatalf("roost backup inspect %s: %v\n%s%s", file, err, out, errOut)
	}
	var m backupManifest
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("backup inspect -o json: %v\n%s", err, out)
	}
	return m
}

// restoreBackup runs `roost restore FILE --data-dir DIR -o json ARGS...`
// and fails the test unless it succeeds.
func restoreBackup(t *testing.T, file, dataDir string, args ...string) restoreReport {
	t.Helper()
	out, errOut, err := roost(t, append([]string{"restore", file, "--data-dir", dataDir, "-o", "json"}, args...)...)
	if err != nil {
		t.Fatalf("roost restore %s: %v\n%s%s", file, err, out, errOut)
	}
	var r restoreReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("restore -o json: %v\n%s", err, out)
	}
	return r
}

// digestTables returns a node's table counts from `roost ctl data digest`.
func digestTables(n *node) (index uint64, counts map[string]int) {
	var d digestOut
	mqttCtlJSON(n, &d, "data", "digest")
	counts = map[string]int{}
	for _, tb := range d.Tables {
		counts[tb.Table] = tb.Count
	}
	return d.Index, counts
}

// dirListing describes every entry under dir, recursively: its kind,
// mode, size and, for regular files, sha256. Two equal listings are the
// same tree byte for byte. A missing dir lists as "<absent>".
func dirListing(t *testing.T, dir string) string {
	t.Helper()
	if _, err := os.Lstat(dir); os.IsNotExist(err) {
		return "<absent>"
	}
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			lines = append(lines, fmt.Sprintf("%s %v %d %s", rel, fi.Mode(), fi.Size(), hex.EncodeToString(h.Sum(nil))))
		default:
			lines = append(lines, fmt.Sprintf("%s %v", rel, fi.Mode()))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// dirNames returns the names in dir, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// fileSHA256 returns the hex sha256 of a file.
func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// writeUsersExport writes a roost-export file of n users and returns its path.
func writeUsersExport(t *testing.T, dir, prefix string, n int) string {
	t.Helper()
	p := filepath.Join(dir, prefix+"-users.json")
	e := newExportWriter(t, p, 1)
	e.table("users")
	for i := range n {
		e.record(userRec(fmt.Sprintf("%s-%06d", prefix, i)))
	}
	e.close(t, nil, "")
	return p
}

// rebuildWithout unpacks a (plain) backup and packs it again as tar.zst
// without the file drop, keeping every other entry, MANIFEST.json
// included, as it was.
func rebuildWithout(t *testing.T, src, dst, drop string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	zr, err := zstd.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	zw, err := zstd.NewWriter(out)
	if err != nil {
		t.Fatal(err)
	}
	tr, tw := tar.NewReader(zr), tar.NewWriter(zw)
	dropped := false
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == drop {
			dropped = true
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if !dropped {
		t.Fatalf("%s holds no %s", src, drop)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

// leftovers returns the entries of parent that a restore of base may
// leave beside it: staging dirs and kept-aside previous data dirs.
func leftovers(t *testing.T, parent, base string) (staging, aside []string) {
	t.Helper()
	for _, n := range dirNames(t, parent) {
		switch {
		case strings.HasPrefix(n, "."+base+".restoring-"):
			staging = append(staging, n)
		case strings.HasPrefix(n, base+".pre-restore-"):
			aside = append(aside, n)
		}
	}
	return staging, aside
}

// mustWrite runs a ctl write command, retrying while the cluster is
// between leaders (raft's leader lease is short, and a loaded machine
// loses a leader now and then). A retry that finds the write done
// ("already exists", "already banned") counts as done.
func mustWrite(t *testing.T, n *node, args ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for attempt := 0; ; attempt++ {
		out, errOut, err := n.ctl(args...)
		if err == nil || (attempt > 0 && strings.Contains(errOut, "already")) {
			return
		}
		transient := strings.Contains(errOut, "cannot take writes now") || strings.Contains(errOut, "no leader") ||
			strings.Contains(errOut, "not the raft leader")
		if !transient || time.Now().After(deadline) {
			t.Fatalf("roost ctl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
		}
		t.Logf("roost ctl %s: %s (retrying)", strings.Join(args, " "), strings.TrimSpace(errOut))
		time.Sleep(300 * time.Millisecond)
	}
}
