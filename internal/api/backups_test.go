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
	"github.com/roostmq/roost/internal/backup/target"
	"github.com/roostmq/roost/internal/backup/target/s3server"
	"github.com/roostmq/roost/internal/config"
)

func newBackupEnv(t *testing.T) (*testEnv, string) {
	t.Helper()
	e, dir, _ := newBackupEnvAt(t, nil)
	return e, dir
}

// newBackupEnvAt serves node backups whose backup.target is tg (nil: the
// backup dir), returning the backup dir and the health records.
func newBackupEnvAt(t *testing.T, tg target.Target) (*testEnv, string, *backup.Health) {
	t.Helper()
	e := newEnv(t)
	id, err := config.NewIdentity("n1")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(e.dir, config.BackupDirName)
	health := backup.NewHealth()
	e.srv.RegisterBackups(nodebackup.New(nodebackup.Options{Store: e.st, DataDir: e.dir, Dir: dir, Target: tg,
		Identity: func() config.Identity { return id }, Version: "test", Logger: quietLogger(), Health: health}), health)
	return e, dir, health
}

// streamedResult checks the NDJSON lines of a node backup: progress in
// bytes from 0 to all of it, then the result, which it returns.
func streamedResult(t *testing.T, status int, ctype string, lines []map[string]json.RawMessage) nodebackup.Result {
	t.Helper()
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
	if err := json.Unmarshal(lines[len(lines)-1]["result"], &res); err != nil {
		t.Fatalf("last line %s: %v", lines[len(lines)-1]["result"], err)
	}
	return res
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
	if res := streamedResult(t, status, ctype, lines); res.Name != "b1.tar.zst" {
		t.Fatalf("result %+v", res)
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
	// No backup.target: a remote listing is refused with its own code.
	e.expectErr(e.do("GET", "/api/v1/backups?remote=true", nil), http.StatusBadRequest, CodeNoRemoteTarget, "backup.target is not set")
}

// A node backup to an S3 target (a real versitygw) streams its progress
// as one to the backup dir does; the object is in the bucket only, the
// remote listing names the target, and the health is recorded under it.
func TestCreateBackupToS3StreamsProgress(t *testing.T) {
	srv := s3server.Start(t)
	srv.MakeBucket(t, "roost")
	const url = "s3://roost/api"
	tg, err := target.New(url, target.S3Config{Endpoint: srv.Endpoint, Region: "us-east-1", AccessKeyID: s3server.AccessKey,
		SecretAccessKey: s3server.SecretKey, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	e, dir, health := newBackupEnvAt(t, tg)
	status, ctype, lines := postStream(t, e.local.URL+"/api/v1/backups", `{"name":"s3.tar.zst"}`)
	res := streamedResult(t, status, ctype, lines)
	if res.Name != "s3.tar.zst" || res.Path != url+"/s3.tar.zst" || !res.Remote || res.Target != url {
		t.Fatalf("result %+v, want s3.tar.zst at %s", res, url)
	}
	if keys := srv.Keys(t, "roost"); len(keys) != 1 || keys[0] != "api/s3.tar.zst" {
		t.Fatalf("bucket holds %v", keys)
	}
	if _, err := os.Stat(filepath.Join(dir, "s3.tar.zst")); err == nil {
		t.Fatal("a backup to S3 left a copy in the backup dir")
	}
	var l BackupList
	e.expect(e.do("GET", "/api/v1/backups?remote=true", nil), http.StatusOK, &l)
	if !l.Remote || l.Location != url || len(l.Backups) != 1 || l.Backups[0].Size != res.Size ||
		len(l.Targets) != 1 || l.Targets[0].Target != url || l.Targets[0].Successes != 1 || l.Targets[0].LastName != "s3.tar.zst" {
		t.Fatalf("remote list %+v", l)
	}
	if hs := health.Of(backup.KindNodeBackup); len(hs) != 1 || hs[0].Size != res.Size {
		t.Fatalf("health %+v", hs)
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
