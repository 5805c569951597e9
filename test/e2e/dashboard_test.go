package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/minio/minio-go/v7"

	"github.com/roostmq/roost/internal/backup/target/s3server"
)

// findChromium returns the browser the dashboard test drives:
// $ROOST_E2E_CHROMIUM, else chromium on the PATH (Debian's package).
func findChromium() string {
	if p := os.Getenv("ROOST_E2E_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browserPage is one tab of a headless Chromium on a node's dashboard.
type browserPage struct {
	t     *testing.T
	ctx   context.Context
	shots string        // where screenshots go
	logs  func() string // the node's, shown on a failure

	mu       sync.Mutex
	problems []string // exceptions, console errors, CSP refusals
	network  []string // failed loads (401s are expected on some steps)
}

func newBrowserPage(t *testing.T, chromium string) *browserPage {
	t.Helper()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		// The machine has no network: nothing may try to reach one.
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	p := &browserPage{t: t, ctx: ctx, shots: t.ArtifactDir()}
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser, without a deadline
		t.Fatalf("start %s: %v", chromium, err)
	}
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			p.mu.Lock()
			switch {
			case m.Source == "network":
				p.network = append(p.network, m.Text)
			case m.IsException(), m.Type == chromedp.ConsoleError, strings.Contains(m.Text, "Content Security Policy"):
				p.problems = append(p.problems, m.String())
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// do runs steps with a deadline; a failure shows on a screenshot.
func (p *browserPage) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.fail(what, err)
	}
}

func (p *browserPage) fail(what string, err error) {
	p.t.Helper()
	p.shot("failure")
	errs, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](
		`[...document.querySelectorAll('.error:not([hidden])')].map(e => e.textContent).join(' | ')`))
	p.mu.Lock()
	defer p.mu.Unlock()
	p.t.Fatalf("%s: %v\nerrors on the page: %s\nbrowser console: %v\nfailed loads: %v\nnode log:\n%s", what, err, errs, p.problems, p.network, p.logs())
}

// waitFor polls a JavaScript expression until it is true.
func (p *browserPage) waitFor(what, expr string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 40*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(35*time.Second))); err != nil {
		p.fail("waiting for "+what+" ("+expr+")", err)
	}
}

func (p *browserPage) text(sel string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		p.fail("read "+sel, err)
	}
	return strings.TrimSpace(s)
}

func (p *browserPage) eval(expr string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		p.fail("evaluate "+expr, err)
	}
	return s
}

// shot saves a full-page PNG under the test's artifact dir.
func (p *browserPage) shot(name string) {
	p.t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(p.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	p.t.Logf("screenshot: %s", path)
}

// TestDashboardInBrowser drives the dashboard of a real node in headless
// Chromium: login (a wrong password first), the status page, a node
// backup and a data export with their progress bars, a download, an
// upload whose dry run shows the diff before the import is confirmed,
// and the login form again when the session ends. Screenshots of each
// page go to the test's artifact dir (go test -artifacts -outputdir DIR).
func TestDashboardInBrowser(t *testing.T) {
	chromium := findChromium()
	if chromium == "" {
		t.Skip("no Chromium for the dashboard's browser test: install Debian's chromium package (apt-get install chromium; .ci/run does) or set ROOST_E2E_CHROMIUM")
	}
	n := newNode(t)
	// Scheduled backups on, but not due during the test: the pages show
	// the schedule.
	n.Env = append(n.Env, "ROOST_NODE__NAME=roost@dash-e2e", "ROOST_BACKUP__INTERVAL=6h", "ROOST_BACKUP__KEEP=3")
	n.Start()
	pwFile, err := os.ReadFile(filepath.Join(n.DataDir, "initial-admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	password := strings.TrimSpace(string(pwFile))
	token := loginToken(t, n, password)
	var st struct {
		Node   string `json:"node"`
		NodeID string `json:"node_id"`
	}
	getJSON(t, n, token, "/api/v1/status", &st)

	p := newBrowserPage(t, chromium)
	p.logs = n.Logs
	base := "http://" + n.API

	// GET / leads to the login form.
	p.do("open the dashboard", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("login-form")))
	if loc := p.eval(`location.pathname`); loc != "/dashboard/" {
		t.Fatalf("/ led to %s, want /dashboard/", loc)
	}
	p.shot("01-login")

	// A wrong password: the API's error, code and message, on the form.
	p.do("log in with a wrong password",
		chromedp.SetValue(chromedp.ID("login-password"), "not-the-password"),
		chromedp.Click(chromedp.ID("login-submit")))
	p.waitFor("the login error", `!document.getElementById('login-error').hidden`)
	if e := p.text("#login-error"); !strings.Contains(e, "UNAUTHORIZED") || !strings.Contains(e, "wrong username or password") {
		t.Fatalf("login error shows %q, want the API's UNAUTHORIZED: wrong username or password", e)
	}
	p.shot("02-login-wrong-password")

	// The right one: the status page with the real node.
	p.do("log in", chromedp.SetValue(chromedp.ID("login-password"), password), chromedp.Click(chromedp.ID("login-submit")))
	p.waitFor("the status page", `document.getElementById('page-status').dataset.loaded === 'true'`)
	if got := p.text("#st-node"); got != st.Node || got != "roost@dash-e2e" {
		t.Fatalf("status shows node %q, want %q", got, st.Node)
	}
	if got := p.text("#st-node-id"); got != st.NodeID {
		t.Fatalf("status shows node id %q, want %q", got, st.NodeID)
	}
	if got := p.text("#st-raft-state"); got != "Leader" {
		t.Fatalf("raft state %q, want Leader", got)
	}
	if got := p.text("#st-schedule"); !strings.Contains(got, "every 6h0m0s, keeping the newest 3") {
		t.Fatalf("scheduled backups show %q", got)
	}
	if got := p.eval(`document.querySelectorAll('#st-listeners tr').length + ' ' + document.querySelector('#st-members').textContent`); !strings.Contains(got, st.NodeID) || strings.HasPrefix(got, "0 ") {
		t.Fatalf("listeners and members: %q", got)
	}
	p.shot("03-status")

	// Backup & Restore: empty lists, no remote target.
	p.do("open Backup & Restore", chromedp.Click(chromedp.CSS(`#nav a[data-page="backups"]`)))
	p.waitFor("the backups page", `document.getElementById('page-backups').dataset.loaded === 'true'`)
	p.waitFor("the remote sections", `document.querySelectorAll('[data-remote="none"]').length === 2`)
	if got := p.text("#backups-remote"); got != "No remote target configured." {
		t.Fatalf("remote backups section: %q", got)
	}

	// A node backup: the bar goes from the first report to done, and the
	// backup is listed under its name in the backup dir.
	p.do("create a backup", chromedp.Click(chromedp.ID("backup-create")))
	p.waitFor("the backup to finish", `document.getElementById('backup-job').dataset.state === 'done'`)
	backupDir := filepath.Join(n.DataDir, "backup")
	backups, _ := filepath.Glob(filepath.Join(backupDir, "*.tar.zst"))
	if len(backups) != 1 {
		t.Fatalf("backup dir holds %v, want one node backup", backups)
	}
	name := filepath.Base(backups[0])
	// At least the first report (0 bytes) and the last (all of them).
	if got := p.eval(`(() => { const b = document.getElementById('backup-progress'); return b.value + '/' + b.max + ', last report ' + b.dataset.last + ', reports ' + b.dataset.updates })()`); !strings.HasPrefix(got, "1/1, last report 1, reports ") ||
		strings.HasSuffix(got, " 0") || strings.HasSuffix(got, " 1") {
		t.Fatalf("backup progress bar %q, want it full, from at least two progress reports of which the last says done", got)
	}
	if txt := p.text("#backup-progress-text"); !strings.Contains(txt, "Done: "+name) {
		t.Fatalf("backup job says %q, want it done with %s", txt, name)
	}
	p.waitFor("the backup in the list", fmt.Sprintf(`!!document.querySelector('#backups-local tr[data-name=%q]')`, name))

	// A data export, then its download: the same bytes as the file.
	p.do("create an export", chromedp.SetValue(chromedp.ID("export-name"), "dash-export.json.gz"), chromedp.Click(chromedp.ID("export-create")))
	p.waitFor("the export to finish", `document.getElementById('export-job').dataset.state === 'done'`)
	p.waitFor("the export in the list", `!!document.querySelector('#exports-local tr[data-name="dash-export.json.gz"]')`)
	p.shot("04-backups-created")

	got := p.download("download the export", `#exports-local tr[data-name="dash-export.json.gz"] button[data-action="download"]`, "dash-export.json.gz")
	want, err := os.ReadFile(filepath.Join(backupDir, "dash-export.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("downloaded %d bytes, the export in the data dir has %d: not the same file", len(got), len(want))
	}

	// A file with a bad record: refused at upload with the API's code and
	// every problem, where it is.
	bad := filepath.Join(t.TempDir(), "dash-bad.json")
	bw := newExportWriter(t, bad, 1)
	bw.table("users")
	bw.record(`{"v":1,"kind":"username","id":"nohash","algorithm":"sha256","salt_position":"prefix","salt":"s","superuser":false,"created_at":"2025-01-01T00:00:00Z"}`)
	bw.close(t, nil, "")
	p.do("check a bad file", chromedp.SetUploadFiles(chromedp.ID("upload-file"), []string{bad}), chromedp.Click(chromedp.ID("upload-submit")))
	p.waitFor("the upload's refusal", `!document.getElementById('import-error').hidden`)
	if e := p.text("#import-error"); !strings.Contains(e, "INVALID_FILE") || !strings.Contains(e, `users record 1 field "password_hash"`) {
		t.Fatalf("a bad upload shows %q, want INVALID_FILE with the problem's place", e)
	}
	if _, err := os.Stat(filepath.Join(backupDir, "dash-bad.json")); err == nil {
		t.Fatal("the refused upload was kept in the backup dir")
	}
	p.shot("05-upload-invalid")

	// Upload an export that adds a user: the dry run shows users +1 and
	// changes nothing; Confirm imports it.
	upload := writeUsersExport(t, t.TempDir(), "dashnew", 1)
	const newUser = "dashnew-000000"
	p.do("choose the file", chromedp.SetUploadFiles(chromedp.ID("upload-file"), []string{upload}))
	p.do("check it", chromedp.Click(chromedp.ID("upload-submit")))
	p.waitFor("the dry run", `document.getElementById('import-report').dataset.dryRun === 'true' && !document.getElementById('import-report').hidden`)
	if got := p.text(`#import-tables tr[data-table="users"] td[data-col="added"]`); got != "+1" {
		t.Fatalf("dry run shows users added %q, want +1", got)
	}
	if got := p.text("#import-summary"); !strings.Contains(got, "1 to add") {
		t.Fatalf("dry run summary %q", got)
	}
	if r := doAPI(t, n.API, apiCall{Method: "GET", Path: "/api/v1/users/" + newUser, Bearer: token}); r.Status != http.StatusNotFound {
		t.Fatalf("after the dry run the user exists: %s", r)
	}
	noCopy := func(when string) {
		t.Helper()
		ents, err := os.ReadDir(backupDir)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range ents {
			if strings.Contains(e.Name(), "dashnew") {
				t.Fatalf("%s the backup dir holds %s: a file checked or imported from the browser must leave no copy", when, e.Name())
			}
		}
	}
	noCopy("after the dry run")
	p.shot("06-import-dry-run")

	p.do("confirm the import", chromedp.Click(chromedp.ID("import-confirm")))
	p.waitFor("the import", `document.getElementById('import-report').dataset.dryRun === 'false' && document.getElementById('import-job').dataset.state === 'done'`)
	if r := doAPI(t, n.API, apiCall{Method: "GET", Path: "/api/v1/users/" + newUser, Bearer: token}); r.Status != http.StatusOK {
		t.Fatalf("after Confirm the user is not there: %s", r)
	}
	noCopy("after the import")
	p.shot("07-import-done")

	// A token the API refuses (expired, revoked) brings the login back
	// with the API's words.
	p.do("spoil the token", chromedp.Evaluate[chromedp.Void](`sessionStorage.setItem('roost.token', 'bad.token')`),
		chromedp.Click(chromedp.ID("backups-refresh")))
	p.waitFor("the login form", `!document.getElementById('page-login').hidden && !document.getElementById('login-error').hidden`)
	if e := p.text("#login-error"); !strings.Contains(e, "UNAUTHORIZED") || !strings.Contains(e, "bearer token") {
		t.Fatalf("after a refused token the login says %q", e)
	}
	p.shot("08-session-ended")

	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.problems) > 0 {
		t.Errorf("the browser reported problems (exceptions, console errors, CSP refusals):\n%s", strings.Join(p.problems, "\n"))
	}
	t.Logf("failed loads the browser logged (401s are expected): %v", p.network)
}

func loginToken(t *testing.T, n *node, password string) string {
	t.Helper()
	r := doAPI(t, n.API, apiCall{Method: "POST", Path: "/api/v1/login", Body: fmt.Sprintf(`{"username":"admin","password":%q}`, password)})
	var lr struct {
		Token string `json:"token"`
	}
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &lr) != nil || lr.Token == "" {
		t.Fatalf("login: %s", r)
	}
	return lr.Token
}

func getJSON(t *testing.T, n *node, token, path string, v any) {
	t.Helper()
	r := doAPI(t, n.API, apiCall{Method: "GET", Path: path, Bearer: token})
	if r.Status != http.StatusOK {
		t.Fatalf("GET %s: %s", path, r)
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// TestDashboardRemoteTarget: on a node whose backup.target is an S3
// bucket (a real versitygw), the dashboard makes a node backup and an
// export with their progress bars, both go to the bucket only, and the
// Remote sections list them under the target; the status, /metrics and
// the bucket agree.
func TestDashboardRemoteTarget(t *testing.T) {
	chromium := findChromium()
	if chromium == "" {
		t.Skip("no Chromium for the dashboard's browser test: install Debian's chromium package (apt-get install chromium; .ci/run does) or set ROOST_E2E_CHROMIUM")
	}
	srv := s3server.Start(t)
	srv.MakeBucket(t, "roost")
	const url = "s3://roost/dash"
	n := newNode(t)
	n.Env = append(n.Env, "ROOST_NODE__NAME=dash-s3")
	n.Env = append(n.Env, s3Env(srv, url)...)
	n.Start()
	pwFile, err := os.ReadFile(filepath.Join(n.DataDir, "initial-admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	password := strings.TrimSpace(string(pwFile))

	p := newBrowserPage(t, chromium)
	p.logs = n.Logs
	p.do("log in", chromedp.Navigate("http://"+n.API+"/dashboard/"), chromedp.WaitVisible(chromedp.ID("login-form")),
		chromedp.SetValue(chromedp.ID("login-password"), password), chromedp.Click(chromedp.ID("login-submit")))
	p.waitFor("the status page", `document.getElementById('page-status').dataset.loaded === 'true'`)
	p.do("open Backup & Restore", chromedp.Click(chromedp.CSS(`#nav a[data-page="backups"]`)))
	p.waitFor("the remote backups section", `document.querySelector('#backups-remote code')?.textContent === '`+url+`'`)
	p.waitFor("the remote exports section", `document.querySelector('#exports-remote code')?.textContent === '`+url+`'`)

	// A backup and an export: their progress bars fill (the bytes are
	// counted as they stream to the upload), and they land in the bucket.
	p.do("create a backup", chromedp.Click(chromedp.ID("backup-create")))
	p.waitFor("the backup to finish", `document.getElementById('backup-job').dataset.state === 'done'`)
	if got := p.eval(`(() => { const b = document.getElementById('backup-progress'); return b.value + '/' + b.max + ', last report ' + b.dataset.last + ', reports ' + b.dataset.updates })()`); !strings.HasPrefix(got, "1/1, last report 1, reports ") ||
		strings.HasSuffix(got, " 0") || strings.HasSuffix(got, " 1") {
		t.Fatalf("backup progress bar %q, want it full, from at least two progress reports of which the last says done", got)
	}
	p.do("create an export", chromedp.SetValue(chromedp.ID("export-name"), "dash-remote.json.gz"), chromedp.Click(chromedp.ID("export-create")))
	p.waitFor("the export to finish", `document.getElementById('export-job').dataset.state === 'done'`)
	keys := srv.Keys(t, "roost")
	var backupName string
	for _, k := range keys {
		if name, ok := strings.CutPrefix(k, "dash/"); ok && strings.HasSuffix(name, ".tar.zst") {
			backupName = name
		}
	}
	if backupName == "" || !slices.Contains(keys, "dash/dash-remote.json.gz") {
		t.Fatalf("the bucket holds %v, want the backup and dash/dash-remote.json.gz", keys)
	}
	if txt := p.text("#backup-progress-text"); !strings.Contains(txt, "Done: "+backupName) {
		t.Fatalf("backup job says %q, want it done with %s", txt, backupName)
	}

	// Listed under Remote, from the bucket; nothing in the backup dir.
	p.waitFor("the backup at the target", fmt.Sprintf(`!!document.querySelector('#backups-remote tr[data-name=%q]')`, backupName))
	p.waitFor("the export at the target", `!!document.querySelector('#exports-remote tr[data-name="dash-remote.json.gz"]')`)
	if got := p.eval(`document.querySelectorAll('#backups-local tr[data-name], #exports-local tr[data-name]').length + ''`); got != "0" {
		t.Fatalf("%s rows in the local lists, want none: a remote backup keeps no local copy", got)
	}
	if names := dirNames(t, filepath.Join(n.DataDir, "backup")); len(names) != 0 {
		t.Fatalf("the node's backup dir holds %v", names)
	}
	// A remote export downloads from the bucket, and Import… dry-runs it
	// from there (an export of this same cluster: nothing would change).
	got := p.download("download the remote export", `#exports-remote tr[data-name="dash-remote.json.gz"] button[data-action="download"]`, "dash-remote.json.gz")
	obj, err := srv.Client(t).GetObject(context.Background(), "roost", "dash/dash-remote.json.gz", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("downloaded %d bytes of the remote export, the object has %d: not the same file", len(got), len(want))
	}
	p.do("dry-run the remote export", chromedp.Click(chromedp.CSS(`#exports-remote tr[data-name="dash-remote.json.gz"] button[data-action="import"]`)))
	p.waitFor("the dry run of the remote export", `document.getElementById('import-report').dataset.dryRun === 'true' && !document.getElementById('import-report').hidden`)
	if got := p.text("#import-report-title"); !strings.Contains(got, url+"/dash-remote.json.gz") {
		t.Fatalf("the dry run is of %q, want %s/dash-remote.json.gz", got, url)
	}
	if names := dirNames(t, filepath.Join(n.DataDir, "backup")); len(names) != 0 {
		t.Fatalf("after the remote dry run the node's backup dir holds %v", names)
	}
	p.shot("remote-target")

	// The health of both runs, as the status and /metrics show it.
	var key struct{ Name, Secret string }
	json.Unmarshal([]byte(n.mustCtl("apikeys", "create", "dash-metrics", "--output", "json")), &key)
	m := scrapeMetrics(t, n, key.Name, key.Secret)
	for _, kind := range []string{"node_backup", "data_export"} {
		if got := m.get(t, "roost_backup_successes_total", "kind", kind, "target", url); got != 1 {
			t.Errorf("roost_backup_successes_total{kind=%q,target=%q} = %v, want 1", kind, url, got)
		}
	}
	if st := findTarget(statusTargets(n), "node_backup", url); st.LastName != backupName || st.Successes != 1 {
		t.Errorf("status record of %s: %+v, want %s", url, st, backupName)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.problems) > 0 {
		t.Errorf("the browser reported problems (exceptions, console errors, CSP refusals):\n%s", strings.Join(p.problems, "\n"))
	}
}

// download clicks a Download button and returns the bytes the browser
// saved under name.
func (p *browserPage) download(what, selector, name string) []byte {
	p.t.Helper()
	downloads := p.t.TempDir()
	dctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	progress := chromedp.BrowserEvents(dctx, browser.DownloadProgress)
	if _, err := chromedp.CallBrowser(p.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads, EventsEnabled: new(true),
	}); err != nil {
		p.t.Fatal(err)
	}
	p.do(what, chromedp.Click(chromedp.CSS(selector)))
	for ev, err := range progress {
		if err != nil {
			p.fail("wait for the download to complete", err)
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			break
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			p.fail(what, fmt.Errorf("the browser canceled it"))
		}
	}
	got, err := os.ReadFile(filepath.Join(downloads, name))
	if err != nil {
		p.t.Fatalf("%s: the download is not under its name: %v", what, err)
	}
	return got
}
