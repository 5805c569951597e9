package e2e

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// These tests keep docs/ true to the binary: whoever adds, renames or
// removes a config key, a command, a flag or a package without updating
// the docs gets a failure naming what to write where.

const docsDir = "../../docs"

func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(docsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// section is the text of "## title" up to the next "## " heading.
func section(t *testing.T, doc, file, title string) string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "\n## "+title+"\n")
	if !ok {
		t.Fatalf("%s has no \"## %s\" section", file, title)
	}
	body, _, _ := strings.Cut(rest, "\n## ")
	return body
}

// tableCells splits a markdown table row, keeping escaped pipes (\|).
func tableCells(line string) []string {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "|") {
		return nil
	}
	var cells []string
	var cur strings.Builder
	for i := 1; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteByte('|')
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	return cells
}

var codeSpanRe = regexp.MustCompile("`([^`\n]+)`")

func firstCode(s string) (string, bool) {
	m := codeSpanRe.FindStringSubmatch(s)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// docKey is one row of a Keys table in docs/config.md.
type docKey struct {
	Key, Type, Default, Env string
	Line                    int
}

func configDocKeys(t *testing.T) map[string]docKey {
	t.Helper()
	doc := readDoc(t, "config.md")
	keys := map[string]docKey{}
	start := strings.Index(doc, "\n## Keys\n")
	if start < 0 {
		t.Fatal("docs/config.md has no \"## Keys\" section")
	}
	line := strings.Count(doc[:start], "\n") + 2
	for _, l := range strings.Split(section(t, doc, "docs/config.md", "Keys"), "\n") {
		line++
		c := tableCells(l)
		if len(c) < 5 || !strings.HasPrefix(c[0], "`") {
			continue
		}
		key, _ := firstCode(c[0])
		env, _ := firstCode(c[3])
		if _, dup := keys[key]; dup {
			t.Errorf("docs/config.md:%d: %s documented twice", line, key)
		}
		keys[key] = docKey{Key: key, Type: c[1], Default: c[2], Env: env, Line: line}
	}
	if len(keys) < 20 {
		t.Fatalf("found only %d keys in docs/config.md's Keys tables; the parser is broken", len(keys))
	}
	return keys
}

// shownKey is one line of `roost config show`.
type shownKey struct {
	Key    string
	Raw    string // the TOML value as printed; "" for a secret
	Value  any    // decoded
	Source string
	Secret bool
}

var (
	shownLineRe  = regexp.MustCompile(`^([a-z0-9_.-]+) = (.+?)\s+# (.+)$`)
	secretLineRe = regexp.MustCompile(`^# ([a-z0-9_.-]+) = \(set, not shown\)\s+# (.+)$`)
)

func parseConfigShow(t *testing.T, out string) map[string]shownKey {
	t.Helper()
	keys := map[string]shownKey{}
	// The whole output must be a TOML document.
	var doc map[string]any
	if err := toml.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("roost config show printed invalid TOML: %v\n%s", err, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if m := secretLineRe.FindStringSubmatch(l); m != nil {
			keys[m[1]] = shownKey{Key: m[1], Source: m[2], Secret: true}
			continue
		}
		if strings.HasPrefix(l, "#") {
			continue
		}
		m := shownLineRe.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("roost config show: unexpected line %q", l)
		}
		var v struct{ V any }
		if err := toml.Unmarshal([]byte("V = "+m[2]), &v); err != nil {
			t.Fatalf("roost config show: value of %s: %v", m[1], err)
		}
		source, _, _ := strings.Cut(m[3], ":") // "default: what it means"
		if strings.HasPrefix(m[3], "/") {
			source = m[3] // file:line
		}
		keys[m[1]] = shownKey{Key: m[1], Raw: m[2], Value: v.V, Source: source}
	}
	return keys
}

var listenerKeyRe = regexp.MustCompile(`^listeners\.(tcp|ws|ssl)\.[^.]+\.`)

// templateKey is the documented form of a key: listeners.tcp.<name>.bind.
func templateKey(k string) string {
	return listenerKeyRe.ReplaceAllString(k, "listeners.$1.<name>.")
}

func configShow(t *testing.T, env []string, args ...string) map[string]shownKey {
	t.Helper()
	dir := shortTempDir(t)
	res := runBin(t, roostBin, dir, env, 20*time.Second, args...)
	if res.Code != 0 {
		t.Fatalf("roost %s: %s", strings.Join(args, " "), res)
	}
	return parseConfigShow(t, res.Stdout)
}

// docDefault reads a Default cell: "—" (empty), on/off, or the first code
// span. ok is false for prose.
func docDefault(cell string) (string, bool) {
	switch {
	case strings.HasPrefix(cell, "—"):
		return "", true
	case cell == "on" || strings.HasPrefix(cell, "on "):
		return "true", true
	case cell == "off" || strings.HasPrefix(cell, "off "):
		return "false", true
	}
	return firstCode(cell)
}

func shortHostname(t *testing.T) string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	h, _, _ = strings.Cut(h, ".")
	if h == "" {
		return "localhost"
	}
	return h
}

// sameValue compares a documented default with the binary's value of a
// key of the documented type.
func sameValue(typ, doc string, v any) bool {
	switch typ {
	case "duration":
		s, ok := v.(string)
		d1, err1 := time.ParseDuration(s)
		d2, err2 := time.ParseDuration(doc)
		return ok && err1 == nil && err2 == nil && d1 == d2
	case "string":
		s, ok := v.(string)
		return ok && s == doc
	case "[string]":
		if doc == "" {
			doc = "[]"
		}
	}
	var d struct{ V any }
	if err := toml.Unmarshal([]byte("V = "+doc), &d); err != nil {
		return false
	}
	return reflect.DeepEqual(d.V, v)
}

func typeOK(typ string, v any) bool {
	switch typ {
	case "string":
		_, ok := v.(string)
		return ok
	case "duration":
		s, ok := v.(string)
		_, err := time.ParseDuration(s)
		return ok && err == nil
	case "int":
		_, ok := v.(int64)
		return ok
	case "bool":
		_, ok := v.(bool)
		return ok
	case "[string]":
		_, ok := v.([]any)
		return ok
	}
	return false
}

// TestDocsConfigKeys: every key `roost config show` prints is in
// docs/config.md with its type, its true default and an env var that
// really sets it; every documented key exists.
func TestDocsConfigKeys(t *testing.T) {
	t.Parallel()
	docs := configDocKeys(t)
	defaults := configShow(t, cleanEnv(), "config", "show", "--defaults")

	// 1. Every built-in key is documented, with its default and type.
	host := shortHostname(t)
	for _, k := range sortedKeys(defaults) {
		s := defaults[k]
		if s.Source != "default" {
			t.Errorf("config show --defaults: %s has source %q, want default", k, s.Source)
		}
		d, ok := docs[templateKey(k)]
		if !ok {
			t.Errorf("config key %s (default %s, printed by `roost config show --defaults`) is not in docs/config.md: "+
				"add a row to its Keys section: | `%s` | TYPE | `DEFAULT` | `ENV VAR` | meaning |", k, s.Raw, templateKey(k))
			continue
		}
		if !typeOK(d.Type, s.Value) {
			t.Errorf("docs/config.md:%d: %s has type %q, but roost prints %s", d.Line, d.Key, d.Type, s.Raw)
		}
		want, ok := docDefault(d.Default)
		if !ok {
			t.Errorf("docs/config.md:%d: %s's default %q names no value: write it in backticks (roost's default is %s)", d.Line, d.Key, d.Default, s.Raw)
			continue
		}
		want = strings.ReplaceAll(want, "<short hostname>", host)
		if !sameValue(d.Type, want, s.Value) {
			t.Errorf("docs/config.md:%d: %s default is documented as %q, but roost's built-in default is %s", d.Line, d.Key, d.Default, s.Raw)
		}
	}

	// 2. Every documented env var sets its key (listener keys on a
	// listener named docprobe). Values: the default where it has one (it
	// is valid), else a sample of the type.
	env := cleanEnv()
	wantSource := map[string]string{} // concrete key -> env var
	for _, key := range sortedKeys(docs) {
		d := docs[key]
		concrete := strings.Replace(key, "<name>", "docprobe", 1)
		wantEnv := "ROOST_" + strings.ToUpper(strings.ReplaceAll(key, ".", "__"))
		if d.Env != wantEnv {
			t.Errorf("docs/config.md:%d: %s's env var is documented as %q; the rule (ROOST_ + the key in upper case, __ for each dot) gives %s", d.Line, key, d.Env, wantEnv)
			continue
		}
		val := ""
		for k, s := range defaults {
			if templateKey(k) == key && s.Raw != `""` && s.Raw != "[]" {
				val = strings.Trim(s.Raw, `"`)
			}
		}
		switch {
		case strings.HasSuffix(key, ".bind") || strings.HasSuffix(key, ".advertise"):
			val = "127.0.0.1:0" // port 0: never clashes
		case val != "":
		case d.Type == "bool":
			val = "false"
		case d.Type == "[string]":
			val = "127.0.0.1:4999"
		default:
			val = "docs-probe-0123456789"
		}
		switch key {
		case "node.data_dir":
			val = filepath.Join(shortTempDir(t), "data")
		case "backup.target": // a directory target: an absolute path
			val = filepath.Join(shortTempDir(t), "target")
		}
		env = append(env, strings.Replace(d.Env, "<NAME>", "DOCPROBE", 1)+"="+val)
		wantSource[concrete] = strings.Replace(d.Env, "<NAME>", "DOCPROBE", 1)
	}
	empty := filepath.Join(shortTempDir(t), "empty.conf")
	writeFile(t, empty, "")
	res := runBin(t, roostBin, shortTempDir(t), env, 20*time.Second, "--config", empty, "config", "show")
	if res.Code != 0 {
		t.Fatalf("roost config show with every documented env var set to a sample value failed; "+
			"if a new key needs another sample, extend the sample rules of this test:\n%s", res)
	}
	shown := parseConfigShow(t, res.Stdout)
	for _, k := range sortedKeys(wantSource) {
		s, ok := shown[k]
		switch {
		case !ok:
			t.Errorf("docs/config.md documents %s, but `roost config show` has no such key (renamed or removed? remove or fix its row)", templateKey(k))
		case s.Source != wantSource[k]:
			t.Errorf("%s=… did not set %s (`roost config show` says it came from %q): fix its env var in docs/config.md", wantSource[k], k, s.Source)
		}
	}
	for _, k := range sortedKeys(shown) {
		if _, ok := docs[templateKey(k)]; !ok {
			t.Errorf("config key %s (printed by `roost config show`) is not in docs/config.md: add a row for %s to its Keys section", k, templateKey(k))
		}
	}
}

// TestDocsShippedConfig: the commented keys of etc/roost.conf are real
// keys, and those with a built-in default show that default (the file
// says "Values shown are the built-in defaults").
func TestDocsShippedConfig(t *testing.T) {
	t.Parallel()
	defaults := configShow(t, cleanEnv(), "config", "show", "--defaults")
	docs := configDocKeys(t)
	data, err := os.ReadFile("../../etc/roost.conf")
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`^#\s*([a-z][a-z0-9_.]*)\s*=\s*(.*)$`)
	n := 0
	for i, l := range strings.Split(string(data), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n++
		var v map[string]any
		if err := toml.Unmarshal([]byte("V = "+m[2]), &v); err != nil {
			t.Errorf("etc/roost.conf:%d: %s: value %q is not TOML: %v", i+1, m[1], m[2], err)
			continue
		}
		d, ok := docs[templateKey(m[1])]
		if !ok {
			t.Errorf("etc/roost.conf:%d: %s is not a documented config key", i+1, m[1])
			continue
		}
		want := v["V"]
		if d.Key == "node.name" {
			want = strings.ReplaceAll(want.(string), "<hostname>", shortHostname(t))
		}
		if strings.Contains(m[2], "# example") {
			continue
		}
		if s, ok := defaults[m[1]]; ok {
			if !sameValue(d.Type, toString(want), s.Value) {
				t.Errorf("etc/roost.conf:%d: %s = %s, but the built-in default is %s (or mark the value \"# example\")", i+1, m[1], m[2], s.Raw)
			}
			continue
		}
		// No built-in instance (an ssl listener): the documented default.
		if dv, ok := docDefault(d.Default); !ok || !sameValue(d.Type, dv, want) {
			t.Errorf("etc/roost.conf:%d: %s = %s is neither the default documented in docs/config.md (%s) nor marked \"# example\"", i+1, m[1], m[2], d.Default)
		}
	}
	if n < 10 {
		t.Fatalf("found only %d commented keys in etc/roost.conf; the parser is broken", n)
	}
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := toml.Marshal(map[string]any{"V": v})
	return strings.TrimSpace(strings.TrimPrefix(string(b), "V = "))
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// helpTree walks `roost [path] --help` of the real binary: every command
// path (without "roost") and its own flags.
func helpTree(t *testing.T) map[string][]string {
	t.Helper()
	cmdLine := regexp.MustCompile(`^  ([a-z][a-z0-9-]*)\s{2,}\S`)
	flagLine := regexp.MustCompile(`^\s+(?:-[a-zA-Z], )?--([a-z0-9-]+)`)
	tree := map[string][]string{}
	var walk func(path []string)
	walk = func(path []string) {
		res := runBin(t, roostBin, "", cleanEnv(), 20*time.Second, append(slices.Clone(path), "--help")...)
		if res.Code != 0 {
			t.Fatalf("roost %s --help: %s", strings.Join(path, " "), res)
		}
		var flags, subs []string
		sectionName := ""
		for _, l := range strings.Split(res.Stdout, "\n") {
			if strings.HasSuffix(l, ":") && !strings.HasPrefix(l, " ") {
				sectionName = l
				continue
			}
			switch sectionName {
			case "Available Commands:":
				if m := cmdLine.FindStringSubmatch(l); m != nil && m[1] != "help" && m[1] != "completion" {
					subs = append(subs, m[1])
				}
			case "Flags:":
				if m := flagLine.FindStringSubmatch(l); m != nil && m[1] != "help" {
					flags = append(flags, m[1])
				}
			}
		}
		tree[strings.Join(path, " ")] = flags
		for _, s := range subs {
			walk(append(slices.Clone(path), s))
		}
	}
	walk(nil)
	return tree
}

// TestDocsCLICommands: every command and flag of the real binary is in
// docs/cli.md: a command as a code span starting with `roost PATH` (ctl
// commands also `PATH` without "roost ctl", as in its tables), a flag as
// --NAME.
func TestDocsCLICommands(t *testing.T) {
	t.Parallel()
	doc := readDoc(t, "cli.md")
	var spans []string
	fence := regexp.MustCompile("(?s)```[a-z]*\n(.*?)```")
	for _, block := range fence.FindAllStringSubmatch(doc, -1) {
		spans = append(spans, strings.Split(block[1], "\n")...)
	}
	for _, m := range codeSpanRe.FindAllStringSubmatch(fence.ReplaceAllString(doc, ""), -1) {
		spans = append(spans, m[1])
	}
	documented := func(path string) bool {
		forms := []string{"roost " + path}
		if rest, ok := strings.CutPrefix(path, "ctl "); ok {
			forms = append(forms, "roost ctl "+rest, rest)
		}
		for _, s := range spans {
			s = strings.TrimPrefix(strings.TrimSpace(s), "$ ")
			s = regexp.MustCompile(`\[--config FILE\] `).ReplaceAllString(s, "")
			for _, f := range forms {
				if s == f || strings.HasPrefix(s, f+" ") {
					return true
				}
			}
		}
		return false
	}
	tree := helpTree(t)
	if len(tree) < 40 {
		t.Fatalf("found only %d commands in roost --help; the walk is broken: %v", len(tree), tree)
	}
	for _, path := range sortedKeys(tree) {
		if path != "" && !documented(path) {
			t.Errorf("command `roost %s` is not in docs/cli.md: add it (a code span starting with `roost %s`, or a row of the ctl commands table)", path, path)
		}
		for _, f := range tree[path] {
			if !strings.Contains(doc, "--"+f) {
				t.Errorf("flag --%s of `roost %s` is not in docs/cli.md: document it", f, path)
			}
		}
	}
}

// TestDocsArchitecturePackages: the package table of docs/architecture.md
// has a row for every Go package under cmd/ and internal/, listing
// exactly its non-test files.
func TestDocsArchitecturePackages(t *testing.T) {
	t.Parallel()
	doc := readDoc(t, "architecture.md")
	rows := map[string][]string{}
	for _, l := range strings.Split(section(t, doc, "docs/architecture.md", "Packages"), "\n") {
		c := tableCells(l)
		if len(c) < 3 {
			continue
		}
		pkg, ok := firstCode(c[0])
		if !ok {
			continue
		}
		var files []string
		for _, m := range codeSpanRe.FindAllStringSubmatch(c[1], -1) {
			files = append(files, m[1])
		}
		rows[pkg] = files
	}
	real := map[string][]string{}
	for _, top := range []string{"cmd", "internal"} {
		err := filepath.WalkDir(filepath.Join("../..", top), func(p string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") || strings.Contains(p, "/testdata/") {
				return err
			}
			rel, _ := filepath.Rel("../..", filepath.Dir(p))
			real[rel] = append(real[rel], filepath.Base(p))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, pkg := range sortedKeys(real) {
		files, ok := rows[pkg]
		if !ok {
			t.Errorf("package %s is not in docs/architecture.md's package table: add a row with its files %s", pkg, strings.Join(real[pkg], ", "))
			continue
		}
		for _, f := range real[pkg] {
			if !slices.Contains(files, f) {
				t.Errorf("docs/architecture.md: the row of %s does not list %s: add it", pkg, f)
			}
		}
		for _, f := range files {
			if !slices.Contains(real[pkg], f) {
				t.Errorf("docs/architecture.md: the row of %s lists %s, which does not exist: remove it", pkg, f)
			}
		}
	}
	for _, pkg := range sortedKeys(rows) {
		if _, ok := real[pkg]; !ok && (strings.HasPrefix(pkg, "internal/") || strings.HasPrefix(pkg, "cmd/")) {
			t.Errorf("docs/architecture.md's package table has a row for %s, which has no Go files", pkg)
		}
	}
}

// TestDocsConfigValues: the accepted values the binary reports for a bad
// value are in docs/config.md: every value of an enum key (`a` \| `b`) and
// the range of an integer key ("1 to 65535"). One run sets every string
// and int key to something invalid; validation reports all at once.
func TestDocsConfigValues(t *testing.T) {
	t.Parallel()
	docs := configDocKeys(t)
	env := cleanEnv()
	for _, key := range sortedKeys(docs) {
		d := docs[key]
		name := strings.Replace(d.Env, "<NAME>", "DOCPROBE", 1)
		switch d.Type {
		case "string":
			env = append(env, name+"=docs-probe-invalid")
		case "int":
			env = append(env, name+"=99999999999")
		}
	}
	empty := filepath.Join(shortTempDir(t), "empty.conf")
	writeFile(t, empty, "")
	res := runBin(t, roostBin, shortTempDir(t), env, 20*time.Second, "--config", empty, "config", "show")
	if res.Code == 0 {
		t.Fatalf("roost config show accepted invalid values: %s", res)
	}
	enum := regexp.MustCompile(`\(([a-z0-9_.]+)\): expected one of ([a-z0-9|_-]+), got`)
	intRange := regexp.MustCompile(`\(([a-z0-9_.]+)\): expected an integer from (\d+) to (\d+), got`)
	enums, ranges := 0, 0
	for _, l := range strings.Split(res.Stderr, "\n") {
		if m := enum.FindStringSubmatch(l); m != nil {
			enums++
			d := docs[templateKey(m[1])]
			meaning := strings.Join(tableCells(rowOf(t, d))[4:], " ")
			for _, v := range strings.Split(m[2], "|") {
				if !strings.Contains(meaning, "`"+v+"`") {
					t.Errorf("docs/config.md:%d: %s accepts %q (roost: %s), but its row does not name `%s`", d.Line, d.Key, v, strings.TrimPrefix(l, "roost: "), v)
				}
			}
		}
		if m := intRange.FindStringSubmatch(l); m != nil {
			ranges++
			d := docs[templateKey(m[1])]
			if want := m[2] + " to " + m[3]; !strings.Contains(rowOf(t, d), want) {
				t.Errorf("docs/config.md:%d: %s takes %s (roost: %s), but its row does not say %q", d.Line, d.Key, want, strings.TrimPrefix(l, "roost: "), want)
			}
		}
	}
	if enums < 5 || ranges < 5 {
		t.Fatalf("found %d enum and %d range errors in the output; the probe is broken:\n%s", enums, ranges, res)
	}
}

// rowOf is the docs/config.md line of a documented key.
func rowOf(t *testing.T, d docKey) string {
	t.Helper()
	lines := strings.Split(readDoc(t, "config.md"), "\n")
	if d.Line < 1 || d.Line > len(lines) {
		t.Fatalf("no row for %q", d.Key)
	}
	return lines[d.Line-1]
}
