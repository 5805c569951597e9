package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"os"
	"strings"
	"testing"
)

// exportWriter writes a roost-export document by hand (the format of
// docs/data-export-import.md), computing its checksum the documented
// way: sha256 of the compact text up to and including the ',' before
// "checksum". Tests use it to build large and deliberately bad files.
type exportWriter struct {
	f       *os.File
	w       *bufio.Writer
	h       hash.Hash
	counts  map[string]int
	order   []string
	inTable bool
}

func newExportWriter(t *testing.T, path string, version int) *exportWriter {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	e := &exportWriter{f: f, w: bufio.NewWriterSize(f, 1<<20), h: sha256.New(), counts: map[string]int{}}
	e.write(fmt.Sprintf(`{"format":"roost-export","version":%d,"roost_version":"e2e","cluster_id":"e2e","source_node":"gen","raft_index":1,"created_at":"2025-01-01T00:00:00Z","tables":{`, version))
	return e
}

func (e *exportWriter) write(s string) {
	e.h.Write([]byte(s))
	e.w.WriteString(s)
}

// table starts a table section.
func (e *exportWriter) table(name string) {
	if e.inTable {
		e.write("]")
	}
	if len(e.order) > 0 {
		e.write(",")
	}
	e.order = append(e.order, name)
	e.write(`"` + name + `":[`)
	e.inTable = true
}

// record adds one record (compact JSON) to the current table.
func (e *exportWriter) record(rec string) {
	name := e.order[len(e.order)-1]
	if e.counts[name] > 0 {
		e.write(",")
	}
	e.counts[name]++
	e.write(rec)
}

// close writes counts (overridden by counts, when given) and the
// checksum (replaced by checksum, when not empty).
func (e *exportWriter) close(t *testing.T, counts map[string]int, checksum string) {
	t.Helper()
	if e.inTable {
		e.write("]")
	}
	if counts == nil {
		counts = e.counts
	}
	c, _ := json.Marshal(counts)
	e.write(`},"config_files":[],"counts":` + string(c) + ",")
	if checksum == "" {
		checksum = "sha256:" + hex.EncodeToString(e.h.Sum(nil))
	}
	e.w.WriteString(`"checksum":"` + checksum + "\"}\n")
	if err := e.w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := e.f.Close(); err != nil {
		t.Fatal(err)
	}
}

// userRec is a users record with a sha256 hash (valid in form only).
func userRec(id string) string {
	return fmt.Sprintf(`{"v":1,"kind":"username","id":%q,"password_hash":"%s","algorithm":"sha256","salt_position":"prefix","salt":"s","superuser":false,"created_at":"2025-01-01T00:00:00Z"}`,
		id, strings.Repeat("ab", 32))
}

// ctlFails runs a ctl command that must fail and returns its stderr.
func ctlFails(t *testing.T, n *node, args ...string) string {
	t.Helper()
	out, errOut, err := n.ctl(args...)
	if err == nil {
		t.Fatalf("roost ctl %s succeeded, want a failure\nstdout: %s", strings.Join(args, " "), out)
	}
	return errOut
}
