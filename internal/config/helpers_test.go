package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sandbox is a fake machine under a temp root: a working dir, package
// dirs and a binary path, so the layout rules run without touching /etc.
type sandbox struct {
	t    *testing.T
	root string
	opts LoadOptions
}

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	root := t.TempDir()
	s := &sandbox{t: t, root: root}
	s.opts = LoadOptions{
		Env:              []string{},
		Executable:       s.mkfile("src/roost/roost", "binary"), // source checkout: not in bin/
		WorkDir:          s.mkdir("work"),
		PackageConfigDir: filepath.Join(root, "etc/roost"),
		PackageDataDir:   filepath.Join(root, "var/lib/roost"),
	}
	return s
}

func (s *sandbox) path(rel string) string { return filepath.Join(s.root, rel) }

func (s *sandbox) mkdir(rel string) string {
	s.t.Helper()
	p := s.path(rel)
	if err := os.MkdirAll(p, 0o755); err != nil {
		s.t.Fatal(err)
	}
	return p
}

func (s *sandbox) mkfile(rel, content string) string {
	s.t.Helper()
	p := s.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
	return p
}

func (s *sandbox) env(kv ...string) { s.opts.Env = append(s.opts.Env, kv...) }

func (s *sandbox) load() *Loaded {
	s.t.Helper()
	l, err := Load(s.opts)
	if err != nil {
		s.t.Fatalf("Load: %v", err)
	}
	return l
}

func (s *sandbox) loadErr() string {
	s.t.Helper()
	l, err := Load(s.opts)
	if err == nil {
		s.t.Fatalf("Load succeeded, want an error; config: %+v", l.Config)
	}
	return err.Error()
}

// withConfig writes a config file and points --config at it.
func (s *sandbox) withConfig(content string) string {
	s.t.Helper()
	p := s.mkfile("conf/roost.conf", content)
	s.opts.ConfigFlag = p
	return p
}

func wantContains(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("message lacks %q:\n%s", w, got)
		}
	}
}
