package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// LoadOptions are Load's inputs; the zero value of each field means "the
// real process": tests inject them instead of touching the machine.
type LoadOptions struct {
	ConfigFlag       string   // --config; "" when not given
	Env              []string // os.Environ() style; nil means os.Environ()
	Executable       string   // path of the running binary; "" means os.Executable()
	WorkDir          string   // base of relative paths; "" means os.Getwd()
	PackageConfigDir string   // "" means /etc/roost
	PackageDataDir   string   // "" means /var/lib/roost
}

// Loaded is a node's resolved configuration and where it came from.
type Loaded struct {
	Config Config // Node.DataDir is the resolved absolute data dir
	Paths
	Warnings    []string // e.g. ROOST_* variables that name no key
	NodeNameSet bool     // node.name came from the file or env, not the hostname default

	origins *origins // where each key's value came from (Entries)
}

// Load finds the config file and data dir by the install-layout rules,
// reads the file over the defaults, applies ROOST_* env overrides (env wins)
// and validates the result. Errors name the file (and line) or env var, the
// key and what was expected; all problems are reported at once.
func Load(opts LoadOptions) (*Loaded, error) {
	o := opts
	if o.Env == nil {
		o.Env = os.Environ()
	}
	if o.WorkDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("working directory: %w", err)
		}
		o.WorkDir = wd
	}
	if o.Executable == "" {
		if exe, err := os.Executable(); err == nil {
			o.Executable = exe
		}
	}
	if o.PackageConfigDir == "" {
		o.PackageConfigDir = DefaultPackageConfigDir
	}
	if o.PackageDataDir == "" {
		o.PackageDataDir = DefaultPackageDataDir
	}
	env := envMap(o.Env)

	l := &Loaded{Config: Default()}
	l.Executable, l.InstallDir = installLayout(o.Executable, o.WorkDir)
	var err error
	l.ConfigFile, l.ConfigRule, l.ConfigSearched, err = findConfigFile(&o, env, l.InstallDir)
	if err != nil {
		return nil, err
	}

	org := &origins{file: l.ConfigFile, env: map[string]string{}}
	l.origins = org
	var errs []error
	bad := map[string]bool{} // keys that failed to decode; not validated again
	if l.ConfigFile != "" {
		data, err := os.ReadFile(l.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("config file %s (from %s): %w", l.ConfigFile, l.ConfigRule, err)
		}
		pos, kerrs, err := decodeFile(l.ConfigFile, data, &l.Config)
		if err != nil {
			return nil, err
		}
		org.pos = pos
		for _, e := range kerrs {
			org.decorate(e)
			bad[e.Key] = true
			errs = append(errs, e)
		}
	}

	warnings, kerrs := applyEnv(&l.Config, env, org.env)
	l.Warnings = warnings
	for _, e := range kerrs {
		bad[e.Key] = true
		errs = append(errs, e)
	}
	_, inFile := org.pos["node.name"]
	_, inEnv := org.env["node.name"]
	l.NodeNameSet = inFile || inEnv

	l.resolveDataDir(&o, org)
	l.BackupDir = filepath.Join(l.DataDir, BackupDirName)
	l.Log = "stderr"
	if l.Config.Log.File != "" {
		l.Log = l.Config.Log.File
	}

	// The default ssl listener gets the TLS port, as tcp and ws get theirs.
	if s, ok := l.Config.Listeners.SSL["default"]; ok && s.Bind == "" && s.configured("ssl") {
		s.Bind = DefaultSSLBind
		l.Config.Listeners.SSL["default"] = s
	}

	if err := l.Config.Validate(); err != nil {
		for _, e := range unjoin(err) {
			var ke *KeyError
			if errors.As(e, &ke) {
				if bad[ke.Key] {
					continue
				}
				org.decorate(ke)
			}
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errors.Join(errs...)
	}

	resolveEnables(&l.Config.Listeners)
	if c := l.Config.Node.Cookie; c != "" && len(c) < 16 {
		l.Warnings = append(l.Warnings, "node.cookie is shorter than 16 characters; a short cluster secret is easy to guess")
	}
	return l, nil
}

// resolveDataDir applies the data-dir rules in order. A relative path (from
// env or file) is taken against the working dir, not the config file's dir,
// as every other relative path an operator types on a command line is.
func (l *Loaded) resolveDataDir(o *LoadOptions, org *origins) {
	dd := l.Config.Node.DataDir
	_, fromEnv := org.env["node.data_dir"]
	switch {
	case dd != "" && fromEnv:
		l.DataDirRule = RuleDataDirEnv
	case dd != "":
		l.DataDirRule = RuleDataDirConfig
	case l.ConfigRule == RuleConfigInstall:
		dd, l.DataDirRule = filepath.Join(l.InstallDir, "data"), RuleDataDirInstall
	case l.ConfigRule == RuleConfigPackage:
		dd, l.DataDirRule = o.PackageDataDir, RuleDataDirPackage
	default:
		dd, l.DataDirRule = "data", RuleDataDirDefault
	}
	if !filepath.IsAbs(dd) {
		dd = filepath.Join(o.WorkDir, dd)
	}
	l.DataDir = filepath.Clean(dd)
	l.Config.Node.DataDir = l.DataDir
}

// resolveEnables makes every listener's enable explicit, so
// ListenerConfig.Enabled is right for ssl too.
func resolveEnables(ls *ListenersConfig) {
	for _, t := range []struct {
		name string
		m    map[string]ListenerConfig
	}{{"tcp", ls.TCP}, {"ws", ls.WS}, {"ssl", ls.SSL}} {
		for n, l := range t.m {
			on := l.configured(t.name)
			l.Enable = &on
			t.m[n] = l
		}
	}
}

// decodeFile reads a TOML document over c. A syntax error is returned as
// err (nothing else can be trusted then); key errors come back one each.
func decodeFile(file string, data []byte, c *Config) (map[string]position, []*KeyError, error) {
	var raw map[string]any
	if err := toml.Unmarshal(data, &raw); err != nil {
		// A key defined twice is named with both places (go-toml before
		// v2.4 reports it without a position, later ones as a syntax
		// error at the second).
		if _, dup := keyPositions(data); dup != nil {
			return nil, nil, &SyntaxError{File: file, Line: dup.Line, Col: dup.Col, Msg: dup.Key + ": " + dup.Msg,
				Text: sourceLine(data, dup.Line)}
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, col := de.Position()
			return nil, nil, newSyntaxError(file, data, line, col, strings.TrimPrefix(de.Error(), "toml: "))
		}
		return nil, nil, fmt.Errorf("%s: TOML error: %s", file, strings.TrimPrefix(err.Error(), "toml: "))
	}
	pos, _ := keyPositions(data)
	errs := assign(reflect.ValueOf(c).Elem(), "", raw)
	return pos, errs, nil
}

// keyPositions maps every dotted key written in data (and each prefix of
// it) to where it first appears, and reports the first key written twice.
func keyPositions(data []byte) (map[string]position, *KeyError) {
	pos := map[string]position{}
	seen := map[string]bool{}
	var dup *KeyError
	var p unstable.Parser
	p.Reset(data)

	// Tables that dotted keys of a key = value made (a.b = 1 makes a):
	// TOML forbids opening them again with a [header].
	dotted := map[string]bool{}
	var reopened *KeyError // the first such [header]; reported if no key is written twice

	// Every key of one expression points at where its dotted key starts.
	record := func(n *unstable.Node, prefix string, kv bool) (string, position) {
		full := prefix
		it := n.Key()
		var at position
		for first := true; it.Next(); first = false {
			k := it.Node()
			if first {
				s := p.Shape(k.Raw).Start
				at = position{s.Line, s.Column}
			} else if kv {
				dotted[full] = true
			}
			full = joinKey(full, string(k.Data))
			if _, ok := pos[full]; !ok {
				pos[full] = at
			}
		}
		return full, at
	}
	markSeen := func(key string, at position) {
		if seen[key] && dup == nil {
			first := pos[key]
			dup = &KeyError{Key: key, Msg: fmt.Sprintf("defined again (first at line %d)", first.line), Line: at.line, Col: at.col}
		}
		seen[key] = true
	}
	var keyValue func(n *unstable.Node, prefix string)
	keyValue = func(n *unstable.Node, prefix string) {
		full, at := record(n, prefix, true)
		markSeen(full, at)
		if v := n.Value(); v.Kind == unstable.InlineTable {
			it := v.Children()
			for it.Next() {
				keyValue(it.Node(), full)
			}
		}
	}

	var table string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			var at position
			table, at = record(e, "", false)
			if e.Kind == unstable.Table {
				if dotted[table] && reopened == nil {
					first := pos[table]
					reopened = &KeyError{Key: table, Msg: fmt.Sprintf("defined again (first at line %d)", first.line), Line: at.line, Col: at.col}
				}
				markSeen(table, at)
			}
		case unstable.KeyValue:
			keyValue(e, table)
		}
	}
	if dup == nil {
		dup = reopened
	}
	return pos, dup
}

// sourceLine is line n (1-based) of data, without its line end and
// trailing blanks.
func sourceLine(data []byte, n int) string {
	lines := strings.Split(string(data), "\n")
	if n < 1 || n > len(lines) {
		return ""
	}
	return strings.TrimRight(lines[n-1], " \t\r")
}

// sortErrors orders problems as an operator fixes them: file top to
// bottom, then env vars, then the rest.
func sortErrors(errs []error) {
	rank := func(e error) (int, int, int) {
		var ke *KeyError
		switch {
		case !errors.As(e, &ke):
			return 0, 0, 0
		case ke.Env != "":
			return 3, 0, 0
		case ke.File != "" && ke.Line > 0:
			return 1, ke.Line, ke.Col
		case ke.File != "":
			return 2, 0, 0
		}
		return 4, 0, 0
	}
	slices.SortStableFunc(errs, func(a, b error) int {
		ra, la, ca := rank(a)
		rb, lb, cb := rank(b)
		if ra != rb {
			return ra - rb
		}
		if la != lb {
			return la - lb
		}
		return ca - cb
	})
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
