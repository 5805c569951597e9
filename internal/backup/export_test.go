package backup

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/roostmq/roost/internal/store"
)

func TestExportImportRoundTrip(t *testing.T) {
	t.Parallel()
	src := openStore(t)
	fill(t, src)
	cfg := filepath.Join(t.TempDir(), "roost.conf")
	os.WriteFile(cfg, []byte("node.name = \"a\"\n"), 0o640)
	m := newManager(t, src, "a")
	m.opts.ConfigFiles = func() []string { return []string{cfg} }
	var phases []string
	f, err := m.Export(context.Background(), ExportRequest{Progress: func(p Progress) { phases = append(phases, p.Phase) }})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(f.Filename, "roost-export-") || !strings.HasSuffix(f.Filename, ".json.gz") {
		t.Fatalf("default export name %q", f.Filename)
	}
	if f.Counts[store.TableUsers] != 6 || f.Counts[store.TableACL] != 3 || f.RaftIndex == 0 || f.ConfigFiles != 1 || len(phases) == 0 {
		t.Fatalf("export: %+v (progress %v)", f, phases)
	}
	raw, _ := os.ReadFile(f.Path)
	if raw[0] != 0x1f || raw[1] != 0x8b {
		t.Fatal("a .gz export is not gzip")
	}
	if fi, _ := os.Stat(f.Path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("export mode %v, want 0600", fi.Mode().Perm())
	}

	// A second export in the same second gets another name.
	f2, err := m.Export(context.Background(), ExportRequest{})
	if err != nil || f2.Filename == f.Filename {
		t.Fatalf("second export: %v %v", f2, err)
	}

	// Into an empty store: every table equal, byte for byte.
	dst := openStore(t)
	md := newManager(t, dst, "b")
	b, _ := os.ReadFile(f.Path)
	writeFile(t, md, "in.json.gz", nil)
	os.WriteFile(filepath.Join(md.Dir(), "in.json.gz"), b, 0o600)
	rep, err := md.Import(context.Background(), ImportRequest{Filename: "in.json.gz", ImportOptions: ImportOptions{Privileged: true}})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Committed || rep.Format != FormatRoost || rep.Version != 1 || rep.Source.SourceNode != "a" || rep.Records != 16 {
		t.Fatalf("report: %+v", rep)
	}
	if digest(t, dst) != digest(t, src) {
		t.Fatalf("digests differ after import:\n%s\n%s", digest(t, src), digest(t, dst))
	}
	if len(rep.ConfigFiles) != 1 || rep.ConfigFiles[0].Status != ConfigUnchanged {
		t.Fatalf("config files: %+v", rep.ConfigFiles)
	}
	// Appends after the import get ids after the imported rules.
	op, _ := store.Append(store.TableACL, store.ACLRule{V: 1, Kind: "all", Topic: "z", Action: "all", Permission: "deny"})
	res, err := dst.Apply(context.Background(), op)
	if err != nil || res.Keys[0] != store.ACLKey(5) {
		t.Fatalf("append after import: %v %v", res, err)
	}

	// The same file again: everything unchanged.
	rep, err = md.Import(context.Background(), ImportRequest{Filename: "in.json.gz", ImportOptions: ImportOptions{Privileged: true, DryRun: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range rep.Tables {
		want := map[string]int{store.TableACL: 3}
		if tr.Added != 0 || tr.Changed != 0 || tr.Removed != 0 || (tr.Table != store.TableACL && tr.Unchanged != tr.Records) || (tr.Table == store.TableACL && tr.Unchanged != want[store.TableACL]) {
			t.Errorf("re-import dry run of %s: %+v", tr.Table, tr)
		}
	}
}

func TestExportTablesAndNames(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	fill(t, st)
	m := newManager(t, st, "a")
	f, err := m.Export(context.Background(), ExportRequest{Filename: "only.json", Tables: []string{"acl", "users"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f.Path)
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("export is not JSON: %v", err)
	}
	var tables map[string]json.RawMessage
	json.Unmarshal(doc["tables"], &tables)
	if len(tables) != 2 || tables["users"] == nil || tables["acl"] == nil {
		t.Fatalf("tables: %v", tables)
	}
	if !bytes.HasPrefix(b, []byte(`{"format":"roost-export","version":1,`)) {
		t.Fatalf("document starts %q", b[:60])
	}
	if _, err := m.Export(context.Background(), ExportRequest{Filename: "only.json"}); !errors.Is(err, ErrFileExists) {
		t.Fatalf("export over an existing file: %v", err)
	}
	for _, bad := range []string{"../x.json", "/tmp/x.json", "a/b.json", ".hidden.json", "x.txt", "a..b.json"} {
		if _, err := m.Export(context.Background(), ExportRequest{Filename: bad}); !errors.Is(err, ErrBadRequest) {
			t.Errorf("export name %q: %v, want a bad request", bad, err)
		}
	}
	if _, err := m.Export(context.Background(), ExportRequest{Tables: []string{"members"}}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("export of members: %v", err)
	}
	if _, err := m.Export(context.Background(), ExportRequest{IncludeSessions: true}); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("sessions without a sessions writer: %v", err)
	}
}

func TestExportIncludesSessions(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	m := newManager(t, st, "a")
	blob := bytes.Repeat([]byte{0, 1, 2, 3, 250}, 1000)
	m.opts.Sessions = func(w io.Writer) (int64, error) {
		n, err := w.Write(blob)
		return int64(n), err
	}
	f, err := m.Export(context.Background(), ExportRequest{Filename: "s.json", IncludeSessions: true})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f.Path)
	var doc struct{ Sessions Sessions }
	if err := json.Unmarshal(b, &doc); err != nil || !bytes.Equal(doc.Sessions.Content, blob) || doc.Sessions.Size != int64(len(blob)) {
		t.Fatalf("sessions member: %v %+v", err, doc.Sessions.Size)
	}
	rep, err := m.Import(context.Background(), ImportRequest{Filename: "s.json", ImportOptions: ImportOptions{DryRun: true, Privileged: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "not imported") {
		t.Fatalf("notes: %v", rep.Notes)
	}
}

// Every truncation of an export — at every 1000th byte of the JSON, and
// of the gzip file — is refused with a problem, and changes nothing.
func TestTruncatedExportsAreRefused(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	fill(t, st)
	m := newManager(t, st, "a")
	doc := exportBytes(t, m)
	if len(doc) < 3000 {
		t.Fatalf("export too small for the test: %d bytes", len(doc))
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(doc)
	zw.Close()
	before := digest(t, st)
	check := func(what string, content []byte) {
		t.Helper()
		os.WriteFile(filepath.Join(m.Dir(), "t.json"), content, 0o600)
		_, err := m.Import(context.Background(), ImportRequest{Filename: "t.json", ImportOptions: ImportOptions{Privileged: true}})
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("%s: import %v, want refused", what, err)
		}
	}
	n := 0
	for cut := 0; cut < len(doc)-1; cut += 1000 {
		check("JSON cut at "+strconv.Itoa(cut), doc[:cut])
		n++
	}
	check("JSON without its last brace", doc[:len(doc)-2])
	for cut := 10; cut < gz.Len(); cut += 1000 {
		check("gzip cut at "+strconv.Itoa(cut), gz.Bytes()[:cut])
		n++
	}
	if digest(t, st) != before {
		t.Fatal("a refused import changed the tables")
	}
	// The reason is named.
	os.WriteFile(filepath.Join(m.Dir(), "t.json"), doc[:len(doc)/2], 0o600)
	if p := problemsOf(t, m, "t.json"); !strings.Contains(p[0].Msg, "truncated") {
		t.Fatalf("truncation problem: %v", p)
	}
	t.Logf("%d truncations refused", n)
}

func TestFlippedBytesAreRefused(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	fill(t, st)
	m := newManager(t, st, "a")
	doc := exportBytes(t, m)
	for i := 0; i < len(doc); i += 97 {
		bad := bytes.Clone(doc)
		bad[i] ^= 0x01
		os.WriteFile(filepath.Join(m.Dir(), "f.json"), bad, 0o600)
		_, err := m.Import(context.Background(), ImportRequest{Filename: "f.json", ImportOptions: ImportOptions{Privileged: true, DryRun: true}})
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("byte %d (%q→%q) flipped: %v, want refused", i, doc[i], bad[i], err)
		}
	}
	// A change inside a string value is a checksum mismatch, named so.
	i := bytes.Index(doc, []byte(`"u-sha512"`)) + 3
	bad := bytes.Clone(doc)
	bad[i] = 'X'
	os.WriteFile(filepath.Join(m.Dir(), "f.json"), bad, 0o600)
	p := problemsOf(t, m, "f.json")
	if p[0].Field != "checksum" || !strings.Contains(p[0].Msg, "checksum mismatch") {
		t.Fatalf("problems: %v", p)
	}
	// Re-indenting the document keeps it valid.
	var pretty bytes.Buffer
	json.Indent(&pretty, doc, "", "  ")
	os.WriteFile(filepath.Join(m.Dir(), "p.json"), pretty.Bytes(), 0o600)
	if _, err := m.Import(context.Background(), ImportRequest{Filename: "p.json", ImportOptions: ImportOptions{Privileged: true, DryRun: true}}); err != nil {
		t.Fatalf("re-indented export refused: %v", err)
	}
}

func TestNewerVersionRefusedByName(t *testing.T) {
	t.Parallel()
	m := newManager(t, openStore(t), "a")
	writeFile(t, m, "v3.json", document(strings.Replace(header1, `"version":1`, `"version":3`, 1), nil, nil))
	p := problemsOf(t, m, "v3.json")
	if p[0].Msg != "file is format 3, this roost reads up to 1: import it with a newer roost" {
		t.Fatalf("problem: %v", p)
	}
}

// The example in docs/data-export-import.md is a valid, importable file.
func TestDocExampleImports(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/data-export-import.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := bytes.Cut(doc, []byte("### Example"))
	if !ok {
		t.Fatal("no example section in the doc")
	}
	_, rest, _ = bytes.Cut(rest, []byte("```json\n"))
	example, _, ok := bytes.Cut(rest, []byte("```"))
	if !ok {
		t.Fatal("no json block in the example section")
	}
	m := newManager(t, openStore(t), "a")
	writeFile(t, m, "example.json", example)
	rep, err := m.Import(context.Background(), ImportRequest{Filename: "example.json", ImportOptions: ImportOptions{Privileged: true}})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Committed || rep.Records != 6 {
		t.Fatalf("example import: %+v", rep)
	}
}
