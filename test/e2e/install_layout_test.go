package e2e

// Install layouts as they ship (docs/install.md): the tarball and the
// container image rebuilt in temp dirs from the repository's own files
// (etc/roost.conf, packaging/tarball/README) with the binary under test,
// checked against the recipes that build them (Makefile, Dockerfile), and
// the package's files (systemd unit, nfpm config, man page) checked for
// the paths the package rule needs. The real .deb is installed, upgraded
// and removed by packaging/ci-test.sh; node_paths_test.go covers the path
// rules themselves.

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the repository, seen from test/e2e.
const repoRoot = "../.."

func readRepoFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// shipFile copies a repository file to dst with mode, as an installer would.
func shipFile(t *testing.T, rel, dst string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, []byte(readRepoFile(t, rel)), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, mode); err != nil { // not subject to the umask
		t.Fatal(err)
	}
}

func mkdirMode(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

// exportResult is the part of `roost ctl data export --output json` read here.
type exportResult struct {
	Filename string `json:"filename"`
	Path     string `json:"path"`
	Size     int64  `json:"size"`
}

// TestInstallTarball: roost/bin/roost, roost/etc/roost.conf (the shipped
// file), roost/data/ (shipped empty, 0700) and roost/README, as `make
// tarball` lays them out. Run from another dir with no flags, the node
// uses etc/roost.conf and data/; `bin/roost ctl data export` writes into
// data/backup/; ctl also works the README's way (cd roost; bin/roost ...).
func TestInstallTarball(t *testing.T) {
	t.Parallel()
	mk := readRepoFile(t, "Makefile")
	mustContain(t, "Makefile (tarball recipe)", mk,
		"TARBALL := $(DIST)/roost-$(VERSION)-linux-$(ARCH).tar.gz",
		"$(BIN) $(STAGE)/roost/bin/roost",
		"etc/roost.conf $(STAGE)/roost/etc/roost.conf",
		"-m 0700 $(STAGE)/roost/data",
		"packaging/tarball/README $(STAGE)/roost/README",
		"CGO_ENABLED=0", "-trimpath", "-X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)")
	readme := readRepoFile(t, "packaging/tarball/README")
	mustContain(t, "tarball README", readme, "bin/roost", "etc/roost.conf", "data/", "data/backup/", "bin/roost paths", "bin/roost start")

	base := realPath(t, shortTempDir(t))
	root := filepath.Join(base, "roost")
	bin := filepath.Join(root, "bin", "roost")
	installBinary(t, bin)
	conf := filepath.Join(root, "etc", "roost.conf")
	shipFile(t, "etc/roost.conf", conf, 0o640)
	shipFile(t, "packaging/tarball/README", filepath.Join(root, "README"), 0o644)
	data := filepath.Join(root, "data")
	mkdirMode(t, data, 0o700)
	wd := filepath.Join(base, "elsewhere")
	mkdirMode(t, wd, 0o755)

	got := pathsJSON(t, bin, wd, cleanEnv())
	wantPaths(t, "tarball", got, conf, ruleInstallConf, data, ruleDataInstall)

	p := newPorts(t)
	pr := newProc(t, bin, wd, cleanEnv(p.env()...), p.MQTT)
	pr.start()
	pr.waitReady()
	mustContain(t, "start log", pr.logs(), "config="+conf, "data_dir="+data)
	readIdentity(t, data)

	// The default export name, into <install>/data/backup.
	r := pr.ctl("data", "export", "--output", "json")
	if r.Code != 0 {
		t.Fatalf("ctl data export: %s", r)
	}
	var ex exportResult
	if err := json.Unmarshal([]byte(r.Stdout), &ex); err != nil {
		t.Fatalf("export JSON: %v\n%s", err, r)
	}
	backup := filepath.Join(data, "backup")
	if filepath.Dir(ex.Path) != backup || !strings.HasPrefix(ex.Filename, "roost-export-") || !strings.HasSuffix(ex.Filename, ".json.gz") {
		t.Errorf("export written to %s (name %s), want %s/roost-export-*.json.gz", ex.Path, ex.Filename, backup)
	}
	checkGzipExport(t, ex.Path, ex.Size)

	// The README's way: from the unpacked dir, a relative bin/roost.
	r = runBin(t, "bin/roost", root, cleanEnv(), 30*time.Second, "ctl", "data", "export", "--name", "readme.json.gz")
	if r.Code != 0 {
		t.Fatalf("bin/roost ctl data export from %s: %s", root, r)
	}
	mustContain(t, "ctl data export table", r.Stdout, filepath.Join(backup, "readme.json.gz"))
	checkGzipExport(t, filepath.Join(backup, "readme.json.gz"), -1)

	if code := pr.signal(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d\n%s", code, pr.logs())
	}
	if st, err := os.Stat(data); err != nil {
		t.Error(err)
	} else if st.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v after the run, want 0700", st.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(wd, "data")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the working dir got a data dir: %v", err)
	}
}

// checkGzipExport: the file exists, has size (when >= 0) and is a gzip'd
// roost-export JSON document.
func checkGzipExport(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Errorf("export file: %v", err)
		return
	}
	defer f.Close()
	if st, _ := f.Stat(); size >= 0 && st.Size() != size {
		t.Errorf("%s: %d bytes, ctl said %d", path, st.Size(), size)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Errorf("%s is not gzip: %v", path, err)
		return
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	var doc struct {
		Format string `json:"format"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.Format != "roost-export" {
		t.Errorf("%s: format %q (%v), want a roost-export document", path, doc.Format, err)
	}
}

// dockerfileInstructions is the Dockerfile's instruction lines, with
// continuation lines joined, blanks squeezed and comments dropped.
func dockerfileInstructions(t *testing.T) []string {
	t.Helper()
	src := strings.ReplaceAll(readRepoFile(t, "Dockerfile"), "\\\n", " ")
	var out []string
	for _, l := range strings.Split(src, "\n") {
		l = strings.Join(strings.Fields(l), " ")
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// TestInstallContainerLayout: the image's layout under a temp root:
// <root>/opt/roost/bin/roost with the shipped etc/roost.conf at
// <root>/opt/roost/etc/roost.conf and an empty data/ (the volume), the
// working dir /opt/roost. `roost start` with no flags resolves config and
// data through the install-dir rule exactly as at /opt/roost in the
// image; the HEALTHCHECK command answers; and the shipped config binds
// every listener to the wildcard address (a container must not listen on
// loopback only).
func TestInstallContainerLayout(t *testing.T) {
	t.Parallel()
	ins := dockerfileInstructions(t)
	want := []string{
		`^FROM golang:\S+ AS build$`,
		`^FROM debian:\S+$`,
		`^COPY --from=build /out/roost /opt/roost/bin/roost$`,
		`^COPY etc/roost\.conf /opt/roost/etc/roost\.conf$`,
		`install -d -m 0700 -o roost -g roost /opt/roost/data`,
		`^USER roost$`,
		`^WORKDIR /opt/roost$`,
		`^VOLUME /opt/roost/data$`,
		`^EXPOSE 1883 8083 8883 18083 4370$`,
		`^HEALTHCHECK .*CMD \["/opt/roost/bin/roost", "ctl", "status", "--timeout", "8s"\]$`,
		`^ENTRYPOINT \["/opt/roost/bin/roost"\]$`,
		`^CMD \["start"\]$`,
	}
	for _, w := range want {
		re := regexp.MustCompile(w)
		found := false
		for _, l := range ins {
			found = found || re.MatchString(l)
		}
		if !found {
			t.Errorf("Dockerfile has no instruction matching %s", w)
		}
	}
	for _, l := range ins {
		// The node's config in the image is exactly etc/roost.conf: no
		// ROOST_ variables baked in (this test runs that file as is).
		if strings.HasPrefix(l, "ENV ") && strings.Contains(l, "ROOST_") {
			t.Errorf("Dockerfile sets %q: update this test to run the image's environment", l)
		}
	}

	base := realPath(t, shortTempDir(t))
	install := filepath.Join(base, "opt", "roost")
	bin := filepath.Join(install, "bin", "roost")
	installBinary(t, bin)
	conf := filepath.Join(install, "etc", "roost.conf")
	shipFile(t, "etc/roost.conf", conf, 0o640)
	data := filepath.Join(install, "data")
	mkdirMode(t, data, 0o700)
	wd := install // WORKDIR /opt/roost

	got := pathsJSON(t, bin, wd, cleanEnv())
	wantPaths(t, "container", got, conf, ruleInstallConf, data, ruleDataInstall)
	if got.InstallDir != install {
		t.Errorf("install dir %q, want %q", got.InstallDir, install)
	}
	r := runBin(t, bin, wd, cleanEnv(), 10*time.Second, "paths")
	mustContain(t, "roost paths", r.Stdout, conf, "(install dir: "+install+", binary in "+filepath.Join(install, "bin")+")", data)

	// CMD ["start"] on loopback ports (the image's own ports are checked
	// below when free), then the HEALTHCHECK command, as is.
	p := newPorts(t)
	pr := newProc(t, bin, wd, cleanEnv(p.env()...), p.MQTT)
	pr.start()
	pr.waitReady()
	mustContain(t, "start log", pr.logs(), "config="+conf, "data_dir="+data)
	id, _ := readIdentity(t, data)
	if _, err := os.Stat(filepath.Join(data, "roost.sock")); err != nil {
		t.Errorf("socket not in the volume: %v", err)
	}
	hc := runBin(t, bin, wd, cleanEnv(), 20*time.Second, "ctl", "status", "--timeout", "8s")
	if hc.Code != 0 {
		t.Errorf("HEALTHCHECK roost ctl status: %s", hc)
	}
	mustContain(t, "healthcheck output", hc.Stdout, id.NodeID)
	if code := pr.signal(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d\n%s", code, pr.logs())
	}
	// With the node gone the health check fails.
	if hc := runBin(t, bin, wd, cleanEnv(), 20*time.Second, "ctl", "status", "--timeout", "8s"); hc.Code == 0 {
		t.Errorf("HEALTHCHECK passes with the node stopped: %s", hc)
	}

	// The shipped config's binds: nothing uncommented binds to loopback ...
	for i, line := range strings.Split(readRepoFile(t, "etc/roost.conf"), "\n") {
		l := strings.TrimSpace(line)
		if strings.HasPrefix(l, "#") || !strings.Contains(l, "bind") {
			continue
		}
		if strings.Contains(l, "127.0.0.1") || strings.Contains(l, "localhost") || strings.Contains(l, "[::1]") {
			t.Errorf("etc/roost.conf:%d binds to loopback, unreachable from outside a container: %s", i+1, l)
		}
	}
	// ... and a node on it, with no environment at all, as `docker run`
	// starts it, listens on the wildcard address at the exposed ports.
	// Only when those ports are free on this machine.
	for _, port := range []string{"1883", "8083", "18083", "4370"} {
		l, err := net.Listen("tcp", ":"+port)
		if err != nil {
			t.Logf("port %s is busy on this machine: not starting the node on the image's default ports (%v)", port, err)
			return
		}
		l.Close()
	}
	pr = newProc(t, bin, wd, cleanEnv(), "127.0.0.1:1883")
	pr.start()
	pr.waitReady()
	s := parseStatus(t, pr.ctl("status", "--output", "json").Stdout)
	for name, port := range map[string]string{"tcp:default": "1883", "ws:default": "8083", "api": "18083"} {
		host, gotPort, err := net.SplitHostPort(s.bind(name))
		if err != nil || gotPort != port || (host != "" && host != "0.0.0.0" && host != "::") {
			t.Errorf("%s binds %q, want the wildcard address on port %s", name, s.bind(name), port)
		}
	}
	t.Logf("on the image's default ports: tcp:default %s, ws:default %s, api %s", s.bind("tcp:default"), s.bind("ws:default"), s.bind("api"))
	if s.NodeID != id.NodeID {
		t.Errorf("node id %s on the second start, want %s (same volume)", s.NodeID, id.NodeID)
	}
	if code := pr.signal(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d\n%s", code, pr.logs())
	}
}

// TestInstallPackageFiles: what the deb/rpm install must hold for the
// package rule (/etc/roost/roost.conf, /var/lib/roost) to apply to the
// service with no flags, and the man page and `roost help` naming every
// layout's paths.
func TestInstallPackageFiles(t *testing.T) {
	t.Parallel()
	unit := readRepoFile(t, "packaging/roost.service")
	for _, line := range []string{
		"ExecStart=/usr/bin/roost start", // no --config: the package rule finds the files
		"User=roost", "Group=roost", "Restart=on-failure", "KillSignal=SIGTERM",
		"ReadWritePaths=/var/lib/roost", "WorkingDirectory=/var/lib/roost", "NoNewPrivileges=true",
	} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(line) + `$`).MatchString(unit) {
			t.Errorf("roost.service lacks the line %q", line)
		}
	}
	for _, key := range []string{"TimeoutStopSec=", "LimitNOFILE="} {
		if !regexp.MustCompile(`(?m)^` + key + `\d+$`).MatchString(unit) {
			t.Errorf("roost.service lacks %s<number>", key)
		}
	}

	nfpm := readRepoFile(t, "packaging/nfpm.yaml")
	mustContain(t, "nfpm.yaml", nfpm,
		"dst: /usr/bin/roost",
		"src: etc/roost.conf\n    dst: /etc/roost/roost.conf\n    type: config|noreplace\n    file_info:\n      mode: 0640\n      owner: root\n      group: roost",
		"dst: /usr/lib/systemd/system/roost.service",
		"dst: /usr/share/man/man1/roost.1.gz")
	if strings.Contains(nfpm, "dst: /var/lib/roost") {
		t.Error("nfpm.yaml packages /var/lib/roost: removing the package would then touch the data dir")
	}
	post := readRepoFile(t, "packaging/scripts/postinstall.sh")
	mustContain(t, "postinstall.sh", post, "install -d -m 0700 -o roost -g roost /var/lib/roost", "[ -d /run/systemd/system ]")
	mustContain(t, "preinstall.sh", readRepoFile(t, "packaging/scripts/preinstall.sh"),
		"useradd --system", "--home-dir /var/lib/roost")

	paths := []string{"/etc/roost/roost.conf", "/var/lib/roost", "/opt/roost/etc/roost.conf", "/opt/roost/data", "roost/etc/roost.conf", "roost/data"}
	mustContain(t, "packaging/roost.1", readRepoFile(t, "packaging/roost.1"), append([]string{".TH ROOST 1"}, paths...)...)
	r := runBin(t, roostBin, "", cleanEnv(), 10*time.Second, "help")
	if r.Code != 0 {
		t.Fatalf("roost help: %s", r)
	}
	mustContain(t, "roost help", r.Stdout, "/etc/roost/roost.conf", "/var/lib/roost", "/opt/roost/etc", "/opt/roost/data")
}
