package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNodeConfigEnvOverridesFile: a key set in the --config file and by
// ROOST_… takes the env value (the MQTT listener binds the env's port, not
// the file's), while keys only in the file take effect (node.name,
// api.bind).
func TestNodeConfigEnvOverridesFile(t *testing.T) {
	t.Parallel()
	dir := shortTempDir(t)
	p := newPorts(t)
	filePort := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	fileAPI := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	conf := filepath.Join(dir, "roost.conf")
	writeFile(t, conf, fmt.Sprintf(`
node.name = "from-file@e2e"
node.data_dir = %q

[listeners.tcp.default]
bind = %q

[api]
bind = %q
`, filepath.Join(dir, "file-data"), filePort, fileAPI))

	env := cleanEnv(
		"ROOST_LISTENERS__TCP__DEFAULT__BIND="+p.MQTT, // overrides the file
		"ROOST_LISTENERS__WS__DEFAULT__BIND="+p.WS,
		"ROOST_CLUSTER__BIND="+p.Cluster,
	)
	pr := newProc(t, roostBin, dir, env, p.MQTT, "--config", conf)
	pr.ctlArgs = []string{"--config", conf}
	pr.start()
	pr.waitReady()

	s := parseStatus(t, pr.ctl("status", "--output", "json").Stdout)
	if got := s.bind("tcp:default"); got != p.MQTT {
		t.Errorf("tcp listener bound to %q, want the env's %q (file said %q)", got, p.MQTT, filePort)
	}
	if got := s.bind("api"); got != fileAPI {
		t.Errorf("api bound to %q, want the file's %q", got, fileAPI)
	}
	if s.Node != "from-file@e2e" {
		t.Errorf("node name %q, want the file's from-file@e2e", s.Node)
	}
	if !portClosed(filePort) {
		t.Errorf("something listens on the file's tcp port %s although env overrode it", filePort)
	}
	if r := doAPI(t, fileAPI, apiCall{Method: "GET", Path: "/api/v1/status"}); r.Status != 401 {
		t.Errorf("REST API on the file's api.bind: %s, want 401", r)
	}
	// paths agrees: the file from the flag, the data dir from the file.
	got := pathsJSON(t, roostBin, dir, env, "--config", conf)
	if got.ConfigFile != conf || got.ConfigRule != "--config flag" ||
		got.DataDir != filepath.Join(dir, "file-data") || got.DataDirRule != "node.data_dir in config file" {
		t.Errorf("roost paths = %+v", got)
	}
	if code := pr.signal(sigterm); code != 0 {
		t.Fatalf("exit %d\n%s", code, pr.logs())
	}
}

// TestNodeConfigFlagBeatsEnvPath: --config wins over ROOST_CONFIG for the
// file path (paths and a real start agree), ROOST_CONFIG is used without
// the flag, and a named file that does not exist is an error naming it
// and the rule that named it.
func TestNodeConfigFlagBeatsEnvPath(t *testing.T) {
	t.Parallel()
	dir := realPath(t, shortTempDir(t))
	flagConf := filepath.Join(dir, "flag.conf")
	envConf := filepath.Join(dir, "env.conf")
	writeFile(t, flagConf, "node.name = \"from-flag@e2e\"\n")
	writeFile(t, envConf, "node.name = \"from-env@e2e\"\n")

	p := newPorts(t)
	env := cleanEnv(append(p.env(), "ROOST_CONFIG="+envConf, "ROOST_NODE__DATA_DIR="+filepath.Join(dir, "data"))...)

	got := pathsJSON(t, roostBin, dir, env, "--config", flagConf)
	if got.ConfigFile != flagConf || got.ConfigRule != "--config flag" {
		t.Errorf("with --config and ROOST_CONFIG: config %q by %q, want %q by --config flag", got.ConfigFile, got.ConfigRule, flagConf)
	}
	got = pathsJSON(t, roostBin, dir, env)
	if got.ConfigFile != envConf || got.ConfigRule != "ROOST_CONFIG" {
		t.Errorf("with ROOST_CONFIG only: config %q by %q, want %q by ROOST_CONFIG", got.ConfigFile, got.ConfigRule, envConf)
	}
	// A relative --config is taken against the working dir.
	got = pathsJSON(t, roostBin, dir, env, "--config", "flag.conf")
	if got.ConfigFile != flagConf {
		t.Errorf("relative --config: config %q, want %q", got.ConfigFile, flagConf)
	}

	// A real start takes the flag's file.
	pr := newProc(t, roostBin, dir, env, p.MQTT, "--config", flagConf)
	pr.start()
	pr.waitReady()
	s := parseStatus(t, pr.ctl("status", "--output", "json").Stdout)
	if s.Node != "from-flag@e2e" {
		t.Errorf("node name %q, want from-flag@e2e (the --config file, not ROOST_CONFIG's)", s.Node)
	}
	mustContain(t, "start log", pr.logs(), "config="+flagConf)
	if code := pr.signal(sigterm); code != 0 {
		t.Fatalf("exit %d\n%s", code, pr.logs())
	}

	// Named files must exist.
	missing := filepath.Join(dir, "missing.conf")
	r := runBin(t, roostBin, dir, cleanEnv(append(p.env(), "ROOST_CONFIG="+missing)...), 10*time.Second, "paths")
	if r.Code == 0 {
		t.Errorf("paths with a missing ROOST_CONFIG file succeeded: %s", r)
	}
	mustContain(t, "missing ROOST_CONFIG error", r.Stderr, missing, "ROOST_CONFIG", "does not exist")
	r = runBin(t, roostBin, dir, env, 10*time.Second, "start", "--config", missing)
	if r.Code == 0 {
		t.Errorf("start with a missing --config file succeeded: %s", r)
	}
	mustContain(t, "missing --config error", r.Stderr, missing, "--config", "does not exist")
}

// TestNodeUnknownEnvVarWarns: a ROOST_* variable that names no key is a
// warning, in `roost paths` and in the start log; the node starts anyway.
// A near miss (one underscore instead of two) gets a suggestion.
func TestNodeUnknownEnvVarWarns(t *testing.T) {
	t.Parallel()
	dir := shortTempDir(t)
	p := newPorts(t)
	env := cleanEnv(append(p.env(),
		"ROOST_NODE__DATA_DIR="+filepath.Join(dir, "data"),
		"ROOST_FOO__BAR=1",
		"ROOST_NODE_NAME=typo",
	)...)

	r := runBin(t, roostBin, dir, env, 10*time.Second, "paths")
	if r.Code != 0 {
		t.Fatalf("roost paths with an unknown env var failed: %s", r)
	}
	mustContain(t, "paths stderr", r.Stderr, "warning:", "ROOST_FOO__BAR", "ROOST_NODE_NAME", "did you mean ROOST_NODE__NAME")
	if strings.Contains(r.Stdout, "ROOST_FOO__BAR") {
		t.Errorf("warning on stdout (scripts read it): %s", r.Stdout)
	}

	pr := newProc(t, roostBin, dir, env, p.MQTT)
	pr.start()
	pr.waitReady()
	logs := pr.logs()
	mustContain(t, "start log", logs, "level=WARN", "ROOST_FOO__BAR", "names no config key")
	if code := pr.signal(sigterm); code != 0 {
		t.Fatalf("exit %d\n%s", code, pr.logs())
	}
}

// TestPathsJSONReportsEnvWarnings: `roost paths --output json` (what
// scripts run) still reports an unknown ROOST_* variable, on stderr or in
// the JSON, and keeps stdout valid JSON.
func TestPathsJSONReportsEnvWarnings(t *testing.T) {
	t.Parallel()
	dir := shortTempDir(t)
	env := cleanEnv("ROOST_NODE__DATA_DIR="+filepath.Join(dir, "data"), "ROOST_FOO__BAR=1")
	r := runBin(t, roostBin, dir, env, 10*time.Second, "paths", "--output", "json")
	if r.Code != 0 {
		t.Fatalf("roost paths --output json: %s", r)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil {
		t.Fatalf("stdout is not one JSON value: %v\n%s", err, r.Stdout)
	}
	if !strings.Contains(r.Stderr, "ROOST_FOO__BAR") && !strings.Contains(r.Stdout, "ROOST_FOO__BAR") {
		t.Errorf("roost paths --output json says nothing about the unknown ROOST_FOO__BAR (the table form warns):\nstdout: %s\nstderr: %s", r.Stdout, r.Stderr)
	}
}
