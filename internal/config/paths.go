package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Install-layout locations (DESIGN §6).
const (
	ConfigFileName          = "roost.conf"
	DefaultPackageConfigDir = "/etc/roost"     // deb/rpm: /etc/roost/roost.conf
	DefaultPackageDataDir   = "/var/lib/roost" // deb/rpm data dir
	BackupDirName           = "backup"         // <data_dir>/backup
)

// Rules that choose the config file (Loaded.ConfigRule).
const (
	RuleConfigFlag    = "--config flag"
	RuleConfigEnv     = "ROOST_CONFIG"
	RuleConfigInstall = "install dir (tarball/container)"
	RuleConfigPackage = "package install"
	RuleConfigNone    = "built-in defaults"
)

// Rules that choose the data dir (Loaded.DataDirRule).
const (
	RuleDataDirEnv     = "ROOST_NODE__DATA_DIR"
	RuleDataDirConfig  = "node.data_dir in config file"
	RuleDataDirInstall = "install dir"
	RuleDataDirPackage = "package install"
	RuleDataDirDefault = "source checkout / default"
)

// Paths are the locations a node uses and the rule that chose each. It is
// what `roost paths --output json` prints.
type Paths struct {
	Executable     string   `json:"executable"`
	InstallDir     string   `json:"install_dir"` // "" when the binary is not in a bin/ dir
	ConfigFile     string   `json:"config_file"` // "" when running on built-in defaults
	ConfigRule     string   `json:"config_rule"`
	ConfigSearched []string `json:"config_searched,omitempty"` // candidates that did not exist
	DataDir        string   `json:"data_dir"`
	DataDirRule    string   `json:"data_dir_rule"`
	BackupDir      string   `json:"backup_dir"`
	Log            string   `json:"log"` // log.file, or "stderr"
}

// installLayout resolves the binary's symlinks and returns it with the
// install dir: the parent of the binary's directory when that is named bin
// (roost/bin/roost -> roost; /opt/roost/bin/roost -> /opt/roost).
func installLayout(exe, workDir string) (resolved, installDir string) {
	if exe == "" {
		return "", ""
	}
	if !filepath.IsAbs(exe) {
		exe = filepath.Join(workDir, exe)
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	exe = filepath.Clean(exe)
	bin := filepath.Dir(exe)
	if filepath.Base(bin) != "bin" {
		return exe, ""
	}
	dir := filepath.Dir(bin)
	if dir == filepath.Dir(dir) { // /bin/roost: "/" is no install dir
		return exe, ""
	}
	return exe, dir
}

// findConfigFile applies the config-file rules in order. An explicitly
// named file (flag or ROOST_CONFIG) must exist; discovered ones are used
// only if they do.
func findConfigFile(o *LoadOptions, env map[string]string, installDir string) (path, rule string, searched []string, err error) {
	explicit := func(p, rule string) (string, string, []string, error) {
		if !filepath.IsAbs(p) {
			p = filepath.Join(o.WorkDir, p)
		}
		p = filepath.Clean(p)
		st, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return "", "", nil, fmt.Errorf("config file %s (from %s) does not exist", p, rule)
		case err != nil:
			return "", "", nil, fmt.Errorf("config file %s (from %s): %w", p, rule, err)
		case st.IsDir():
			return "", "", nil, fmt.Errorf("config file %s (from %s) is a directory; expected a TOML file such as %s", p, rule, filepath.Join(p, ConfigFileName))
		}
		return p, rule, nil, nil
	}
	if o.ConfigFlag != "" {
		return explicit(o.ConfigFlag, RuleConfigFlag)
	}
	if p := env[EnvConfig]; p != "" {
		return explicit(p, RuleConfigEnv)
	}
	candidates := []struct{ path, rule string }{
		{filepath.Join(o.PackageConfigDir, ConfigFileName), RuleConfigPackage},
	}
	if installDir != "" {
		candidates = append([]struct{ path, rule string }{
			{filepath.Join(installDir, "etc", ConfigFileName), RuleConfigInstall},
		}, candidates...)
	}
	for _, c := range candidates {
		// Anything but "not there" (a permission error, say) counts as
		// present, so reading it reports the real problem.
		if _, err := os.Stat(c.path); !errors.Is(err, fs.ErrNotExist) {
			return c.path, c.rule, searched, nil
		}
		searched = append(searched, c.path)
	}
	return "", RuleConfigNone, searched, nil
}

// PathEntry is one line of `roost paths`.
type PathEntry struct {
	Name string `json:"name"`
	Path string `json:"path"`
	Rule string `json:"rule"` // why this path, for a human
}

// PathsReport explains each location and the rule that chose it.
func (l *Loaded) PathsReport() []PathEntry {
	p := l.Paths
	cfg := PathEntry{Name: "config file", Path: p.ConfigFile, Rule: p.ConfigRule}
	switch p.ConfigRule {
	case RuleConfigInstall:
		cfg.Rule = fmt.Sprintf("install dir: %s, binary in %s", p.InstallDir, filepath.Dir(p.Executable))
	case RuleConfigPackage:
		cfg.Rule = "package install: " + filepath.Dir(p.ConfigFile)
	case RuleConfigNone:
		cfg.Path = "none"
		cfg.Rule = RuleConfigNone
		if len(p.ConfigSearched) > 0 {
			cfg.Rule += "; not found: " + strings.Join(p.ConfigSearched, ", ")
		}
	}

	data := PathEntry{Name: "data dir", Path: p.DataDir, Rule: p.DataDirRule}
	switch p.DataDirRule {
	case RuleDataDirConfig:
		data.Rule = "node.data_dir in " + p.ConfigFile
	case RuleDataDirDefault:
		data.Rule = "source checkout / default: ./data in the working dir"
	}

	log := PathEntry{Name: "log", Path: p.Log, Rule: "log.file"}
	if p.Log == "stderr" {
		log.Rule = "log.file not set"
	}
	return []PathEntry{
		cfg,
		data,
		{Name: "backup dir", Path: p.BackupDir, Rule: "<data_dir>/" + BackupDirName},
		log,
	}
}

// FormatPaths renders entries as aligned lines:
//
//	config file   /opt/roost/etc/roost.conf   (install dir: /opt/roost, binary in /opt/roost/bin)
func FormatPaths(entries []PathEntry) string {
	nameW, pathW := 0, 0
	for _, e := range entries {
		nameW = max(nameW, len(e.Name))
		pathW = max(pathW, len(e.Path))
	}
	var b strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&b, "%-*s   %-*s   (%s)\n", nameW, e.Name, pathW, e.Path, e.Rule)
	}
	return b.String()
}
