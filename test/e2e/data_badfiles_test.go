package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDataImportBadFiles imports damaged and invalid files into a node
// with data: each is refused with a non-zero exit and an error naming the
// problem (and where), and the node's data is unchanged.
func TestDataImportBadFiles(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.Start()
	n.mustCtl("users", "add", "keep", "keep-pw")
	n.mustCtl("acl", "add", "--username", "keep", "--topic", "k/#", "--action", "all", "--permission", "allow")
	dir := shortTempDir(t)
	good := filepath.Join(dir, "good.json")
	n.mustCtl("data", "export", "-o", good)
	doc, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	before := tablesDigest(n)

	write := func(name string, content []byte) string {
		p := filepath.Join(dir, name)
		if strings.HasSuffix(name, ".gz") {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			zw.Write(content)
			zw.Close()
			content = b.Bytes()
		}
		if err := os.WriteFile(p, content, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gen := func(name string, version int, fill func(e *exportWriter), counts map[string]int, checksum string) string {
		p := filepath.Join(dir, name)
		e := newExportWriter(t, p, version)
		fill(e)
		e.close(t, counts, checksum)
		return p
	}
	flipped := bytes.Clone(doc)
	i := bytes.Index(flipped, []byte(`"keep"`)) + 2
	flipped[i] ^= 0x20 // "keep" → "kEep": still valid JSON, different content

	cases := []struct {
		name, file string
		want       []string // in stderr
	}{
		{"truncated", write("trunc.json", doc[:len(doc)*2/3]), []string{"truncated"}},
		{"truncated gzip", write("trunc.json.gz", doc[:len(doc)/2]), []string{"truncated"}},
		{"flipped byte", write("flip.json", flipped), []string{"checksum mismatch", "changed or damaged"}},
		{"wrong checksum", gen("sum.json", 1, func(e *exportWriter) { e.table("users"); e.record(userRec("x")) }, nil,
			"sha256:"+strings.Repeat("0", 64)), []string{`field "checksum"`, "checksum mismatch"}},
		{"newer version", write("v3.json", []byte(`{"format":"roost-export","version":3,"tables":{}}`)),
			[]string{"file is format 3, this roost reads up to 1"}},
		{"duplicate keys", gen("dup.json", 1, func(e *exportWriter) {
			e.table("users")
			e.record(userRec("a"))
			e.record(userRec("b"))
			e.record(userRec("a"))
		}, nil, ""), []string{`users record 3 field "id": duplicate key "username:a": record 1 has the same key`}},
		{"invalid topic filter", gen("topic.json", 1, func(e *exportWriter) {
			e.table("acl")
			e.record(`{"v":1,"id":1,"kind":"all","topic":"a/#/b","action":"all","permission":"deny","created_at":"2025-01-01T00:00:00Z"}`)
		}, nil, ""), []string{`acl record 1 field "topic": invalid topic filter`}},
		{"unknown hash algorithm", gen("alg.json", 1, func(e *exportWriter) {
			e.table("users")
			e.record(userRec("ok"))
			e.record(strings.Replace(userRec("md5-user"), `"sha256"`, `"md5"`, 1))
		}, nil, ""), []string{`users record 2 field "algorithm": unknown password hash algorithm "md5"`}},
		{"not JSON", write("junk.json", []byte("this is not json\n")), []string{"not JSON"}},
		{"empty file", write("empty.json", nil), []string{"the file is empty"}},
		{"counts mismatch", gen("counts.json", 1, func(e *exportWriter) { e.table("users"); e.record(userRec("c")) },
			map[string]int{"users": 2}, ""), []string{`users: the file declares 2 records in "counts", the table has 1`}},
	}
	for _, c := range cases {
		for _, dry := range []bool{false, true} {
			args := []string{"data", "import", c.file}
			if dry {
				args = append(args, "--dry-run")
			}
			stderr := ctlFails(t, n, args...)
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("%s (dry run %v): stderr does not contain %q:\n%s", c.name, dry, w, stderr)
				}
			}
			if !strings.Contains(stderr, "nothing was imported") {
				t.Errorf("%s: stderr does not say that nothing was imported:\n%s", c.name, stderr)
			}
		}
		if d := tablesDigest(n); d != before {
			t.Fatalf("%s: the refused import changed the data:\n%s\n%s", c.name, before, d)
		}
	}

	// Every problem of a file is reported, machine-readably with --output json.
	many := gen("many.json", 1, func(e *exportWriter) {
		e.table("users")
		e.record(strings.Replace(userRec("p1"), `"sha256"`, `"md4"`, 1))
		e.record(strings.Replace(userRec("p2"), `"kind":"username"`, `"kind":"email"`, 1))
		e.table("retained")
		e.record(`{"v":1,"topic":"r/+","payload":"","qos":3,"created":"2025-01-01T00:00:00Z"}`)
	}, nil, "")
	out, _, err := n.ctl("data", "import", many, "--output", "json")
	if err == nil {
		t.Fatal("a file with problems imported")
	}
	var ie struct {
		Code         string `json:"code"`
		ProblemCount int    `json:"problem_count"`
		Problems     []struct {
			Table  string `json:"table"`
			Record int    `json:"record"`
			Field  string `json:"field"`
		} `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out), &ie); err != nil {
		t.Fatalf("--output json: %v\n%s", err, out)
	}
	var where []string
	for _, p := range ie.Problems {
		where = append(where, p.Table+"/"+string(rune('0'+p.Record))+"/"+p.Field)
	}
	if ie.Code != "INVALID_FILE" || ie.ProblemCount != 4 || strings.Join(where, " ") != "users/1/algorithm users/2/kind retained/1/topic retained/1/qos" {
		t.Fatalf("problems: %+v (%v)", ie, where)
	}

	// Nothing was kept in the node's backup dir but the export itself.
	var files struct {
		Data []struct{ Name string } `json:"data"`
	}
	mqttCtlJSON(n, &files, "data", "files")
	if len(files.Data) != 1 || !strings.HasPrefix(files.Data[0].Name, "roost-export-") {
		t.Fatalf("backup dir after refused uploads: %+v", files.Data)
	}
	// A name outside the backup dir is refused.
	if stderr := ctlFails(t, n, "data", "import", "../node.json"); !strings.Contains(stderr, "no such file") {
		t.Fatalf("path traversal: %s", stderr)
	}
	// The same over REST: names are confined to the backup dir.
	var key struct{ Name, Secret string }
	json.Unmarshal([]byte(n.mustCtl("apikeys", "create", "files-key", "--output", "json")), &key)
	for _, c := range []apiCall{
		{Method: "POST", Path: "/api/v1/data/import", Body: `{"filename":"../node.json"}`},
		{Method: "POST", Path: "/api/v1/data/import", Body: `{"filename":"/etc/passwd"}`},
		{Method: "GET", Path: "/api/v1/data/files/..%2Fnode.json"},
		{Method: "DELETE", Path: "/api/v1/data/files/..%2Fnode.json"},
		{Method: "POST", Path: "/api/v1/data/export", Body: `{"filename":"../../x.json"}`},
	} {
		c.BasicUser, c.BasicPass = key.Name, key.Secret
		wantAPIError(t, c.Method+" "+c.Path+" "+c.Body, doAPI(t, n.API, c), 400, "BAD_REQUEST", "file name")
	}
	if _, err := os.Stat(filepath.Join(n.DataDir, "node.json")); err != nil {
		t.Fatalf("node.json: %v", err)
	}
	before = tablesDigest(n) // the API key is new data
	// The good file still imports (merge: everything unchanged).
	if out := n.mustCtl("data", "import", good, "--dry-run"); !strings.Contains(out, "users     1        0      0        1") {
		t.Fatalf("dry run of the good file:\n%s", out)
	}
	if d := tablesDigest(n); d != before {
		t.Fatalf("the dry run changed the data:\n%s\n%s", before, d)
	}
}
