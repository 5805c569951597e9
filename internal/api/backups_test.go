package api

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roostmq/roost/internal/backup"
	"github.com/roostmq/roost/internal/backup/nodebackup"
	"github.com/roostmq/roost/internal/config"
)

func newBackupEnv(t *testing.T) (*testEnv, string) {
	t.Helper()
	e := newEnv(t)
	id, err := config.NewIdentity("n1")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(e.dir, config.BackupDirName)
	health := backup.NewHealth()
	e.srv.RegisterBackups(nodebackup.New(nodebackup.Options{Store: e.st, DataDir: e.dir, Dir: dir,
		Identity: func() config.Identity { return id }, Version: "test", Logger: quietLogger(), Health: health}), health)
	return e, dir
}

// postStream POSTs body to path asking for NDJSON and returns the status,
// content type and lines.
func postStream(t *testing.T, url, body string) (int, string, []map[string]json.RawMessage) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Accept", "application/x-ndjson")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var lines []map[string]json.RawMessage
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		var l map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Bytes(), err)
		}
		lines = append(lines, l)
	}
	return res.StatusCode, res.Header.Get("Content-Type"), lines
}

// A node backup asked for NDJSON streams its progress in bytes, then the
// result; a request refused at once (a taken name) gets its own status
// and a plain error body, with no stream.
func TestCreateBackupStreamsProgress(t *testing.T) {
	e, dir := newBackupEnv(t)
	status, ctype, lines := postStream(t, e.local.URL+"/api/v1/backups", `{"name":"b1.tar.zst"}`)
	if status != http.StatusOK || ctype != "application/x-ndjson" || len(lines) < 3 {
		t.Fatalf("stream: %d %q, %d lines", status, ctype, len(lines))
	}
	var progs []backup.Progress
	for _, l := range lines[:len(lines)-1] {
		var p backup.Progress
		if l["progress"] == nil || json.Unmarshal(l["progress"], &p) != nil {
			t.Fatalf("a line before the last is not progress: %v", l)
		}
		progs = append(progs, p)
	}
	first, last := progs[0], progs[len(progs)-1]
	if first.Phase != "backup" || first.Done != 0 || first.Total <= 0 || last.Done != last.Total {
		t.Fatalf("progress from %+v to %+v, want 0 of a total up to all of it", first, last)
	}
	var res nodebackup.Result
	if err := json.Unmarshal(lines[len(lines)-1]["result"], &res); err != nil || res.Name != "b1.tar.zst" {
		t.Fatalf("last line %s: %v", lines[len(lines)-1]["result"], err)
	}
	if _, err := os.Stat(filepath.Join(dir, "b1.tar.zst")); err != nil {
		t.Fatalf("the streamed backup is not in the backup dir: %v", err)
	}

	status, ctype, lines = postStream(t, e.local.URL+"/api/v1/backups", `{"name":"b1.tar.zst"}`)
	if status != http.StatusConflict || ctype != "application/json" || len(lines) != 1 || !strings.Contains(string(lines[0]["message"]), "already") {
		t.Fatalf("taken name: %d %q %v, want a plain 409", status, ctype, lines)
	}
	// Without NDJSON: one JSON answer, as before.
	var plain nodebackup.Result
	e.expect(e.do("POST", "/api/v1/backups", map[string]any{"name": "b2.tar.zst"}), http.StatusCreated, &plain)
	if plain.Name != "b2.tar.zst" || plain.Size == 0 {
		t.Fatalf("plain create: %+v", plain)
	}
}

// The dashboard is served on the API port without credentials, and only
// there: the API behind it still wants them, and the unix socket serves
// no pages.
func TestDashboardOnTheAPIPortOnly(t *testing.T) {
	e := newEnv(t)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noFollow.Get(e.remote.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/dashboard/" {
		t.Fatalf("GET /: %d to %q, want 302 to /dashboard/", res.StatusCode, res.Header.Get("Location"))
	}
	res, err = http.Get(e.remote.URL + "/dashboard/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/html; charset=utf-8" ||
		!strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("GET /dashboard/: %d %q, CSP %q", res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("Content-Security-Policy"))
	}
	e.expectErr(send(t, e.remote.URL, "GET", "/api/v1/status", "", nil), http.StatusUnauthorized, CodeUnauthorized, "authentication required")
	e.expectErr(send(t, e.remote.URL, "GET", "/dashboardx", "", nil), http.StatusUnauthorized, CodeUnauthorized, "authentication required")
	e.expectErr(e.do("GET", "/dashboard/", nil), http.StatusNotFound, CodeNotFound, "no such API endpoint")
}
