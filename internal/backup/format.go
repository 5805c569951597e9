package backup

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"time"
)

// The roost-export format (docs/data-export-import.md): one JSON object,
// written and read as a stream, gzip-compressed when the file name ends
// in .gz. Its members, in this order:
//
//	format, version, roost_version, cluster_id, source_node, raft_index,
//	created_at, tables, config_files, sessions (optional), counts, checksum
//
// checksum is "sha256:" and the hex sha256 of the document's compact
// text (no whitespace outside strings) from its opening '{' up to and
// including the ',' before "checksum". Truncation or any changed byte of
// content changes it; re-indenting the file (jq .) does not.
const (
	FormatName = "roost-export"
	// FormatVersion is the version this roost writes; it reads every
	// version from 1 up to it.
	FormatVersion = 1
)

// Header is the first part of an export: what it is and where and when
// it was taken.
type Header struct {
	Format       string    `json:"format"`
	Version      int       `json:"version"`
	RoostVersion string    `json:"roost_version"`
	ClusterID    string    `json:"cluster_id"`
	SourceNode   string    `json:"source_node"`
	RaftIndex    uint64    `json:"raft_index"` // the consistent read point the tables are from
	CreatedAt    time.Time `json:"created_at"`
}

// ConfigFile is one of the source node's config files, kept for
// reference (and restored only with --restore-config-files).
type ConfigFile struct {
	Path    string `json:"path"`
	Mode    string `json:"mode"` // octal permission bits, "0644"
	SHA256  string `json:"sha256"`
	Content []byte `json:"content"` // base64 in JSON
}

// Sessions is the optional node-local session database of the source
// node (--include sessions), an opaque bbolt file.
type Sessions struct {
	Node    string `json:"node"`
	Format  string `json:"format"` // "bbolt"
	Size    int64  `json:"size"`
	Content []byte `json:"content"` // base64 in JSON
}

// Progress reports a long export or import as it goes.
type Progress struct {
	Phase string `json:"phase"` // export | validate | stage | commit
	Done  int64  `json:"done"`  // records done in this phase
	Total int64  `json:"total"` // records in this phase (0: not known yet)
	// Bytes and BytesTotal are the position in the input file while
	// validating, when the record total is not known yet.
	Bytes      int64   `json:"bytes,omitempty"`
	BytesTotal int64   `json:"bytes_total,omitempty"`
	Rate       float64 `json:"rate"` // records per second in this phase
}

// progress throttles Progress reports to a few per second.
type progress struct {
	fn    func(Progress)
	phase string
	start time.Time
	last  time.Time
}

func newProgress(fn func(Progress), phase string) *progress {
	now := time.Now()
	return &progress{fn: fn, phase: phase, start: now}
}

func (p *progress) report(done, total, bytes, bytesTotal int64, final bool) {
	if p == nil || p.fn == nil {
		return
	}
	now := time.Now()
	if !final && now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last = now
	rate := 0.0
	if d := now.Sub(p.start).Seconds(); d > 0 {
		rate = float64(done) / d
	}
	p.fn(Progress{Phase: p.phase, Done: done, Total: total, Bytes: bytes, BytesTotal: bytesTotal, Rate: rate})
}

// jsonName encodes a member name the way both the writer and the reader
// feed it to the checksum.
func jsonName(name string) []byte {
	b, _ := json.Marshal(name)
	return b
}

// checksumWriter passes bytes on and hashes them until stopped.
type checksumWriter struct {
	w       io.Writer
	h       hash.Hash
	n       int64
	hashing bool
}

func (c *checksumWriter) Write(p []byte) (int, error) {
	if c.hashing {
		c.h.Write(p)
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *checksumWriter) sum() string { return fmt.Sprintf("sha256:%x", c.h.Sum(nil)) }

// compactInto appends the compact form of the JSON value raw to buf.
// Records are usually compact already (no whitespace byte at all, in or
// out of strings): those are copied without a scan.
func compactInto(buf *bytes.Buffer, raw []byte) error {
	if bytes.IndexAny(raw, " \t\r\n") < 0 {
		buf.Write(raw)
		return nil
	}
	return json.Compact(buf, raw)
}
