package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roostmq/roost/internal/backup"
	"github.com/roostmq/roost/internal/store"
	"golang.org/x/crypto/bcrypt"
)

func newDataEnv(t *testing.T) *testEnv {
	t.Helper()
	e := newEnv(t)
	e.srv.RegisterData(backup.New(backup.Options{Store: e.st, Dir: filepath.Join(e.dir, "backup"), NodeName: "n1", Logger: quietLogger()}))
	e.put(store.TableUsers, "username:alice", store.User{V: 1, Kind: "username", ID: "alice", Algorithm: "plain", PasswordHash: "pw"})
	return e
}

// upload posts content as a multipart file named name.
func upload(t *testing.T, base, name, query string, content []byte) resp {
	t.Helper()
	return postMultipart(t, base+"/api/v1/data/files"+query, "", name, content)
}

// postMultipart posts to url a multipart body: the "options" field (if
// not ""), then content as the "file" part named name.
func postMultipart(t *testing.T, url, options, name string, content []byte) resp {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if options != "" {
		mw.WriteField("options", options)
	}
	fw, _ := mw.CreateFormFile("file", name)
	fw.Write(content)
	mw.Close()
	req, _ := http.NewRequest("POST", url, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func TestDataExportDownloadUploadImport(t *testing.T) {
	e := newDataEnv(t)
	var exp backup.ExportFile
	e.expect(e.do("POST", "/api/v1/data/export", map[string]any{"filename": "a.json"}), http.StatusCreated, &exp)
	if exp.Filename != "a.json" || exp.Counts["users"] != 1 || exp.RaftIndex == 0 {
		t.Fatalf("export: %+v", exp)
	}
	// An empty body is a default export.
	e.expect(e.do("POST", "/api/v1/data/export", nil), http.StatusCreated, &exp)
	if !strings.HasSuffix(exp.Filename, ".json.gz") {
		t.Fatalf("default export name %q", exp.Filename)
	}
	var files struct {
		Data []backup.FileInfo `json:"data"`
	}
	e.expect(e.do("GET", "/api/v1/data/files", nil), http.StatusOK, &files)
	if len(files.Data) != 2 {
		t.Fatalf("files: %+v", files)
	}
	// No backup.target: the remote side is refused with its own code.
	e.expectErr(e.do("GET", "/api/v1/data/files?remote=true", nil), http.StatusBadRequest, CodeNoRemoteTarget, "backup.target is not set")

	res, err := http.Get(e.local.URL + "/api/v1/data/files/a.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !bytes.HasPrefix(doc, []byte(`{"format":"roost-export"`)) || !strings.Contains(res.Header.Get("Content-Disposition"), "a.json") {
		t.Fatalf("download: %d %q %s", res.StatusCode, res.Header, doc[:min(40, len(doc))])
	}

	// Upload: validated before it is kept.
	var up backup.UploadResult
	e.expect(upload(t, e.local.URL, "b.json", "", doc), http.StatusCreated, &up)
	if up.Name != "b.json" || up.Report.Records != 1 {
		t.Fatalf("upload: %+v", up)
	}
	r := upload(t, e.local.URL, "c.json", "", doc[:len(doc)-20])
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad upload: %d %s", r.status, r.body)
	}
	var inv InvalidFileError
	r.json(t, &inv)
	if inv.Code != CodeInvalidFile || inv.ProblemCount == 0 || !strings.Contains(inv.Problems[0].Msg, "truncated") {
		t.Fatalf("invalid upload body: %+v", inv)
	}
	e.expectErr(upload(t, e.local.URL, "b.json", "", append(bytes.Clone(doc), ' ')), http.StatusConflict, CodeAlreadyExists, "b.json")
	e.expect(upload(t, e.local.URL, "b.json", "?on_conflict=rename", append(bytes.Clone(doc), ' ')), http.StatusCreated, &up)
	if up.Name != "b-2.json" {
		t.Fatalf("renamed upload %q", up.Name)
	}
	// A raw body with ?name=.
	e.expect(e.do("POST", "/api/v1/data/files?name=raw.json", string(doc)), http.StatusCreated, &up)

	// Import: a dry run, then for real.
	var rep backup.ImportReport
	e.expect(e.do("POST", "/api/v1/data/import", ImportRequest{Filename: "b.json", DryRun: true}), http.StatusOK, &rep)
	if !rep.DryRun || rep.Committed || rep.Tables[0].Unchanged != 1 {
		t.Fatalf("dry run: %+v", rep)
	}
	e.expect(e.do("POST", "/api/v1/data/import", ImportRequest{Filename: "b.json", Replace: true}), http.StatusOK, &rep)
	if !rep.Committed || rep.Mode != "replace" {
		t.Fatalf("import: %+v", rep)
	}
	e.expectErr(e.do("POST", "/api/v1/data/import", ImportRequest{}), http.StatusBadRequest, CodeBadRequest, `field "filename": required`)
	e.expectErr(e.do("POST", "/api/v1/data/import", ImportRequest{Filename: "nope.json"}), http.StatusNotFound, CodeNotFound, "nope.json")
	e.expectErr(e.do("POST", "/api/v1/data/import", ImportRequest{Filename: "b.json", Format: "xml"}), http.StatusBadRequest, CodeBadRequest, "unknown format")
	e.expectErr(e.do("POST", "/api/v1/data/import", ImportRequest{Filename: "b.json", Tables: []string{"members"}}), http.StatusBadRequest, CodeBadRequest, "unknown table")

	// Names stay in the backup dir.
	for _, p := range []string{"/api/v1/data/files/..%2Fstore.db", "/api/v1/data/files/.hidden"} {
		e.expectErr(e.do("GET", p, nil), http.StatusBadRequest, CodeBadRequest, "file name")
		e.expectErr(e.do("DELETE", p, nil), http.StatusBadRequest, CodeBadRequest, "file name")
	}
	e.expectErr(e.do("POST", "/api/v1/data/import", ImportRequest{Filename: "../store.db"}), http.StatusBadRequest, CodeBadRequest, "file name")
	e.expect(e.do("DELETE", "/api/v1/data/files/b.json", nil), http.StatusNoContent, nil)
	e.expectErr(e.do("DELETE", "/api/v1/data/files/b.json", nil), http.StatusNotFound, CodeNotFound, "b.json")
}

// Long operations stream progress as NDJSON when asked.
func TestDataStreamsProgress(t *testing.T) {
	e := newDataEnv(t)
	req, _ := http.NewRequest("POST", e.local.URL+"/api/v1/data/export", strings.NewReader(`{"filename":"s.json"}`))
	req.Header.Set("Accept", "application/x-ndjson")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("content type %q", res.Header.Get("Content-Type"))
	}
	var lines []map[string]json.RawMessage
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		var l map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Bytes(), err)
		}
		lines = append(lines, l)
	}
	last := lines[len(lines)-1]
	if len(lines) < 2 || lines[0]["progress"] == nil || last["result"] == nil {
		t.Fatalf("stream: %d lines, first %v, last %v", len(lines), lines[0], last)
	}
	// An error ends the stream as {"error":...}, with the problems of a bad file.
	req, _ = http.NewRequest("POST", e.local.URL+"/api/v1/data/files?name=bad.json", strings.NewReader("{}"))
	http.DefaultClient.Do(req)
	e.put(store.TableConfig, "x", store.ConfigOverride{V: 1, Key: "x", Value: json.RawMessage(`1`)})
	req, _ = http.NewRequest("POST", e.local.URL+"/api/v1/data/import", strings.NewReader(`{"filename":"s.json","tables":["nosuch"]}`))
	req.Header.Set("Accept", "application/x-ndjson")
	res2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res2.Body)
	res2.Body.Close()
	if res2.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "unknown table") {
		t.Fatalf("bad request before streaming: %d %s", res2.StatusCode, b)
	}
}

// Viewers may list files but not download them (exports hold credential
// hashes), nor export or import.
func TestDataViewer(t *testing.T) {
	e := newDataEnv(t)
	e.expect(e.do("POST", "/api/v1/data/export", map[string]any{"filename": "a.json"}), http.StatusCreated, nil)
	hash, _ := bcrypt.GenerateFromPassword([]byte("viewpw"), bcrypt.MinCost)
	e.put(store.TableAdmins, "v1", store.Admin{V: 1, Username: "v1", PasswordHash: string(hash), Role: RoleViewer})
	var lr LoginResponse
	e.expect(send(t, e.remote.URL, "POST", "/api/v1/login", "", LoginRequest{Username: "v1", Password: "viewpw"}), http.StatusOK, &lr)
	vb := "Bearer " + lr.Token
	e.expect(send(t, e.remote.URL, "GET", "/api/v1/data/files", vb, nil), http.StatusOK, nil)
	e.expectErr(send(t, e.remote.URL, "GET", "/api/v1/data/files/a.json", vb, nil), http.StatusForbidden, CodeForbidden, "only administrators")
	e.expectErr(send(t, e.remote.URL, "POST", "/api/v1/data/export", vb, nil), http.StatusForbidden, CodeForbidden, "viewer")
	e.expectErr(send(t, e.remote.URL, "POST", "/api/v1/data/import", vb, ImportRequest{Filename: "a.json"}), http.StatusForbidden, CodeForbidden, "viewer")
}

// importWithFile posts a multipart import: the options, then the file.
func importWithFile(t *testing.T, base string, opts any, name string, content []byte) resp {
	t.Helper()
	options := ""
	if opts != nil {
		j, _ := json.Marshal(opts)
		options = string(j)
	}
	return postMultipart(t, base+"/api/v1/data/import", options, name, content)
}

// TestDataImportWithFile: an import that carries its file (multipart)
// reads it, reports it by its name and keeps no copy in the backup dir:
// a dry run, a refused file and a real import leave the backup dir as it
// was, hidden files included.
func TestDataImportWithFile(t *testing.T) {
	e := newDataEnv(t)
	var exp backup.ExportFile
	e.expect(e.do("POST", "/api/v1/data/export", map[string]any{"filename": "a.json"}), http.StatusCreated, &exp)
	doc := mustReadFile(t, filepath.Join(e.dir, "backup", "a.json"))
	e.put(store.TableUsers, "username:bob", store.User{V: 1, Kind: "username", ID: "bob", Algorithm: "plain", PasswordHash: "pw"})
	before := dirListing(t, filepath.Join(e.dir, "backup"))

	var rep backup.ImportReport
	e.expect(importWithFile(t, e.local.URL, ImportRequest{DryRun: true, Replace: true}, "mine.json", doc), http.StatusOK, &rep)
	if !rep.DryRun || rep.Committed || rep.File != "mine.json" || rep.Tables[0].Unchanged != 1 || rep.Tables[0].Removed != 1 {
		t.Fatalf("dry run: %+v", rep)
	}
	if after := dirListing(t, filepath.Join(e.dir, "backup")); after != before {
		t.Fatalf("dry run changed the backup dir:\nbefore %s\nafter  %s", before, after)
	}
	r := importWithFile(t, e.local.URL, ImportRequest{DryRun: true}, "bad.json", doc[:len(doc)-20])
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad file: %d %s", r.status, r.body)
	}
	e.expectErr(importWithFile(t, e.local.URL, map[string]any{"dry_run": true, "bogus": 1}, "x.json", doc), http.StatusBadRequest, CodeBadRequest, "bogus")
	e.expectErr(importWithFile(t, e.local.URL, ImportRequest{DryRun: true}, ".hidden", doc), http.StatusBadRequest, CodeBadRequest, "file name")
	if after := dirListing(t, filepath.Join(e.dir, "backup")); after != before {
		t.Fatalf("refused imports changed the backup dir:\nbefore %s\nafter  %s", before, after)
	}
	// Without options: a merge, named by the part's file name.
	e.expect(importWithFile(t, e.local.URL, nil, "mine.json", doc), http.StatusOK, &rep)
	if rep.DryRun || !rep.Committed || rep.File != "mine.json" {
		t.Fatalf("import: %+v", rep)
	}
	if after := dirListing(t, filepath.Join(e.dir, "backup")); after != before {
		t.Fatalf("import changed the backup dir:\nbefore %s\nafter  %s", before, after)
	}
}

func mustReadFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dirListing is every entry of dir, hidden ones included, with its size.
func dirListing(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%d ", e.Name(), fi.Size())
	}
	return b.String()
}
