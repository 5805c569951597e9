package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roostmq/roost/internal/store"
)

const (
	goodUser  = `{"v":1,"kind":"username","id":"alice","password_hash":"5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8","algorithm":"sha256","superuser":false,"created_at":"2025-01-01T00:00:00Z"}`
	goodRule  = `{"v":1,"id":1,"kind":"username","value":"alice","topic":"a/#","action":"all","permission":"allow","created_at":"2025-01-01T00:00:00Z"}`
	goodBan   = `{"v":1,"kind":"clientid","value":"evil","at":"2025-01-01T00:00:00Z"}`
	goodRet   = `{"v":1,"topic":"r/1","payload":"AAEC","qos":1,"created":"2025-01-01T00:00:00Z"}`
	goodKey   = `{"v":1,"name":"ci","secret_hash":"abababababababababababababababababababababababababababababababab","salt":"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd","enabled":true,"created_at":"2025-01-01T00:00:00Z"}`
	goodAdmin = `{"v":1,"username":"root","password_hash":"$2a$04$abcdefghijklmnopqrstuu5yQMXgHo8XYnHyXA6ty/YwHnJuGaeIO","role":"administrator","created_at":"2025-01-01T00:00:00Z"}`
	goodConf  = `{"v":1,"key":"mqtt.max_inflight","value":32,"updated_at":"2025-01-01T00:00:00Z"}`
)

func with(rec, old, new string) string {
	if !strings.Contains(rec, old) {
		panic("with: " + old + " not in " + rec)
	}
	return strings.Replace(rec, old, new, 1)
}

// Every kind of bad record is reported with its table, record number
// and field, and every problem of a file is reported, not just the first.
func TestValidationProblems(t *testing.T) {
	t.Parallel()
	m := newManager(t, openStore(t), "a")
	cases := []struct {
		table, rec string
		field      string
		msg        string
	}{
		{"users", with(goodUser, `"sha256"`, `"md5"`), "algorithm", `unknown password hash algorithm "md5"`},
		{"users", with(goodUser, `"kind":"username",`, ``), "kind", "required"},
		{"users", with(goodUser, `"kind":"username"`, `"kind":"email"`), "kind", `must be one of username, clientid, got "email"`},
		{"users", with(goodUser, `"superuser":false`, `"superuser":"no"`), "superuser", "expected a boolean"},
		{"users", with(goodUser, `"superuser":false`, `"superuser":false,"colour":"red"`), "colour", "unknown field"},
		{"users", with(goodUser, `"v":1`, `"v":2`), "v", "record version 2"},
		{"users", with(goodUser, `5e88`, `5E88`), "password_hash", "lowercase hex"},
		{"users", with(with(goodUser, `"sha256"`, `"pbkdf2"`), `"superuser"`, `"iterations":0,"superuser"`), "iterations", "positive"},
		{"users", with(goodUser, `"created_at":"2025-01-01T00:00:00Z"`, `"created_at":"yesterday"`), "created_at", ""},
		{"acl", with(goodRule, `"a/#"`, `"a/#/b"`), "topic", "invalid topic filter"},
		{"acl", with(goodRule, `"a/#"`, `"a/${password}"`), "topic", "invalid topic filter"},
		{"acl", with(goodRule, `"allow"`, `"maybe"`), "permission", "must be one of allow, deny"},
		{"acl", with(goodRule, `"kind":"username"`, `"kind":"all"`), "value", "must be empty for kind all"},
		{"banned", with(goodBan, `"kind":"clientid","value":"evil"`, `"kind":"peerhost","value":"10.1.2.3/8"`), "value", `write "10.0.0.0/8"`},
		{"banned", with(goodBan, `"kind":"clientid","value":"evil"`, `"kind":"peerhost","value":"not-an-ip"`), "value", "not an IP address"},
		{"retained", with(goodRet, `"r/1"`, `"r/+"`), "topic", "wildcards"},
		{"retained", with(goodRet, `"qos":1`, `"qos":3`), "qos", "must be 0, 1 or 2"},
		{"retained", with(goodRet, `"AAEC"`, `"not base64!"`), "payload", ""},
		{"api_keys", with(goodKey, `"salt":"cdcd`, `"salt":"xxcd`), "salt", "hex"},
		{"api_keys", with(goodKey, `"name":"ci"`, `"name":"a:b"`), "name", "letters, digits"},
		{"admins", with(goodAdmin, `$2a$04$`, `$9z$04$`), "password_hash", "bcrypt"},
		{"admins", with(goodAdmin, `"administrator"`, `"root"`), "role", "must be one of"},
		{"config", with(goodConf, `"mqtt.max_inflight"`, `"Not A Key"`), "key", "dotted config key"},
	}
	for i, c := range cases {
		name := fmt.Sprintf("c%d.json", i)
		// The bad record is the second of its table: the number is checked.
		var good string
		switch c.table {
		case "users":
			good = with(goodUser, `"alice"`, `"zed"`)
		case "acl":
			good = with(goodRule, `"id":1`, `"id":0`)
			c.rec = with(c.rec, `"id":1`, `"id":5`)
		case "banned":
			good = with(goodBan, `"evil"`, `"other"`)
		case "retained":
			good = with(goodRet, `"r/1"`, `"r/0"`)
		case "api_keys":
			good = with(goodKey, `"ci"`, `"cd"`)
		case "admins":
			good = with(goodAdmin, `"root"`, `"rooter"`)
		case "config":
			good = with(goodConf, `"mqtt.max_inflight"`, `"mqtt.other"`)
		}
		writeFile(t, m, name, document(header1, [][2]any{{c.table, []string{good, c.rec}}}, nil))
		p := problemsOf(t, m, name)
		got := p[0]
		if got.Table != c.table || got.Record != 2 || got.Field != c.field || !strings.Contains(got.Msg, c.msg) {
			t.Errorf("case %d (%s %s): got %+v (%s), want table %s record 2 field %q containing %q", i, c.table, c.field, got, got, c.table, c.field, c.msg)
		}
	}

	// Many problems in one file: every one reported, in order, with the
	// checksum and counts problems too.
	doc := document(header1, [][2]any{
		{"users", []string{goodUser, goodUser, with(goodUser, `"sha256"`, `"md4"`)}},
		{"acl", []string{goodRule, goodRule, with(goodRule, `"id":1`, `"id":0`)}},
		{"nosuch", []string{`{}`}},
	}, map[string]int{"users": 3, "acl": 2})
	writeFile(t, m, "many.json", doc)
	p := problemsOf(t, m, "many.json")
	var got []string
	for _, x := range p {
		got = append(got, x.String())
	}
	want := []string{
		`users record 2 field "id": duplicate key "username:alice": record 1 has the same key`,
		`users record 3 field "algorithm": unknown password hash algorithm "md4" (known: plain, sha256, sha512, pbkdf2, bcrypt)`,
		`acl record 2 field "id": duplicate id 1: record 1 has the same`,
		`nosuch: unknown table (this roost has [users acl banned retained api_keys admins config])`,
		`acl: the file declares 2 records in "counts", the table has 3`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A wrong checksum.
	doc = document(header1, [][2]any{{"users", []string{goodUser}}}, nil)
	bad := strings.Replace(string(doc), `"checksum":"sha256:`, `"checksum":"sha256:00`, 1)
	writeFile(t, m, "sum.json", []byte(bad))
	if p := problemsOf(t, m, "sum.json"); p[0].Field != "checksum" || !strings.Contains(p[0].String(), "checksum mismatch") {
		t.Errorf("wrong checksum: %v", p)
	}
}

func TestUnreadableFiles(t *testing.T) {
	t.Parallel()
	m := newManager(t, openStore(t), "a")
	cases := map[string]struct {
		content, msg string
	}{
		"empty":          {"", "the file is empty"},
		"spaces":         {"  \n", "the file is empty"},
		"not json":       {"hello world", "not JSON"},
		"array":          {`[1,2]`, "not an export file"},
		"other format":   {`{"format":"something-else","version":1}`, `not a roost-export file (format "something-else")`},
		"no checksum":    {`{"format":"roost-export","version":1,"tables":{}}`, "no checksum"},
		"bad version":    {`{"format":"roost-export","version":"one"}`, "version: expected an integer"},
		"unknown":        {`{"users":[]}`, "not a file this roost recognises"},
		"trailing":       {string(document(header1, nil, nil)) + "{}", "data after the end of the document"},
		"tables first":   {`{"format":"roost-export","tables":{}}`, `"format" and "version" must come before "tables"`},
		"invalid inside": {`{"format":"roost-export","version":1,"tables":{"users":[{"v":1,}]}}`, "invalid JSON at byte"},
	}
	for name, c := range cases {
		for _, ext := range []string{".json", ".json.gz"} {
			writeFile(t, m, "bad"+ext, []byte(c.content))
			p := problemsOf(t, m, "bad"+ext)
			if !strings.Contains(p[0].Msg, c.msg) {
				t.Errorf("%s%s: %v, want %q", name, ext, p, c.msg)
			}
		}
	}
	// A missing file is not a validation error.
	_, err := m.Import(context.Background(), ImportRequest{Filename: "nope.json", ImportOptions: ImportOptions{Privileged: true}})
	if !errors.Is(err, ErrFileNotFound) {
		t.Fatalf("missing file: %v", err)
	}
	_, err = m.Import(context.Background(), ImportRequest{Filename: "../etc/passwd"})
	if !errors.Is(err, ErrBadRequest) {
		t.Fatalf("path traversal: %v", err)
	}
}

func importFile(t *testing.T, m *Manager, name string, opts ImportOptions) *ImportReport {
	t.Helper()
	opts.Privileged = true
	rep, err := m.Import(context.Background(), ImportRequest{Filename: name, ImportOptions: opts})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func tableOf(rep *ImportReport, table string) TableReport {
	for _, tr := range rep.Tables {
		if tr.Table == table {
			return tr
		}
	}
	return TableReport{Table: "none"}
}

func TestMergeReplaceAndDryRun(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	m := newManager(t, st, "a")
	bob := with(goodUser, `"alice"`, `"bob"`)
	carol := with(goodUser, `"alice"`, `"carol"`)
	writeFile(t, m, "v1.json", document(header1, [][2]any{{"users", []string{goodUser, bob}}, {"banned", []string{goodBan}}}, nil))
	rep := importFile(t, m, "v1.json", ImportOptions{})
	if u := tableOf(rep, "users"); u.Added != 2 || u.Records != 2 {
		t.Fatalf("first import: %+v", rep.Tables)
	}
	// v2: alice changed (superuser), bob unchanged, carol new; no bans.
	alice2 := with(goodUser, `"superuser":false`, `"superuser":true`)
	writeFile(t, m, "v2.json", document(header1, [][2]any{{"users", []string{alice2, bob, carol}}, {"banned", nil}}, nil))
	before := digest(t, st)
	rep = importFile(t, m, "v2.json", ImportOptions{DryRun: true})
	if u := tableOf(rep, "users"); u.Added != 1 || u.Changed != 1 || u.Unchanged != 1 || u.Removed != 0 || rep.Committed {
		t.Fatalf("dry-run merge: %+v", u)
	}
	rep = importFile(t, m, "v2.json", ImportOptions{DryRun: true, Replace: true})
	if b := tableOf(rep, "banned"); b.Removed != 1 {
		t.Fatalf("dry-run replace banned: %+v", b)
	}
	if digest(t, st) != before {
		t.Fatal("a dry run changed the tables")
	}
	// Merge deletes nothing; replace makes the table the file's.
	importFile(t, m, "v2.json", ImportOptions{})
	var n int
	st.View(func(tx *store.Tx) error { n = tx.Count("banned"); return nil })
	if n != 1 {
		t.Fatalf("merge removed bans: %d left", n)
	}
	importFile(t, m, "v2.json", ImportOptions{Replace: true, Tables: []string{"banned"}})
	st.View(func(tx *store.Tx) error { n = tx.Count("banned") + 10*tx.Count("users"); return nil })
	if n != 30 {
		t.Fatalf("after replace of banned only: %d (bans + 10×users), want 30", n)
	}
	// --tables with a table not in the file is reported as skipped.
	rep = importFile(t, m, "v2.json", ImportOptions{Tables: []string{"acl"}, DryRun: true})
	if a := tableOf(rep, "acl"); a.Skipped != "not in the input" {
		t.Fatalf("acl: %+v", rep.Tables)
	}
	if u := tableOf(rep, "users"); u.Skipped != "not selected" {
		t.Fatalf("users: %+v", rep.Tables)
	}
}

func TestPrivilegedTables(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	m := newManager(t, st, "a")
	writeFile(t, m, "p.json", document(header1, [][2]any{{"users", []string{goodUser}}, {"api_keys", []string{goodKey}}, {"admins", []string{goodAdmin}}}, nil))
	rep, err := m.Import(context.Background(), ImportRequest{Filename: "p.json"})
	if err != nil {
		t.Fatal(err)
	}
	if a := tableOf(rep, "admins"); !strings.Contains(a.Skipped, "administrators") {
		t.Fatalf("admins: %+v", a)
	}
	var n int
	st.View(func(tx *store.Tx) error { n = tx.Count("admins") + tx.Count("api_keys"); return nil })
	if n != 0 {
		t.Fatal("a non-administrator imported admins or api keys")
	}
	_, err = m.Import(context.Background(), ImportRequest{Filename: "p.json", ImportOptions: ImportOptions{Tables: []string{"admins"}}})
	if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "only administrators") {
		t.Fatalf("explicit admins by a non-administrator: %v", err)
	}
}

func TestACLImportSemantics(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	m := newManager(t, st, "a")
	r := func(id int, value, perm string) string {
		return with(with(with(goodRule, `"id":1`, fmt.Sprintf(`"id":%d`, id)), `"alice"`, `"`+value+`"`), `"allow"`, `"`+perm+`"`)
	}
	// Into an empty table the file's ids are kept.
	writeFile(t, m, "a1.json", document(header1, [][2]any{{"acl", []string{r(3, "a", "allow"), r(7, "b", "deny")}}}, nil))
	importFile(t, m, "a1.json", ImportOptions{})
	ids := func() string {
		var rules []store.ACLRule
		st.View(func(tx *store.Tx) (err error) { rules, err = store.List[store.ACLRule](tx, "acl"); return err })
		var s []string
		for _, x := range rules {
			s = append(s, fmt.Sprintf("%d:%s:%s", x.ID, x.Value, x.Permission))
		}
		return strings.Join(s, " ")
	}
	if got := ids(); got != "3:a:allow 7:b:deny" {
		t.Fatalf("after import into empty: %s", got)
	}
	// Merge: a identical, b's permission changed, c appended after.
	writeFile(t, m, "a2.json", document(header1, [][2]any{{"acl", []string{r(1, "c", "allow"), r(2, "b", "allow"), r(3, "a", "allow")}}}, nil))
	rep := importFile(t, m, "a2.json", ImportOptions{DryRun: true})
	if a := tableOf(rep, "acl"); a.Added != 1 || a.Changed != 1 || a.Unchanged != 1 {
		t.Fatalf("dry run: %+v", a)
	}
	importFile(t, m, "a2.json", ImportOptions{})
	if got := ids(); got != "3:a:allow 7:b:allow 8:c:allow" {
		t.Fatalf("after merge: %s", got)
	}
	// Replace: the table is the file's rules in the file's order.
	importFile(t, m, "a2.json", ImportOptions{Replace: true})
	if got := ids(); got != "1:c:allow 2:b:allow 3:a:allow" {
		t.Fatalf("after replace: %s", got)
	}
	// Rules without ids (hand-written) are numbered in file order.
	writeFile(t, m, "a3.json", document(header1, [][2]any{{"acl", []string{r(0, "x", "deny"), r(0, "y", "deny")}}}, nil))
	importFile(t, m, "a3.json", ImportOptions{Replace: true})
	if got := ids(); got != "1:x:deny 2:y:deny" {
		t.Fatalf("after replace with id-less rules: %s", got)
	}
	// Ids out of order are a problem.
	writeFile(t, m, "a4.json", document(header1, [][2]any{{"acl", []string{r(5, "x", "deny"), r(2, "y", "deny")}}}, nil))
	if p := problemsOf(t, m, "a4.json"); p[0].Record != 2 || p[0].Field != "id" || !strings.Contains(p[0].Msg, "evaluation order") {
		t.Fatalf("decreasing ids: %v", p)
	}
}

// A Dataset (what the foreign readers produce) goes through the same
// validation, staging and commit as a roost-export.
func TestDatasetImport(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	m := newManager(t, st, "a")
	ds := &Dataset{
		Records: []Record{
			{Table: "users", Value: &store.User{Kind: "username", ID: "eve", Algorithm: "sha256", SaltPosition: "prefix", Salt: "abcd", PasswordHash: strings.Repeat("0", 64)}},
			{Table: "acl", Value: &store.ACLRule{Kind: "username", Value: "eve", Topic: "e/#", Action: "publish", Permission: "allow"}},
			{Table: "acl", Value: store.ACLRule{Kind: "all", Topic: "#", Action: "all", Permission: "deny"}},
			{Table: "banned", Value: &store.Ban{Kind: "peerhost", Value: "::ffff:10.1.2.3"}},
		},
		Skipped: []string{"rules (2 records): not supported by Roost"},
	}
	rep, err := m.Import(context.Background(), ImportRequest{Dataset: ds, ImportOptions: ImportOptions{Format: FormatEMQX4}})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Committed || rep.Format != FormatEMQX4 || rep.Records != 4 || len(rep.Skipped) != 1 {
		t.Fatalf("report: %+v", rep)
	}
	var rules []store.ACLRule
	var ban store.Ban
	st.View(func(tx *store.Tx) (err error) {
		rules, _ = store.List[store.ACLRule](tx, "acl")
		ban, _, err = store.Get[store.Ban](tx, "banned", "peerhost:10.1.2.3")
		return err
	})
	if len(rules) != 2 || rules[0].ID != 1 || rules[1].ID != 2 || rules[0].V != 1 || ban.Value != "10.1.2.3" {
		t.Fatalf("rules %+v ban %+v", rules, ban)
	}
	// Problems of the reader and of the records refuse the whole dataset.
	before := digest(t, st)
	bad := &Dataset{
		Records:  []Record{{Table: "users", Value: &store.User{Kind: "username", ID: "x", Algorithm: "md5", PasswordHash: "y"}}, ds.Records[0]},
		Problems: []Problem{{Table: "acl_mnesia", Record: 3, Field: "topic", Msg: "cannot map"}},
	}
	_, err = m.Import(context.Background(), ImportRequest{Dataset: bad})
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Report.ProblemCount != 2 || ve.Report.Problems[0].Table != "acl_mnesia" || ve.Report.Problems[1].Field != "algorithm" {
		t.Fatalf("bad dataset: %v", err)
	}
	if digest(t, st) != before {
		t.Fatal("a refused dataset changed the tables")
	}
}

// Foreign files are read by registered readers; without one the format
// is refused by name.
func TestForeignFormatRegistry(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	m := newManager(t, st, "a")
	writeFile(t, m, "emqx.json", []byte(`{"version":"4.4","date":"x","rules":[],"resources":[],"auth_mnesia":[]}`))
	_, err := m.Import(context.Background(), ImportRequest{Filename: "emqx.json"})
	if !errors.Is(err, ErrFormatUnsupported) || !strings.Contains(err.Error(), "emqx4") {
		t.Fatalf("no emqx4 reader: %v", err)
	}
	var gotOpts ForeignOptions
	m.opts.Foreign = func(name string) (ForeignReader, bool) {
		if name != FormatEMQX4 {
			return nil, false
		}
		return func(r io.Reader, o ForeignOptions) (*Dataset, error) {
			gotOpts = o
			return &Dataset{Records: []Record{{Table: "users", Value: &store.User{Kind: "clientid", ID: "c1", Algorithm: "plain", PasswordHash: "pw"}}}}, nil
		}, true
	}
	rep, err := m.Import(context.Background(), ImportRequest{Filename: "emqx.json", ImportOptions: ImportOptions{Foreign: ForeignOptions{EMQXAuthAs: "clientid"}}})
	if err != nil || rep.Format != FormatEMQX4 || !rep.Committed || gotOpts.EMQXAuthAs != "clientid" {
		t.Fatalf("emqx import: %+v %v", rep, err)
	}
	writeFile(t, m, "dyn.json", []byte(`{"defaultACLAccess":{},"clients":[],"roles":[]}`))
	if _, err := m.Import(context.Background(), ImportRequest{Filename: "dyn.json"}); !errors.Is(err, ErrFormatUnsupported) {
		t.Fatalf("dynsec without a reader: %v", err)
	}
}

func TestRestoreConfigFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "etc", "roost.conf")
	cert := filepath.Join(dir, "etc", "certs", "ca.pem")
	os.MkdirAll(filepath.Dir(cert), 0o755)
	os.WriteFile(cfg, []byte("a = 1\nb = 2\nc = 3\n"), 0o644)
	os.WriteFile(cert, []byte("CERT"), 0o644)
	st := openStore(t)
	m := newManager(t, st, "a")
	m.opts.ConfigFiles = func() []string { return []string{cfg, cert} }
	doc := exportBytes(t, m)
	// The node's files change after the export.
	os.WriteFile(cfg, []byte("a = 1\nb = 20\nc = 3\nd = 4\n"), 0o600)
	os.Remove(cert)
	writeFile(t, m, "c.json", doc)

	rep := importFile(t, m, "c.json", ImportOptions{})
	if len(rep.ConfigFiles) != 2 || rep.ConfigFiles[0].Status != ConfigDiffers || rep.ConfigFiles[1].Status != ConfigMissing {
		t.Fatalf("without --restore-config-files: %+v", rep.ConfigFiles)
	}
	if d := strings.Join(rep.ConfigFiles[0].Diff, "|"); d != "-b = 20|+b = 2|-d = 4" {
		t.Fatalf("diff %q", d)
	}
	rep = importFile(t, m, "c.json", ImportOptions{RestoreConfigFiles: true, DryRun: true})
	if rep.ConfigFiles[0].Status != ConfigWouldRestore {
		t.Fatalf("dry run: %+v", rep.ConfigFiles)
	}
	if b, _ := os.ReadFile(cfg); string(b) != "a = 1\nb = 20\nc = 3\nd = 4\n" {
		t.Fatal("a dry run restored a config file")
	}
	rep = importFile(t, m, "c.json", ImportOptions{RestoreConfigFiles: true})
	if rep.ConfigFiles[0].Status != ConfigRestored || rep.ConfigFiles[0].Backup != cfg+".bak" || rep.ConfigFiles[1].Status != ConfigRestored {
		t.Fatalf("restore: %+v", rep.ConfigFiles)
	}
	b, _ := os.ReadFile(cfg)
	bak, _ := os.ReadFile(cfg + ".bak")
	fi, _ := os.Stat(cfg)
	if string(b) != "a = 1\nb = 2\nc = 3\n" || string(bak) != "a = 1\nb = 20\nc = 3\nd = 4\n" || fi.Mode().Perm() != 0o644 {
		t.Fatalf("restored %q (mode %v), backup %q", b, fi.Mode().Perm(), bak)
	}
	if b, _ := os.ReadFile(cert); string(b) != "CERT" {
		t.Fatal("missing cert not restored")
	}
	// Another node's files elsewhere are never written.
	m.opts.ConfigFiles = func() []string { return []string{filepath.Join(t.TempDir(), "roost.conf")} }
	os.WriteFile(cfg, []byte("changed"), 0o644)
	rep = importFile(t, m, "c.json", ImportOptions{RestoreConfigFiles: true})
	if rep.ConfigFiles[0].Status != ConfigNotHere {
		t.Fatalf("foreign path: %+v", rep.ConfigFiles)
	}
	if b, _ := os.ReadFile(cfg); string(b) != "changed" {
		t.Fatal("a file outside the node's config dirs was written")
	}
}

func TestStaleStagesAndConcurrentImports(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	m := newManager(t, st, "a")
	writeFile(t, m, "u.json", document(header1, [][2]any{{"users", []string{goodUser}}}, nil))
	// An abandoned stage of this node is removed by the next import.
	begin, _ := store.StageBegin(store.StageInfo{ID: "old-a", Node: "a", StartedAt: time.Now()})
	apply(t, st, begin)
	importFile(t, m, "u.json", ImportOptions{})
	if s, _ := st.Stages(); len(s) != 0 {
		t.Fatalf("stages left: %+v", s)
	}
	// A fresh stage of another node means an import runs there.
	begin, _ = store.StageBegin(store.StageInfo{ID: "busy-b", Node: "b", Source: "x.json", StartedAt: time.Now()})
	apply(t, st, begin)
	_, err := m.Import(context.Background(), ImportRequest{Filename: "u.json", ImportOptions: ImportOptions{Privileged: true}})
	if !errors.Is(err, ErrImportInProgress) || !strings.Contains(err.Error(), "node b is importing x.json") {
		t.Fatalf("concurrent import: %v", err)
	}
	// A dry run does not care.
	importFile(t, m, "u.json", ImportOptions{DryRun: true})
	// Idle long enough, it is abandoned.
	m.opts.StaleAfter = time.Millisecond
	time.Sleep(5 * time.Millisecond)
	importFile(t, m, "u.json", ImportOptions{})

	// At start, a node removes the stages it left behind, and only those.
	for _, s := range []store.StageInfo{{ID: "mine", Node: "a"}, {ID: "theirs", Node: "b"}} {
		begin, _ := store.StageBegin(s)
		apply(t, st, begin)
	}
	if err := m.AbortOwnStages(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s, _ := st.Stages(); len(s) != 1 || s[0].ID != "theirs" {
		t.Fatalf("stages after AbortOwnStages: %+v", s)
	}
}

func TestUploadValidatesBeforeKeeping(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	fill(t, st)
	m := newManager(t, st, "a")
	doc := exportBytes(t, m)
	res, err := m.Upload(context.Background(), "up.json", strings.NewReader(string(doc)), UploadOptions{})
	if err != nil || res.Name != "up.json" || res.Report.Records != 16 || res.Report.Format != FormatRoost {
		t.Fatalf("upload: %+v %v", res, err)
	}
	if _, err := m.Upload(context.Background(), "up.json", strings.NewReader(string(doc)), UploadOptions{}); !errors.Is(err, ErrFileExists) {
		t.Fatalf("second upload: %v", err)
	}
	// The same content again is the same file; other content gets a number.
	res, err = m.Upload(context.Background(), "up.json", strings.NewReader(string(doc)), UploadOptions{Rename: true})
	if err != nil || res.Name != "up.json" {
		t.Fatalf("same upload again: %+v %v", res, err)
	}
	res, err = m.Upload(context.Background(), "up.json", strings.NewReader(string(doc)+"\n"), UploadOptions{Rename: true})
	if err != nil || res.Name != "up-2.json" {
		t.Fatalf("renamed upload: %+v %v", res, err)
	}
	_, err = m.Upload(context.Background(), "bad.json", strings.NewReader(string(doc[:100])), UploadOptions{})
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("bad upload: %v", err)
	}
	files, _ := m.Files()
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	if strings.Join(names, ",") != "up-2.json,up.json" {
		t.Fatalf("files after uploads: %v (no temp files, no bad upload)", names)
	}
	if err := m.Delete("up.json"); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete("up.json"); !errors.Is(err, ErrFileNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	for _, bad := range []string{"", "..", "../x", "/etc/passwd", `a\b`, ".x", "a/../../b"} {
		if err := CheckName(bad); !errors.Is(err, ErrBadRequest) {
			t.Errorf("name %q accepted", bad)
		}
	}
	b, _ := json.Marshal(res.Report)
	if !strings.Contains(string(b), `"format":"roost"`) {
		t.Fatalf("report JSON: %s", b)
	}
}

// userRecord (the strict decoding of users) must know every field of
// store.User's JSON form, and nothing else.
func TestUserRecordMirrorsStoreUser(t *testing.T) {
	t.Parallel()
	u := store.User{V: 1, Kind: "k", ID: "i", PasswordHash: "h", Salt: "\xff\x00", Algorithm: "a", SaltPosition: "p",
		MacFun: "m", Iterations: 1, DKLength: 2, Superuser: true, CreatedAt: time.Unix(1, 0).UTC()}
	for _, salt := range []string{"\xff\x00", "text"} {
		u.Salt = salt
		b, err := json.Marshal(u)
		if err != nil {
			t.Fatal(err)
		}
		var r userRecord
		if err := strictUnmarshal(b, &r); err != nil {
			t.Fatalf("userRecord cannot decode a store.User: %v (%s)", err, b)
		}
		got, err := r.user()
		if err != nil || got != u {
			t.Fatalf("round trip: %+v %v, want %+v", got, err, u)
		}
	}
	var fields map[string]any
	b, _ := json.Marshal(userRecord{Salt: "s", SaltB64: "b", SaltPosition: "p", MacFun: "m", Iterations: 1, DKLength: 1})
	json.Unmarshal(b, &fields)
	all, _ := json.Marshal(store.User{Salt: "s", SaltPosition: "p", MacFun: "m", Iterations: 1, DKLength: 1})
	var want map[string]any
	json.Unmarshal(all, &want)
	want["salt_b64"] = "b"
	if len(fields) != len(want) {
		t.Fatalf("userRecord fields %v, store.User fields %v", fields, want)
	}
}
