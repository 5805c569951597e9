package config

import (
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestIdentityCreateAndReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // not there yet
	id, created, err := LoadOrCreateIdentity(dir, "roost@a")
	if err != nil || !created {
		t.Fatalf("first start: created=%v err=%v", created, err)
	}
	if id.FormatVersion != IdentityFormatVersion || id.Name != "roost@a" || id.CreatedAt.IsZero() {
		t.Errorf("identity %+v", id)
	}
	for _, x := range []string{id.NodeID, id.ClusterID} {
		if b, err := hex.DecodeString(x); err != nil || len(b) != 16 {
			t.Errorf("id %q is not 128-bit hex", x)
		}
	}
	if id.NodeID == id.ClusterID {
		t.Error("node id equals cluster id")
	}
	if m := mode(t, filepath.Join(dir, IdentityFile)); m != 0o600 {
		t.Errorf("node.json mode %o, want 600", m)
	}

	again, created, err := LoadOrCreateIdentity(dir, "roost@a")
	if err != nil || created || again != id {
		t.Errorf("second start: %+v created=%v err=%v, want %+v", again, created, err, id)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only node.json (no temp files)", len(entries))
	}
}

func TestIdentityNameMismatch(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := LoadOrCreateIdentity(dir, "roost@old"); err != nil {
		t.Fatal(err)
	}
	_, _, err := LoadOrCreateIdentity(dir, "roost@new")
	var mm *NameMismatchError
	if !errors.As(err, &mm) || mm.Stored != "roost@old" || mm.Configured != "roost@new" {
		t.Fatalf("err = %v, want NameMismatchError", err)
	}
	wantContains(t, err.Error(), dir, `belongs to node "roost@old"`, `node.name = "roost@old"`, "fresh data dir")
}

func TestIdentityWriteChangesCluster(t *testing.T) {
	dir := t.TempDir()
	id, _, err := LoadOrCreateIdentity(dir, "roost@a")
	if err != nil {
		t.Fatal(err)
	}
	id.ClusterID = "00112233445566778899aabbccddeeff"
	if err := WriteIdentity(dir, id); err != nil {
		t.Fatal(err)
	}
	got, err := ReadIdentity(dir)
	if err != nil || got != id {
		t.Errorf("read back %+v err=%v, want %+v", got, err, id)
	}
	if m := mode(t, filepath.Join(dir, IdentityFile)); m != 0o600 {
		t.Errorf("mode %o after rewrite", m)
	}
	if err := WriteIdentity(dir, Identity{Name: "x"}); err == nil || !strings.Contains(err.Error(), "node_id") {
		t.Errorf("incomplete identity written: %v", err)
	}
}

func TestReadIdentityErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadIdentity(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v, want fs.ErrNotExist", err)
	}
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, IdentityFile), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"format_version": 2, "name": "roost@a", "node_id": "x", "cluster_id": "y", "shiny": true}`)
	_, err := ReadIdentity(dir)
	if err == nil {
		t.Fatal("newer format accepted")
	}
	wantContains(t, err.Error(), "format_version 2", "supports (1)", IdentityFile)
	if _, _, err := LoadOrCreateIdentity(dir, "roost@a"); err == nil {
		t.Error("LoadOrCreateIdentity overwrote a newer identity")
	}

	write(`{not json`)
	_, err = ReadIdentity(dir)
	wantContains(t, errString(err), "not a node identity file")

	write(`{"format_version": 1, "name": "roost@a"}`)
	_, err = ReadIdentity(dir)
	wantContains(t, errString(err), "lacks node_id, cluster_id")
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestLoadedIdentityAdoptsStoredName(t *testing.T) {
	s := newSandbox(t)
	data := s.path("work/data")
	if _, _, err := LoadOrCreateIdentity(data, "roost@oldhost"); err != nil {
		t.Fatal(err)
	}

	// Name not configured: the hostname default yields to the stored name.
	l := s.load()
	id, created, err := l.Identity()
	if err != nil || created || id.Name != "roost@oldhost" || l.Config.Node.Name != "roost@oldhost" {
		t.Errorf("unset name: %+v created=%v err=%v name=%q", id, created, err, l.Config.Node.Name)
	}

	// Name configured: a different one is refused.
	s.env("ROOST_NODE__NAME=roost@other")
	l = s.load()
	var mm *NameMismatchError
	if _, _, err := l.Identity(); !errors.As(err, &mm) {
		t.Errorf("configured other name: err = %v", err)
	}
}

func TestEnsureCookie(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if c, err := EnsureCookie(dir, "configured-secret"); err != nil || c != "configured-secret" {
		t.Errorf("configured: %q %v", c, err)
	}
	if _, err := os.Stat(filepath.Join(dir, CookieFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a configured cookie was written to disk")
	}

	c1, err := EnsureCookie(dir, "")
	if err != nil || len(c1) != 43 || strings.ContainsAny(c1, "+/=\n") {
		t.Fatalf("generated %q err=%v, want 43 base64url chars", c1, err)
	}
	if m := mode(t, filepath.Join(dir, CookieFile)); m != 0o600 {
		t.Errorf("cookie mode %o, want 600", m)
	}
	c2, err := EnsureCookie(dir, "")
	if err != nil || c2 != c1 {
		t.Errorf("reload %q err=%v, want %q", c2, err, c1)
	}

	if err := os.WriteFile(filepath.Join(dir, CookieFile), []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = EnsureCookie(dir, "")
	wantContains(t, errString(err), "is empty")
}
