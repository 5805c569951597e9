package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstallLayout(t *testing.T) {
	s := newSandbox(t)
	tarball := s.mkfile("roost/bin/roost", "binary")
	container := s.mkfile("opt/roost/bin/roost", "binary")
	cases := []struct{ exe, install string }{
		{tarball, s.path("roost")},
		{container, s.path("opt/roost")},
		{s.mkfile("go/src/roost/roost", "binary"), ""}, // source checkout
		{"/bin/roost", ""},                             // "/" is no install dir
	}
	for _, c := range cases {
		if _, got := installLayout(c.exe, "/"); got != c.install {
			t.Errorf("installLayout(%s) = %q, want %q", c.exe, got, c.install)
		}
	}

	// A symlink to the binary (/usr/local/bin/roost -> /opt/roost/bin/roost)
	// resolves to the real install.
	link := filepath.Join(s.mkdir("usr/local/bin"), "roost")
	if err := os.Symlink(container, link); err != nil {
		t.Fatal(err)
	}
	exe, install := installLayout(link, "/")
	if exe != container || install != s.path("opt/roost") {
		t.Errorf("symlink: exe %q install %q, want %q %q", exe, install, container, s.path("opt/roost"))
	}
}

func TestPathsTarball(t *testing.T) {
	s := newSandbox(t)
	s.opts.Executable = s.mkfile("roost-5.0/bin/roost", "binary")
	conf := s.mkfile("roost-5.0/etc/roost.conf", "")
	s.mkfile("etc/roost/roost.conf", "") // the package's file loses to the install dir's
	l := s.load()
	if l.InstallDir != s.path("roost-5.0") || l.ConfigFile != conf || l.ConfigRule != RuleConfigInstall {
		t.Errorf("install %q config %q (%s)", l.InstallDir, l.ConfigFile, l.ConfigRule)
	}
	if want := s.path("roost-5.0/data"); l.DataDir != want || l.DataDirRule != RuleDataDirInstall || l.Config.Node.DataDir != want {
		t.Errorf("data dir %q (%s), want %q", l.DataDir, l.DataDirRule, want)
	}
	if l.BackupDir != s.path("roost-5.0/data/backup") {
		t.Errorf("backup dir %q", l.BackupDir)
	}
}

func TestPathsContainer(t *testing.T) {
	s := newSandbox(t)
	s.opts.Executable = s.mkfile("opt/roost/bin/roost", "binary")
	s.mkfile("opt/roost/etc/roost.conf", `node.name = "roost@c1"`)
	s.opts.WorkDir = s.mkdir("opt/roost")
	l := s.load()
	if l.ConfigFile != s.path("opt/roost/etc/roost.conf") || l.DataDir != s.path("opt/roost/data") {
		t.Errorf("config %q data %q", l.ConfigFile, l.DataDir)
	}
	// The volume can be moved by env without touching the file.
	s.env("ROOST_NODE__DATA_DIR=/volume")
	if l := s.load(); l.DataDir != "/volume" || l.DataDirRule != RuleDataDirEnv {
		t.Errorf("env data dir %q (%s)", l.DataDir, l.DataDirRule)
	}
}

func TestPathsInstallDirWithoutConfig(t *testing.T) {
	// An install dir with no etc/roost.conf falls through to the package
	// rule, then to the defaults.
	s := newSandbox(t)
	s.opts.Executable = s.mkfile("roost/bin/roost", "binary")
	l := s.load()
	if l.ConfigRule != RuleConfigNone || l.DataDir != filepath.Join(s.opts.WorkDir, "data") || l.DataDirRule != RuleDataDirDefault {
		t.Errorf("config %q (%s) data %q (%s)", l.ConfigFile, l.ConfigRule, l.DataDir, l.DataDirRule)
	}
	wantSearched := []string{s.path("roost/etc/roost.conf"), s.path("etc/roost/roost.conf")}
	if strings.Join(l.ConfigSearched, ",") != strings.Join(wantSearched, ",") {
		t.Errorf("searched %v, want %v", l.ConfigSearched, wantSearched)
	}
}

func TestPathsPackage(t *testing.T) {
	s := newSandbox(t)
	s.opts.Executable = s.mkfile("usr/bin/roost", "binary") // install dir usr/ has no etc/roost.conf
	conf := s.mkfile("etc/roost/roost.conf", "log.level = \"debug\"\n")
	l := s.load()
	if l.ConfigFile != conf || l.ConfigRule != RuleConfigPackage || l.Config.Log.Level != "debug" {
		t.Errorf("config %q (%s)", l.ConfigFile, l.ConfigRule)
	}
	if l.DataDir != s.opts.PackageDataDir || l.DataDirRule != RuleDataDirPackage {
		t.Errorf("data dir %q (%s), want %q", l.DataDir, l.DataDirRule, s.opts.PackageDataDir)
	}
}

func TestPathsSourceCheckout(t *testing.T) {
	s := newSandbox(t)
	l := s.load()
	if l.InstallDir != "" || l.ConfigRule != RuleConfigNone {
		t.Errorf("install %q config rule %s", l.InstallDir, l.ConfigRule)
	}
	if want := filepath.Join(s.opts.WorkDir, "data"); l.DataDir != want || l.DataDirRule != RuleDataDirDefault {
		t.Errorf("data dir %q (%s), want %q", l.DataDir, l.DataDirRule, want)
	}
}

func TestPathsDataDirFromFile(t *testing.T) {
	s := newSandbox(t)
	s.opts.Executable = s.mkfile("roost/bin/roost", "binary")
	s.mkfile("roost/etc/roost.conf", "node.data_dir = \"/srv/roost\"\n")
	if l := s.load(); l.DataDir != "/srv/roost" || l.DataDirRule != RuleDataDirConfig {
		t.Errorf("data dir %q (%s)", l.DataDir, l.DataDirRule)
	}

	// Relative: against the working dir, not the config file's dir.
	s.mkfile("roost/etc/roost.conf", "node.data_dir = \"var/data\"\n")
	if l := s.load(); l.DataDir != filepath.Join(s.opts.WorkDir, "var/data") {
		t.Errorf("relative data dir %q, want under %s", l.DataDir, s.opts.WorkDir)
	}
	s.env("ROOST_NODE__DATA_DIR=envdata")
	if l := s.load(); l.DataDir != filepath.Join(s.opts.WorkDir, "envdata") || l.DataDirRule != RuleDataDirEnv {
		t.Errorf("relative env data dir %q (%s)", l.DataDir, l.DataDirRule)
	}
}

func TestPathsReport(t *testing.T) {
	s := newSandbox(t)
	s.opts.Executable = s.mkfile("opt/roost/bin/roost", "binary")
	s.mkfile("opt/roost/etc/roost.conf", "")
	l := s.load()
	entries := l.PathsReport()
	inst := s.path("opt/roost")
	want := []PathEntry{
		{"config file", inst + "/etc/roost.conf", "install dir: " + inst + ", binary in " + inst + "/bin"},
		{"data dir", inst + "/data", "install dir"},
		{"backup dir", inst + "/data/backup", "<data_dir>/backup"},
		{"log", "stderr", "log.file not set"},
	}
	if len(entries) != len(want) {
		t.Fatalf("entries %+v", entries)
	}
	for i := range want {
		if entries[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, entries[i], want[i])
		}
	}

	text := FormatPaths(entries)
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("text:\n%s", text)
	}
	pathCol := strings.Index(lines[0], inst)
	ruleCol := strings.Index(lines[0], "(")
	for _, line := range lines {
		if !strings.HasPrefix(line[pathCol:], "/") && !strings.HasPrefix(line[pathCol:], "stderr") || line[ruleCol] != '(' {
			t.Errorf("columns not aligned:\n%s", text)
			break
		}
	}
	wantContains(t, text, "config file   "+inst+"/etc/roost.conf   (install dir: "+inst+", binary in "+inst+"/bin)")

	js, err := json.Marshal(l.Paths)
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, string(js), `"config_file":"`+inst+`/etc/roost.conf"`, `"config_rule":"install dir (tarball/container)"`,
		`"data_dir":"`+inst+`/data"`, `"data_dir_rule":"install dir"`, `"backup_dir":"`+inst+`/data/backup"`, `"log":"stderr"`)
}

func TestPathsReportDefaultsAndLogFile(t *testing.T) {
	s := newSandbox(t)
	s.env("ROOST_LOG__FILE=/var/log/roost.log")
	entries := s.load().PathsReport()
	if e := entries[0]; e.Path != "none" || !strings.HasPrefix(e.Rule, "built-in defaults; not found: "+s.path("etc/roost/roost.conf")) {
		t.Errorf("config entry %+v", e)
	}
	if e := entries[1]; !strings.Contains(e.Rule, "source checkout") {
		t.Errorf("data entry %+v", e)
	}
	if e := entries[3]; e.Path != "/var/log/roost.log" || e.Rule != "log.file" {
		t.Errorf("log entry %+v", e)
	}
}
