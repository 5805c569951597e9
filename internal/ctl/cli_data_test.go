package ctl_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roostmq/roost/internal/backup"
	"github.com/roostmq/roost/internal/ctl"
)

func startDataNode(t *testing.T) *node {
	t.Helper()
	n := startNode(t)
	n.srv.RegisterData(backup.New(backup.Options{Store: n.st, Dir: filepath.Join(n.dir, "backup"), NodeName: "n1",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	return n
}

// runCtlErr is runCtl with stderr.
func runCtlErr(dir string, args ...string) (string, string, error) {
	cmd := ctl.NewCommand(func() (string, error) { return dir, nil })
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

func TestCtlDataExportImport(t *testing.T) {
	n := startDataNode(t)
	n.ok("users", "add", "alice", "pw")
	local := filepath.Join(t.TempDir(), "out.json.gz")
	out, stderr, err := runCtlErr(n.dir, "data", "export", "-o", local)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "downloaded to:") || !strings.Contains(out, "users     1") {
		t.Fatalf("export output:\n%s", out)
	}
	if !strings.Contains(stderr, "export: export 1/1 records (100%)") {
		t.Fatalf("progress lines (stderr is not a terminal):\n%s", stderr)
	}
	if b, err := os.ReadFile(local); err != nil || b[0] != 0x1f {
		t.Fatalf("downloaded file: %v", err)
	}
	// -o json is the summary format; --file the file.
	var exp struct {
		Filename  string `json:"filename"`
		LocalFile string `json:"local_file"`
	}
	plain := filepath.Join(t.TempDir(), "out.json")
	if err := json.Unmarshal([]byte(n.ok("data", "export", "-o", "json", "--file", plain, "--tables", "users")), &exp); err != nil ||
		exp.LocalFile != plain || !strings.HasSuffix(exp.Filename, ".json") {
		t.Fatalf("export --output json: %+v %v", exp, err)
	}
	if b, _ := os.ReadFile(plain); !bytes.HasPrefix(b, []byte(`{"format":"roost-export"`)) {
		t.Fatal("a .json download is not plain JSON")
	}
	n.fails("must end in .json.gz", "data", "export", "-o", "out.txt")

	// A dry run of a local file: sent with the import, not kept in the
	// backup dir (its listing, hidden files included, is unchanged).
	before := backupDirListing(t, n.dir)
	n.ok("users", "add", "bob", "pw")
	out, stderr, err = runCtlErr(n.dir, "data", "import", local, "--dry-run", "--replace")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(out, "file:  out.json.gz") || !strings.Contains(out, "dry run: nothing was changed") ||
		strings.Contains(out, "uploaded") {
		t.Fatalf("dry run output:\n%s", out)
	}
	hasRow(t, out, "users", "1", "0", "0", "1", "1") // alice unchanged, bob would go
	if !strings.Contains(stderr, "import: validate") {
		t.Fatalf("import progress:\n%s", stderr)
	}
	if after := backupDirListing(t, n.dir); after != before {
		t.Fatalf("a dry run changed the backup dir:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	n.ok("users", "del", "bob")
	// A dry run of a file with problems leaves nothing either.
	badDry := filepath.Join(t.TempDir(), "bad-dry.json")
	os.WriteFile(badDry, []byte(`{"format":"roost-export","version":1}`), 0o600)
	n.fails("nothing was imported", "data", "import", badDry, "--dry-run")
	if after := backupDirListing(t, n.dir); after != before {
		t.Fatalf("a refused dry run changed the backup dir:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// Import of a local file: uploaded (and kept), then imported.
	out, stderr, err = runCtlErr(n.dir, "data", "import", local)
	if err != nil || !strings.Contains(out, "uploaded to the node's backup dir as out.json.gz") {
		t.Fatalf("import of a local file: %v\n%s\n%s", err, out, stderr)
	}
	out = n.ok("data", "import", "out.json.gz", "--replace", "--tables", "users")
	if !strings.Contains(out, "replace, committed at raft index") || !strings.Contains(out, "skipped: not selected") {
		t.Fatalf("import output:\n%s", out)
	}
	// A file with problems: non-zero, every problem in the message; JSON with --output json.
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"format":"roost-export","version":1,"tables":{"users":[{"v":1}]},"counts":{"users":1},"checksum":"sha256:00"}`), 0o600)
	n.fails(`users record 1 field "kind": required`, "data", "import", bad)
	out, _, err = runCtlErr(n.dir, "data", "import", bad, "--output", "json")
	var ie ctl.InvalidFileError
	if err == nil || json.Unmarshal([]byte(out), &ie) != nil || ie.Code != "INVALID_FILE" || ie.ProblemCount < 3 {
		t.Fatalf("--output json of a bad file: %v %s", err, out)
	}
	n.fails("no such file", "data", "import", "/no/such/file.json")
	n.fails("no such file", "data", "import", "nope.json")
	n.fails("--format", "data", "import", local, "--format", "xml")

	// The backup dir.
	files := n.ok("data", "files")
	if !strings.Contains(files, "out.json.gz") {
		t.Fatalf("files:\n%s", files)
	}
	dl := filepath.Join(t.TempDir(), "dl.json.gz")
	n.ok("data", "files", "download", "out.json.gz", dl)
	if a, b := mustRead(t, local), mustRead(t, dl); !bytes.Equal(a, b) {
		t.Fatal("download differs from the upload")
	}
	n.ok("data", "files", "delete", "out.json.gz")
	n.fails("no such file", "data", "files", "delete", "out.json.gz")
}

// backupDirListing is every entry of the node's backup dir, hidden ones
// included, with its size.
func backupDirListing(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "backup"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %d\n", e.Name(), fi.Size())
	}
	return b.String()
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
