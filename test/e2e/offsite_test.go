package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/roostmq/roost/internal/backup/target/s3server"
)

// Off-site targets (docs/backup-restore.md#off-site-targets): node
// backups and data exports streamed to a real S3-compatible server
// (versitygw, a process on a loopback port) or to another directory.

// s3Env is the config of a node whose backup.target is bucket/prefix of
// srv; the credentials come from the AWS_* environment.
func s3Env(srv *s3server.Server, url string) []string {
	return []string{
		"ROOST_BACKUP__TARGET=" + url,
		"ROOST_BACKUP__S3__ENDPOINT=" + srv.Endpoint,
		"ROOST_BACKUP__S3__REGION=us-east-1",
		"ROOST_BACKUP__S3__PATH_STYLE=true",
		"AWS_ACCESS_KEY_ID=" + s3server.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s3server.SecretKey,
	}
}

// remoteList is the JSON of `ctl backup list [--remote] -o json`.
type remoteList struct {
	Location string `json:"location"`
	Remote   bool   `json:"remote"`
	Backups  []struct {
		Name      string `json:"name"`
		Path      string `json:"path"`
		Size      int64  `json:"size"`
		Scheduled bool   `json:"scheduled"`
		Encrypted bool   `json:"encrypted"`
	} `json:"backups"`
	Targets []targetStatus `json:"targets"`
}

type targetStatus struct {
	Kind        string    `json:"kind"`
	Target      string    `json:"target"`
	LastSuccess time.Time `json:"last_success"`
	LastName    string    `json:"last_name"`
	LastSize    int64     `json:"last_size"`
	LastFailure time.Time `json:"last_failure"`
	LastError   string    `json:"last_error"`
	Successes   int64     `json:"successes"`
	Failures    int64     `json:"failures"`
}

func (l remoteList) names() []string {
	var out []string
	for _, b := range l.Backups {
		out = append(out, b.Name)
	}
	return out
}

// statusTargets is the target records of `ctl status -o json`.
func statusTargets(n *node) []targetStatus {
	var s struct {
		Targets []targetStatus `json:"targets"`
	}
	mqttCtlJSON(n, &s, "status")
	return s.Targets
}

func findTarget(ts []targetStatus, kind, tgt string) targetStatus {
	for _, s := range ts {
		if s.Kind == kind && s.Target == tgt {
			return s
		}
	}
	return targetStatus{}
}

// objectFile is where versitygw keeps an object: a plain file.
func objectFile(srv *s3server.Server, bucket, key string) string {
	return filepath.Join(srv.Root, bucket, filepath.FromSlash(key))
}

// A backup streamed to S3, encrypted before upload, listed at the
// target only, verified from the bucket, and restored from the bucket
// onto a fresh machine's empty data dir; an export streamed there and
// imported from the bucket on another cluster.
func TestOffsiteS3BackupRestoreImport(t *testing.T) {
	t.Parallel()
	srv := s3server.Start(t)
	srv.MakeBucket(t, "roost")
	const url = "s3://roost/prod/eu-1"
	n := newClusterNode(t, "s3n1", s3Env(srv, url)...)
	n.Start()
	for i := range 20 {
		n.mustCtl("users", "add", fmt.Sprintf("u%02d", i), "pw")
	}
	_, before := digestTables(n)

	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idFile := filepath.Join(t.TempDir(), "id.txt")
	writeFile(t, idFile, id.String()+"\n")
	res := createBackup(t, n, "--encrypt-to", id.Recipient().String())
	if !strings.HasSuffix(res.Name, ".tar.zst.age") {
		t.Fatalf("encrypted backup named %s", res.Name)
	}
	var created struct {
		Path   string `json:"path"`
		Target string `json:"target"`
		Remote bool   `json:"remote"`
	}
	out := n.mustCtl("backup", "create", "-o", "json", "--name", "second.tar.zst")
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Path != url+"/second.tar.zst" || created.Target != url || !created.Remote {
		t.Fatalf("backup create to backup.target: %v\n%s", err, out)
	}

	// The object's bytes are age's: encryption happened before upload.
	obj, err := os.ReadFile(objectFile(srv, "roost", "prod/eu-1/"+res.Name))
	if err != nil {
		t.Fatalf("the object is not in the bucket: %v", err)
	}
	if !bytes.HasPrefix(obj, []byte("age-encryption.org/v1\n")) || int64(len(obj)) != res.Size {
		t.Fatalf("object %s: %d bytes (reported %d), starts %q: not an age file", res.Name, len(obj), res.Size, obj[:min(len(obj), 30)])
	}
	if bytes.Contains(obj, []byte("MANIFEST.json")) || bytes.Contains(obj, []byte(`"node_id"`)) {
		t.Fatal("the uploaded object holds plain text of the archive")
	}
	// Streamed, not kept: nothing of it on the node's disk.
	if names := dirNames(t, filepath.Join(n.DataDir, "backup")); len(names) != 0 {
		t.Fatalf("the node's backup dir holds %v after backups to S3", names)
	}

	var remote, local remoteList
	mqttCtlJSON(n, &remote, "backup", "list", "--remote")
	mqttCtlJSON(n, &local, "backup", "list")
	if !remote.Remote || remote.Location != url || !slices.Equal(remote.names(), []string{res.Name, "second.tar.zst"}) ||
		!remote.Backups[0].Encrypted || remote.Backups[0].Size != res.Size {
		t.Fatalf("backup list --remote: %+v", remote)
	}
	if local.Remote || len(local.Backups) != 0 {
		t.Fatalf("backup list (local): %+v", local)
	}
	st := findTarget(statusTargets(n), "node_backup", url)
	if st.Successes != 2 || st.LastName != "second.tar.zst" || st.LastSize == 0 || st.Failures != 0 {
		t.Fatalf("status record of %s: %+v", url, st)
	}
	// The listing route as the dashboard calls it, over HTTP with an API key.
	var key struct{ Name, Secret string }
	json.Unmarshal([]byte(n.mustCtl("apikeys", "create", "dash-key", "--output", "json")), &key)
	r := doAPI(t, n.API, apiCall{Method: "GET", Path: "/api/v1/backups?remote=true", BasicUser: key.Name, BasicPass: key.Secret})
	if r.Status != 200 || !strings.Contains(string(r.Body), res.Name) || !strings.Contains(string(r.Body), `"remote":true`) {
		t.Fatalf("GET /api/v1/backups?remote=true: %s", r)
	}
	r = doAPI(t, n.API, apiCall{Method: "GET", Path: "/api/v1/data/files?remote=true", BasicUser: key.Name, BasicPass: key.Secret})
	if r.Status != 200 || !strings.Contains(string(r.Body), `"remote":true`) {
		t.Fatalf("GET /api/v1/data/files?remote=true: %s", r)
	}
	wantAPIError(t, "remote=maybe", doAPI(t, n.API, apiCall{Method: "GET", Path: "/api/v1/backups?remote=maybe",
		BasicUser: key.Name, BasicPass: key.Secret}), 400, "BAD_REQUEST", "remote")

	// /metrics shows the same health, under the target's URL (no
	// credentials); the backup dir ("local") has had nothing.
	nb := []string{"kind", "node_backup", "target", url}
	m := scrapeMetrics(t, n, key.Name, key.Secret)
	if m.get(t, "roost_backup_successes_total", nb...) != 2 || m.get(t, "roost_backup_failures_total", nb...) != 0 ||
		m.get(t, "roost_backup_last_success_size_bytes", nb...) != float64(st.LastSize) {
		t.Errorf("metrics of %s: successes %v, size %v; status says %+v", url, m.get(t, "roost_backup_successes_total", nb...),
			m.get(t, "roost_backup_last_success_size_bytes", nb...), st)
	}
	for _, mt := range m["roost_backup_successes_total"].Metric {
		for _, l := range mt.Label {
			if l.GetName() == "target" && (l.GetValue() == "local" || strings.Contains(l.GetValue(), s3server.SecretKey) ||
				strings.Contains(l.GetValue(), s3server.AccessKey)) {
				t.Errorf("a series with target %q: want only %s, without credentials", l.GetValue(), url)
			}
		}
	}

	objURL := url + "/" + res.Name
	vout, verr, err := n.run("backup", "verify", objURL, "-i", idFile)
	if err != nil || !strings.Contains(vout, "OK") {
		t.Fatalf("roost backup verify %s: %v\n%s%s", objURL, err, vout, verr)
	}
	if _, verr, err := n.run("backup", "verify", objURL); err == nil || !strings.Contains(verr, "encrypted") {
		t.Fatalf("verify without the key: %v %s", err, verr)
	}

	// An export to the same target, imported from the bucket into another
	// (empty) cluster.
	var exp struct {
		Filename string `json:"filename"`
		Path     string `json:"path"`
		Remote   bool   `json:"remote"`
	}
	dl := filepath.Join(t.TempDir(), "export.json.gz")
	mqttCtlJSON(n, &exp, "data", "export", "--file", dl) // downloaded back from the bucket through the node
	if exp.Path != url+"/"+exp.Filename || !exp.Remote {
		t.Fatalf("export: %+v", exp)
	}
	if fileSHA256(t, dl) != fileSHA256(t, objectFile(srv, "roost", "prod/eu-1/"+exp.Filename)) {
		t.Fatal("the export downloaded with --file differs from the object")
	}
	var files struct {
		Data []struct {
			Name string `json:"name"`
		} `json:"data"`
		Remote bool `json:"remote"`
	}
	mqttCtlJSON(n, &files, "data", "files", "--remote")
	if !files.Remote || len(files.Data) != 1 || files.Data[0].Name != exp.Filename {
		t.Fatalf("data files --remote (exports only, no backups): %+v", files)
	}
	other := newClusterNode(t, "s3other", s3Env(srv, "s3://roost/other")...)
	other.Start()
	if out := other.mustCtl("data", "import", "--dry-run", exp.Path); !strings.Contains(out, "users") {
		t.Fatalf("dry run of %s: %s", exp.Path, out)
	}
	if _, got := digestTables(other); got["users"] != 0 {
		t.Fatalf("a dry run from %s imported: users %d", exp.Path, got["users"])
	}
	other.mustCtl("data", "import", exp.Path)
	if _, got := digestTables(other); got["users"] != before["users"] {
		t.Fatalf("import from %s: users %d, want %d", exp.Path, got["users"], before["users"])
	}
	// Read for the import only: no copy, no temp file left in the backup dir.
	if names := dirNames(t, filepath.Join(other.DataDir, "backup")); len(names) != 0 {
		t.Fatalf("imports from %s left %v in the backup dir", exp.Path, names)
	}

	// The machine is lost: a fresh one restores from the bucket.
	n.Kill()
	fresh := newClusterNode(t, "s3n1", s3Env(srv, url)...)
	rout, rerr, err := fresh.run("restore", objURL, "--data-dir", fresh.DataDir, "-i", idFile, "-o", "json")
	var rep restoreReport
	if err != nil || json.Unmarshal([]byte(rout), &rep) != nil || rep.Node != "s3n1" || rep.Tables["users"] != before["users"] {
		t.Fatalf("restore from %s: %v\n%s%s", objURL, err, rout, rerr)
	}
	fresh.Start()
	if _, got := digestTables(fresh); got["users"] != before["users"] {
		t.Fatalf("restored node: users %d, want %d", got["users"], before["users"])
	}
	// Its health starts from the newest of its backups in the bucket
	// (listed in the background at start; in a bucket other nodes may
	// share, its backups are those of its default names: not
	// second.tar.zst) and the newest export.
	var fkey struct{ Name, Secret string }
	json.Unmarshal([]byte(fresh.mustCtl("apikeys", "create", "metrics-key", "--output", "json")), &fkey)
	deadline := time.Now().Add(20 * time.Second)
	for {
		m := scrapeMetrics(t, fresh, fkey.Name, fkey.Secret)
		got := m.get(t, "roost_backup_last_success_timestamp_seconds", nb...)
		size := m.get(t, "roost_backup_last_success_size_bytes", nb...)
		exp := m.get(t, "roost_backup_last_success_timestamp_seconds", "kind", "data_export", "target", url)
		if got > 0 && exp > 0 {
			if size != float64(res.Size) || m.get(t, "roost_backup_successes_total", nb...) != 0 {
				t.Errorf("seeded node backup record: size %v, successes %v; want %s's size %d and no successes since start",
					size, m.get(t, "roost_backup_successes_total", nb...), res.Name, res.Size)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a restart onto the bucket, last success of node backups %v, of exports %v: want both found at %s", got, exp, url)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Scheduled backups and exports to S3: retention at the target keeps
// the newest keep of this node's scheduled ones, never a backup made on
// request nor another node's.
func TestOffsiteS3ScheduledRetention(t *testing.T) {
	t.Parallel()
	srv := s3server.Start(t)
	srv.MakeBucket(t, "roost")
	const url = "s3://roost/sched"
	env := append(s3Env(srv, url), "ROOST_BACKUP__INTERVAL=1s", "ROOST_BACKUP__KEEP=2",
		"ROOST_EXPORT__INTERVAL=1s", "ROOST_EXPORT__KEEP=2")
	n := newClusterNode(t, "sch", env...)
	// Another node's scheduled backup in the shared prefix, whose node
	// name starts like this one's.
	otherName := "roost-backup-sch-b-20250101T000000.000Z-auto.tar.zst"
	os.MkdirAll(objectFile(srv, "roost", "sched"), 0o755)
	srvPut(t, srv, "roost", "sched/"+otherName, []byte("not ours"))
	n.Start()
	n.mustCtl("users", "add", "u", "pw")
	manual := createBackup(t, n)
	n.mustCtl("data", "export", "--name", "manual-export.json.gz")

	autoLogged := func(msg, suffix string) int {
		c := 0
		for _, line := range strings.Split(n.Logs(), "\n") {
			if strings.Contains(line, msg) && strings.Contains(line, suffix) {
				c++
			}
		}
		return c
	}
	mqttEventually(t, 30*time.Second, "4 scheduled backups and 4 scheduled exports written", func() bool {
		return autoLogged("node backup written", "-auto.tar.zst") >= 4 && autoLogged("export written", "-auto.json.gz") >= 4
	})
	var l remoteList
	var keys []string
	mqttEventually(t, 10*time.Second, "retention at the target", func() bool {
		mqttCtlJSON(n, &l, "backup", "list", "--remote")
		keys = srv.Keys(t, "roost")
		var ownAuto, exports int
		for _, k := range keys {
			name := strings.TrimPrefix(k, "sched/")
			switch {
			case strings.HasPrefix(name, "roost-backup-sch-2") && strings.HasSuffix(name, "-auto.tar.zst"):
				ownAuto++
			case strings.HasPrefix(name, "roost-export-") && strings.HasSuffix(name, "-auto.json.gz"):
				exports++
			}
		}
		return ownAuto == 2 && exports == 2
	})
	for _, want := range []string{manual.Name, otherName, "manual-export.json.gz"} {
		if !slices.Contains(l.names(), want) && !slices.Contains(keys, "sched/"+want) {
			t.Errorf("%s was deleted by retention (keys %v)", want, keys)
		}
	}
	if !slices.Contains(l.names(), manual.Name) || !slices.Contains(l.names(), otherName) {
		t.Errorf("list --remote: %v", l.names())
	}
	st := findTarget(statusTargets(n), "data_export", url)
	if st.Successes < 4 || st.Failures != 0 {
		t.Errorf("data_export record: %+v", st)
	}
	// Every scheduled object left verifies: none is partial.
	for _, b := range l.Backups {
		if b.Scheduled && strings.HasPrefix(b.Name, "roost-backup-sch-2") {
			if out, errOut, err := n.run("backup", "verify", url+"/"+b.Name); err != nil {
				t.Errorf("verify %s: %v\n%s%s", b.Name, err, out, errOut)
			}
		}
	}
}

// srvPut stores an object with the server's own credentials.
func srvPut(t *testing.T, srv *s3server.Server, bucket, key string, data []byte) {
	t.Helper()
	if err := srv.Put(bucket, key, data); err != nil {
		t.Fatal(err)
	}
}

// Wrong credentials: a clear error naming the target and the S3 error
// code, the failure in the status, and nothing lost on the node.
func TestOffsiteS3WrongCredentials(t *testing.T) {
	t.Parallel()
	srv := s3server.Start(t)
	srv.MakeBucket(t, "roost")
	const url = "s3://roost/wrong"
	env := append(s3Env(srv, url), "AWS_SECRET_ACCESS_KEY=not-the-secret")
	n := newClusterNode(t, "wrong", env...)
	n.Start()
	n.mustCtl("users", "add", "u", "pw")
	local := createBackup(t, n, "--to", "local")
	backupDir := filepath.Join(n.DataDir, "backup")
	dirBefore := dirListing(t, backupDir)

	errOut := ctlFails(t, n, "backup", "create")
	mustContain(t, "ctl backup create with a wrong secret", errOut, url, srv.Endpoint, "SignatureDoesNotMatch")
	if strings.Contains(errOut, "not-the-secret") || strings.Contains(errOut, "internal error") {
		t.Errorf("error: %s", errOut)
	}
	errOut = ctlFails(t, n, "data", "export")
	mustContain(t, "ctl data export with a wrong secret", errOut, url, "SignatureDoesNotMatch")
	listErr := ctlFails(t, n, "backup", "list", "--remote")
	mustContain(t, "ctl backup list --remote with a wrong secret", listErr, url)

	if got := dirListing(t, backupDir); got != dirBefore {
		t.Errorf("the local backup dir changed:\nbefore %s\nafter %s", dirBefore, got)
	}
	if out, errOut, err := roost(t, "backup", "verify", filepath.Join(backupDir, local.Name)); err != nil {
		t.Errorf("the local backup no longer verifies: %v %s%s", err, out, errOut)
	}
	if keys := srv.Keys(t, "roost"); len(keys) != 0 {
		t.Errorf("objects in the bucket after refused uploads: %v", keys)
	}
	st := findTarget(statusTargets(n), "node_backup", url)
	if st.Failures != 1 || st.LastFailure.IsZero() || !strings.Contains(st.LastError, "SignatureDoesNotMatch") || st.Successes != 0 {
		t.Errorf("status record of %s: %+v", url, st)
	}
	if strings.Contains(n.mustCtl("status", "-o", "json"), "not-the-secret") || strings.Contains(n.Logs(), "not-the-secret") {
		t.Error("the secret shows in the status or the log")
	}
	table := n.mustCtl("backup", "list")
	mustContain(t, "ctl backup list", table, "SignatureDoesNotMatch", url)
	t.Logf("ctl backup create: %s\nctl backup list:\n%s", strings.TrimSpace(errOut), table)
}

// The S3 server killed -9 in the middle of an upload: the backup fails,
// no partial object is listed or counted, the node's disk holds no copy,
// and once the server is back the next backup succeeds.
func TestOffsiteS3KilledMidUpload(t *testing.T) {
	t.Parallel()
	srv := s3server.Start(t)
	srv.MakeBucket(t, "roost")
	const url = "s3://roost/kill"
	n := newClusterNode(t, "kill", s3Env(srv, url)...)
	// 48 MiB of random bytes in the data dir (a node backup copies the
	// data dir's top-level files): three 16 MiB parts that zstd cannot
	// shrink.
	os.MkdirAll(n.DataDir, 0o700)
	ballast := make([]byte, 48<<20)
	rand.Read(ballast)
	writeFile(t, filepath.Join(n.DataDir, "ballast.bin"), string(ballast))
	n.Start()
	n.mustCtl("users", "add", "u", "pw")

	// Kill the server once the first part is stored (versitygw keeps the
	// parts of an upload under the bucket's .sgwtmp dir).
	killed := make(chan bool, 1)
	go func() {
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if partsStored(srv, "roost") {
				srv.Kill()
				killed <- true
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		killed <- false
	}()
	out, errOut, err := n.ctl("backup", "create")
	if !<-killed {
		t.Fatalf("no upload part seen in 60s; backup create: %v %s%s", err, out, errOut)
	}
	if err == nil {
		t.Fatalf("backup create succeeded with the server killed mid-upload:\n%s", out)
	}
	mustContain(t, "backup create, server killed", errOut, url)
	t.Logf("backup create with the server killed mid-upload: %s", strings.TrimSpace(errOut))
	srv.Restart(t)

	var l remoteList
	mqttCtlJSON(n, &l, "backup", "list", "--remote")
	if len(l.Backups) != 0 {
		t.Fatalf("after the cut-off upload the target lists %v", l.names())
	}
	if keys := srv.Keys(t, "roost"); len(keys) != 0 {
		t.Fatalf("objects in the bucket after the cut-off upload: %v", keys)
	}
	if names := dirNames(t, filepath.Join(n.DataDir, "backup")); len(names) != 0 {
		t.Fatalf("the node's backup dir holds %v", names)
	}
	st := findTarget(statusTargets(n), "node_backup", url)
	if st.Failures != 1 || st.Successes != 0 {
		t.Fatalf("status record after the cut-off upload: %+v", st)
	}

	res := createBackup(t, n)
	if res.Size < 48<<20 {
		t.Fatalf("backup of %d bytes, want more than the 48 MiB ballast", res.Size)
	}
	mqttCtlJSON(n, &l, "backup", "list", "--remote")
	if !slices.Equal(l.names(), []string{res.Name}) {
		t.Fatalf("list --remote after the next backup: %v", l.names())
	}
	if out, errOut, err := n.run("backup", "verify", url+"/"+res.Name); err != nil {
		t.Fatalf("verify the next backup: %v\n%s%s", err, out, errOut)
	}
	if st := findTarget(statusTargets(n), "node_backup", url); st.Successes != 1 || st.Failures != 1 || st.LastSize != res.Size {
		t.Fatalf("status record after the next backup: %+v", st)
	}
}

// partsStored reports whether versitygw holds a stored part of an
// unfinished multipart upload in bucket.
func partsStored(srv *s3server.Server, bucket string) bool {
	found := false
	filepath.WalkDir(filepath.Join(srv.Root, bucket, ".sgwtmp"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil && fi.Size() >= 16<<20 {
				found = true
				return filepath.SkipAll
			}
		}
		return nil
	})
	return found
}

// A directory target (an NFS mount, say): backups and exports land there
// through a temp name, list with --remote, and restore from there.
func TestOffsiteDirTarget(t *testing.T) {
	t.Parallel()
	nfs := filepath.Join(shortTempDir(t), "nfs", "roost")
	n := newClusterNode(t, "dirn", "ROOST_BACKUP__TARGET="+nfs)
	n.Start()
	n.mustCtl("users", "add", "u", "pw")
	res := createBackup(t, n)
	if res.Path != filepath.Join(nfs, res.Name) {
		t.Fatalf("backup path %s, want in %s", res.Path, nfs)
	}
	n.mustCtl("data", "export", "--name", "e.json.gz")
	if got := dirNames(t, nfs); !slices.Equal(got, []string{"e.json.gz", res.Name}) {
		t.Fatalf("target dir holds %v", got)
	}
	var l remoteList
	mqttCtlJSON(n, &l, "backup", "list", "--remote")
	if !slices.Equal(l.names(), []string{res.Name}) || l.Location != nfs {
		t.Fatalf("list --remote: %+v", l)
	}
	// Downloaded through the node, it is the same file.
	dl := filepath.Join(t.TempDir(), "dl.tar.zst")
	n.mustCtl("backup", "download", res.Name, dl, "--remote")
	if fileSHA256(t, dl) != fileSHA256(t, res.Path) {
		t.Fatal("the downloaded backup differs from the target's file")
	}
	errOut := ctlFails(t, n, "backup", "create", "--to", "relative/dir")
	mustContain(t, "--to relative/dir", errOut, "absolute")
	n.Kill()
	rep := restoreBackup(t, res.Path, filepath.Join(shortTempDir(t), "data"))
	if rep.Tables["users"] != 1 {
		t.Fatalf("restore from the dir target: %+v", rep)
	}
}

// An s3:// backup.target without credentials stops `roost start` at once
// with a message naming the target and the keys to set; the data dir is
// not even created.
func TestOffsiteS3NoCredentials(t *testing.T) {
	t.Parallel()
	data := filepath.Join(shortTempDir(t), "data")
	secretFile := filepath.Join(t.TempDir(), "s3-secret")
	writeFile(t, secretFile, "\n")
	for what, extra := range map[string][]string{
		"none":              {},
		"empty secret file": {"ROOST_BACKUP__S3__ACCESS_KEY_ID=AKIA1", "ROOST_BACKUP__S3__SECRET_ACCESS_KEY_FILE=" + secretFile},
	} {
		env := append(cleanEnv(append(newPorts(t).env(), "ROOST_NODE__DATA_DIR="+data, "ROOST_BACKUP__TARGET=s3://roost/p",
			"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=")...), extra...)
		r := runBin(t, roostBin, "", env, 30*time.Second, "start")
		if r.Code == 0 {
			t.Fatalf("%s: roost start ran: %s", what, r)
		}
		mustContain(t, what, r.Stderr, "backup.target", "s3://roost/p")
		if what == "none" {
			mustContain(t, what, r.Stderr, "no S3 credentials", "backup.s3.access_key_id", "AWS_ACCESS_KEY_ID")
		} else {
			mustContain(t, what, r.Stderr, "secret_access_key_file", "first line is empty")
		}
		if _, err := os.Stat(data); err == nil {
			t.Fatalf("%s: the data dir was created", what)
		}
	}
}
