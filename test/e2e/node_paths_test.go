package e2e

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// Rule names as `roost paths --output json` prints them (config.Rule*).
const (
	ruleFlag        = "--config flag"
	ruleConfigEnv   = "ROOST_CONFIG"
	ruleInstallConf = "install dir (tarball/container)"
	rulePackageConf = "package install"
	ruleNoConfig    = "built-in defaults"
	ruleDataEnv     = "ROOST_NODE__DATA_DIR"
	ruleDataConfig  = "node.data_dir in config file"
	ruleDataInstall = "install dir"
	ruleDataPackage = "package install"
	ruleDataDefault = "source checkout / default"
)

// wantPaths compares the fields that matter for a rule.
func wantPaths(t *testing.T, what string, got pathsOut, configFile, configRule, dataDir, dataRule string) {
	t.Helper()
	if got.ConfigFile != configFile || got.ConfigRule != configRule {
		t.Errorf("%s: config %q by %q, want %q by %q", what, got.ConfigFile, got.ConfigRule, configFile, configRule)
	}
	if got.DataDir != dataDir || got.DataDirRule != dataRule {
		t.Errorf("%s: data dir %q by %q, want %q by %q", what, got.DataDir, got.DataDirRule, dataDir, dataRule)
	}
	if got.BackupDir != filepath.Join(dataDir, "backup") {
		t.Errorf("%s: backup dir %q, want %q", what, got.BackupDir, filepath.Join(dataDir, "backup"))
	}
}

// TestPathsSourceCheckout: the binary outside any bin/ dir, no config
// anywhere: built-in defaults and ./data in the working dir; the table
// says so too.
func TestPathsSourceCheckout(t *testing.T) {
	t.Parallel()
	skipIfPackageConfig(t)
	wd := realPath(t, shortTempDir(t))
	got := pathsJSON(t, roostBin, wd, cleanEnv())
	wantPaths(t, "source checkout", got, "", ruleNoConfig, filepath.Join(wd, "data"), ruleDataDefault)
	if got.InstallDir != "" {
		t.Errorf("install dir %q for a binary in %s, want none", got.InstallDir, filepath.Dir(roostBin))
	}
	if got.Log != "stderr" {
		t.Errorf("log %q, want stderr", got.Log)
	}
	if !slices.Contains(got.ConfigSearched, "/etc/roost/roost.conf") {
		t.Errorf("config_searched %v does not list /etc/roost/roost.conf", got.ConfigSearched)
	}
	// A relative data dir from env is taken against the working dir.
	got = pathsJSON(t, roostBin, wd, cleanEnv("ROOST_NODE__DATA_DIR=rel/dd"))
	wantPaths(t, "relative ROOST_NODE__DATA_DIR", got, "", ruleNoConfig, filepath.Join(wd, "rel/dd"), ruleDataEnv)

	r := runBin(t, roostBin, wd, cleanEnv(), 10*time.Second, "paths")
	if r.Code != 0 {
		t.Fatalf("roost paths: %s", r)
	}
	mustContain(t, "roost paths table", r.Stdout, "config file", "none", "built-in defaults",
		"data dir", filepath.Join(wd, "data"), "./data in the working dir", "backup dir", "log", "stderr")
	// Nothing is created by asking.
	if entries, _ := os.ReadDir(wd); len(entries) != 0 {
		t.Errorf("roost paths created files in the working dir: %v", entries)
	}
}

// TestPathsTarballLayout: roost/bin/roost with roost/etc/roost.conf → the
// config from there and the data dir roost/data; a real start puts its
// files there and ctl (same binary) finds it. Without etc/roost.conf the
// install dir is not used for data.
func TestPathsTarballLayout(t *testing.T) {
	t.Parallel()
	base := realPath(t, shortTempDir(t))
	testInstallLayout(t, filepath.Join(base, "roost"))
}

// TestPathsContainerLayout: the same rule for /opt/roost/bin/roost and
// /opt/roost/etc/roost.conf (under a temp root).
func TestPathsContainerLayout(t *testing.T) {
	t.Parallel()
	base := realPath(t, shortTempDir(t))
	testInstallLayout(t, filepath.Join(base, "opt", "roost"))
}

func testInstallLayout(t *testing.T, install string) {
	bin := filepath.Join(install, "bin", "roost")
	installBinary(t, bin)
	wd := realPath(t, shortTempDir(t)) // run from elsewhere: ./data must not matter

	// No etc/roost.conf yet: the install dir is searched, not used.
	if !packageConfigExists() {
		got := pathsJSON(t, bin, wd, cleanEnv())
		wantPaths(t, "install dir without etc/roost.conf", got, "", ruleNoConfig, filepath.Join(wd, "data"), ruleDataDefault)
		if got.InstallDir != install {
			t.Errorf("install dir %q, want %q", got.InstallDir, install)
		}
		want := []string{filepath.Join(install, "etc", "roost.conf"), "/etc/roost/roost.conf"}
		if !slices.Equal(got.ConfigSearched, want) {
			t.Errorf("config_searched %v, want %v (in this order)", got.ConfigSearched, want)
		}
	}

	conf := filepath.Join(install, "etc", "roost.conf")
	writeFile(t, conf, "node.name = \"install@e2e\"\n")
	data := filepath.Join(install, "data")
	got := pathsJSON(t, bin, wd, cleanEnv())
	wantPaths(t, "install layout", got, conf, ruleInstallConf, data, ruleDataInstall)
	if got.InstallDir != install || got.Executable != bin {
		t.Errorf("install dir %q executable %q, want %q and %q", got.InstallDir, got.Executable, install, bin)
	}
	// A symlink to the binary (as /usr/local/bin/roost might be) is
	// resolved to the install dir.
	link := filepath.Join(wd, "roost-link")
	if err := os.Symlink(bin, link); err != nil {
		t.Fatal(err)
	}
	got = pathsJSON(t, link, wd, cleanEnv())
	wantPaths(t, "symlinked binary", got, conf, ruleInstallConf, data, ruleDataInstall)
	os.Remove(link)

	// A real node on this layout.
	p := newPorts(t)
	env := cleanEnv(p.env()...)
	pr := newProc(t, bin, wd, env, p.MQTT)
	pr.start()
	pr.waitReady()
	id, _ := readIdentity(t, data)
	if id.Name != "install@e2e" {
		t.Errorf("node name %q, want install@e2e from %s", id.Name, conf)
	}
	if _, err := os.Stat(filepath.Join(data, "roost.sock")); err != nil {
		t.Errorf("socket not in %s: %v", data, err)
	}
	s := parseStatus(t, pr.ctl("status", "--output", "json").Stdout)
	if s.NodeID != id.NodeID {
		t.Errorf("ctl reached node %q, want %q", s.NodeID, id.NodeID)
	}
	mustContain(t, "start log", pr.logs(), "config="+conf, "data_dir="+data)
	if code := pr.signal(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d\n%s", code, pr.logs())
	}
	if _, err := os.Stat(filepath.Join(wd, "data")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the working dir got a data dir: %v", err)
	}
}

// TestPathsDataDirPrecedence: ROOST_NODE__DATA_DIR beats node.data_dir in
// the file, which beats the install-dir rule; ROOST_CONFIG beats the
// install dir's config, and then the install dir is not the data dir.
func TestPathsDataDirPrecedence(t *testing.T) {
	t.Parallel()
	base := realPath(t, shortTempDir(t))
	install := filepath.Join(base, "roost")
	bin := filepath.Join(install, "bin", "roost")
	installBinary(t, bin)
	wd := filepath.Join(base, "wd")
	if err := os.Mkdir(wd, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(install, "etc", "roost.conf")

	writeFile(t, conf, "# no data dir\n")
	got := pathsJSON(t, bin, wd, cleanEnv())
	wantPaths(t, "install rule", got, conf, ruleInstallConf, filepath.Join(install, "data"), ruleDataInstall)

	fromFile := filepath.Join(base, "from-file")
	writeFile(t, conf, fmt.Sprintf("[node]\ndata_dir = %q\n", fromFile))
	got = pathsJSON(t, bin, wd, cleanEnv())
	wantPaths(t, "node.data_dir in the file", got, conf, ruleInstallConf, fromFile, ruleDataConfig)

	fromEnv := filepath.Join(base, "from-env")
	got = pathsJSON(t, bin, wd, cleanEnv("ROOST_NODE__DATA_DIR="+fromEnv))
	wantPaths(t, "ROOST_NODE__DATA_DIR", got, conf, ruleInstallConf, fromEnv, ruleDataEnv)

	// An empty env value counts as unset.
	got = pathsJSON(t, bin, wd, cleanEnv("ROOST_NODE__DATA_DIR="))
	wantPaths(t, "empty ROOST_NODE__DATA_DIR", got, conf, ruleInstallConf, fromFile, ruleDataConfig)

	// ROOST_CONFIG beats the install dir's file; a config from elsewhere
	// does not make the install dir the data dir.
	other := filepath.Join(base, "other.conf")
	writeFile(t, other, "node.name = \"other\"\n")
	got = pathsJSON(t, bin, wd, cleanEnv("ROOST_CONFIG="+other))
	wantPaths(t, "ROOST_CONFIG over the install dir", got, other, ruleConfigEnv, filepath.Join(wd, "data"), ruleDataDefault)
	got = pathsJSON(t, bin, wd, cleanEnv("ROOST_CONFIG="+other, "ROOST_NODE__DATA_DIR="+fromEnv))
	wantPaths(t, "ROOST_CONFIG and ROOST_NODE__DATA_DIR", got, other, ruleConfigEnv, fromEnv, ruleDataEnv)
	got = pathsJSON(t, bin, wd, cleanEnv("ROOST_CONFIG="+other), "--config", conf)
	wantPaths(t, "--config over ROOST_CONFIG", got, conf, ruleFlag, fromFile, ruleDataConfig)

	// A real start honours the env data dir over the file's.
	p := newPorts(t)
	env := cleanEnv(append(p.env(), "ROOST_NODE__DATA_DIR="+fromEnv)...)
	pr := newProc(t, bin, wd, env, p.MQTT)
	pr.start()
	pr.waitReady()
	readIdentity(t, fromEnv)
	if _, err := os.Stat(fromFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("node.data_dir from the file was created although env overrode it: %v", err)
	}
	if code := pr.signal(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d\n%s", code, pr.logs())
	}
}

// TestPathsPackageRule: /etc/roost/roost.conf → data dir /var/lib/roost.
//
// The binary has no way to point the package rule at other dirs (the CLI
// calls config.Load with the default PackageConfigDir/PackageDataDir), so
// this test creates the real /etc/roost/roost.conf (a comment only) when,
// and only when, it does not exist and it may (root), and removes it (and
// /etc/roost if it made it) right after. It only runs `roost paths`: no
// node is started and /var/lib/roost is never created. It is not parallel:
// while the file exists, no other test of this package runs.
func TestPathsPackageRule(t *testing.T) {
	const etcDir, etcConf = "/etc/roost", "/etc/roost/roost.conf"
	if _, err := os.Lstat(etcConf); err == nil {
		t.Skipf("%s already exists on this machine: not touching it", etcConf)
	}
	madeDir := false
	if _, err := os.Lstat(etcDir); errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(etcDir, 0o755); err != nil {
			t.Skipf("cannot create %s (needs root): %v", etcDir, err)
		}
		madeDir = true
	}
	f, err := os.OpenFile(etcConf, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		if madeDir {
			os.Remove(etcDir)
		}
		t.Skipf("cannot create %s: %v", etcConf, err)
	}
	cleanup := func() {
		os.Remove(etcConf)
		if madeDir {
			os.Remove(etcDir)
		}
	}
	t.Cleanup(cleanup)
	f.WriteString("# written by roost's e2e TestPathsPackageRule; removed when it ends\n")
	f.Close()

	_, varLibBefore := os.Lstat("/var/lib/roost")

	wd := realPath(t, shortTempDir(t))
	got := pathsJSON(t, roostBin, wd, cleanEnv())
	wantPaths(t, "package rule", got, etcConf, rulePackageConf, "/var/lib/roost", ruleDataPackage)
	r := runBin(t, roostBin, wd, cleanEnv(), 10*time.Second, "paths")
	mustContain(t, "roost paths table", r.Stdout, etcConf, "package install: /etc/roost", "/var/lib/roost")

	// The env data dir still wins over the package rule.
	dd := filepath.Join(wd, "dd")
	got = pathsJSON(t, roostBin, wd, cleanEnv("ROOST_NODE__DATA_DIR="+dd))
	wantPaths(t, "env over package", got, etcConf, rulePackageConf, dd, ruleDataEnv)

	// A tarball without its own etc/roost.conf falls back to the package
	// config; one with it prefers its own.
	install := filepath.Join(realPath(t, shortTempDir(t)), "roost")
	bin := filepath.Join(install, "bin", "roost")
	installBinary(t, bin)
	got = pathsJSON(t, bin, wd, cleanEnv())
	wantPaths(t, "tarball without etc, package present", got, etcConf, rulePackageConf, "/var/lib/roost", ruleDataPackage)
	writeFile(t, filepath.Join(install, "etc", "roost.conf"), "")
	got = pathsJSON(t, bin, wd, cleanEnv())
	wantPaths(t, "tarball with etc, package present", got, filepath.Join(install, "etc", "roost.conf"), ruleInstallConf,
		filepath.Join(install, "data"), ruleDataInstall)

	cleanup()
	if _, err := os.Lstat(etcConf); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s not removed: %v", etcConf, err)
	}
	if _, err := os.Lstat("/var/lib/roost"); errors.Is(varLibBefore, fs.ErrNotExist) && !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("/var/lib/roost was created by roost paths")
	}
}
