package backup

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"
	"github.com/roostmq/roost/internal/store"
)

// maxProblems is how many problems a report lists; the count goes on.
const maxProblems = 1000

// problems collects what is wrong with one input.
type problems struct {
	list  []Problem
	total int
	fatal bool // reading stopped: later content was not checked
	// sink, when set, receives the problems instead (the reader's side
	// of a parallel scan, which puts them in order with the records').
	sink func(Problem)
}

func (p *problems) add(table string, rec int, field, format string, args ...any) {
	pr := Problem{Table: table, Record: rec, Field: field, Msg: fmt.Sprintf(format, args...)}
	if p.sink != nil {
		p.total++
		p.sink(pr)
		return
	}
	p.put(pr)
}

func (p *problems) put(pr Problem) {
	p.total++
	if len(p.list) < maxProblems {
		p.list = append(p.list, pr)
	}
}

// stop records a problem after which the input cannot be read further.
func (p *problems) stop(format string, args ...any) {
	p.add("", 0, "", format, args...)
	p.fatal = true
}

func (p *problems) empty() bool { return p.total == 0 }

// countingReader counts the bytes read through it (the position in the
// file, compressed, for progress).
type countingReader struct {
	r io.Reader
	n atomic.Int64 // read by progress reports on another goroutine
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// decompress returns r's content, gunzipped when it starts with the gzip
// magic bytes (whatever the file is called).
func decompress(r io.Reader) (io.Reader, func() error, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	magic, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("damaged gzip data: %w", err)
		}
		return bufio.NewReaderSize(zr, 256<<10), zr.Close, nil
	}
	return br, func() error { return nil }, nil
}

// exportInfo is what reading a roost-export found besides its records.
type exportInfo struct {
	Header      Header
	Sections    []string       // table sections, in file order
	Counts      map[string]int // as the file declares them
	Seen        map[string]int // records read per section
	ConfigFiles []ConfigFile
	Sessions    *Sessions // without its content
	Checksum    string
}

// recordFunc receives one record: its table, its 1-based number in that
// table's section and its compact JSON (valid only during the call).
type recordFunc func(table string, num int, raw []byte) error

// exportReader reads one roost-export document as a stream, recomputing
// its checksum, and hands each record to a recordFunc.
type exportReader struct {
	lx   *lexer
	h    hash.Hash
	p    *problems
	info *exportInfo
	buf  bytes.Buffer
	seen map[string]bool // top-level members read
}

// readExport reads a (decompressed) roost-export document from r. What
// is wrong with the document goes to p; the error is for failures to
// read at all (I/O, ctx) and for errors returned by rec.
func readExport(ctx context.Context, r io.Reader, p *problems, rec recordFunc) (*exportInfo, error) {
	er := &exportReader{lx: newLexer(r), h: sha256.New(), p: p,
		info: &exportInfo{Counts: map[string]int{}, Seen: map[string]int{}}, seen: map[string]bool{}}
	err := er.document(ctx, rec)
	var pe *parseError
	if errors.As(err, &pe) {
		p.stop("%s", pe.msg)
		return er.info, nil
	}
	return er.info, err
}

// parseError is a problem that ends reading (bad JSON, truncation).
type parseError struct{ msg string }

func (e *parseError) Error() string { return e.msg }

func (er *exportReader) fail(format string, args ...any) error {
	return &parseError{msg: fmt.Sprintf(format, args...)}
}

// readErr turns a read error into a problem naming where it happened.
func (er *exportReader) readErr(err error, what string) error {
	off := er.lx.off
	var se *lexError
	switch {
	case errors.Is(err, io.EOF) && !er.lx.started:
		return er.fail("the file is empty")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return er.fail("the file is truncated: the JSON ends after %d bytes, in %s, before the checksum", off, what)
	case errors.As(err, &se):
		if se.off == 0 {
			return er.fail("not JSON: %v", se)
		}
		return er.fail("invalid JSON at byte %d (in %s): %v", se.off, what, se)
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader):
		return er.fail("damaged gzip data after %d bytes of JSON: %v", off, err)
	}
	return fmt.Errorf("read %s: %w", what, err)
}

// open reads the opening delimiter of an object or array.
func (er *exportReader) open(want byte, what string) error {
	c, err := er.lx.peek()
	if err != nil {
		return er.readErr(err, what)
	}
	if c != want {
		return er.fail("%s: expected %q at byte %d, got %q", what, want, er.lx.off, c)
	}
	er.lx.next()
	return nil
}

// more reports whether another element of an object or array follows,
// reading the ',' before it, or the closing delimiter after the last.
func (er *exportReader) more(closing byte, first bool, what string) (bool, error) {
	c, err := er.lx.peek()
	if err != nil {
		return false, er.readErr(err, what)
	}
	if c == closing {
		er.lx.next()
		return false, nil
	}
	if !first {
		if c != ',' {
			return false, er.fail("invalid JSON at byte %d (in %s): expected ',' or %q, got %q", er.lx.off, what, closing, c)
		}
		er.lx.next()
	}
	return true, nil
}

// name reads a member name and the ':' after it.
func (er *exportReader) name(what string) (string, error) {
	c, err := er.lx.peek()
	if err != nil {
		return "", er.readErr(err, what)
	}
	if c != '"' {
		return "", er.fail("invalid JSON at byte %d (in %s): expected a member name, got %q", er.lx.off, what, c)
	}
	raw, err := er.lx.value()
	if err != nil {
		return "", er.readErr(err, what)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", er.fail("invalid JSON at byte %d (in %s): bad member name: %v", er.lx.off, what, err)
	}
	c, err = er.lx.peek()
	if err != nil {
		return "", er.readErr(err, what)
	}
	if c != ':' {
		return "", er.fail("invalid JSON at byte %d (in %s): expected ':' after %q, got %q", er.lx.off, what, s, c)
	}
	er.lx.next()
	return s, nil
}

// value reads one JSON value, feeds its compact form to the checksum and
// returns it (valid until the next read). Only its extent is checked
// here: records are validated by checkRecord, other values decoded.
func (er *exportReader) value(what string) ([]byte, error) {
	raw, err := er.lx.value()
	if err != nil {
		return nil, er.readErr(err, what)
	}
	er.buf.Reset()
	if err := compactInto(&er.buf, raw); err != nil {
		return nil, er.fail("invalid JSON in %s: %v", what, err)
	}
	er.h.Write(er.buf.Bytes())
	return er.buf.Bytes(), nil
}

func (er *exportReader) document(ctx context.Context, rec recordFunc) error {
	c, err := er.lx.peek()
	if err != nil {
		return er.readErr(err, "the document")
	}
	if c != '{' {
		if _, err := er.lx.value(); err != nil || !json.Valid(er.lx.buf) {
			return er.fail("not JSON: invalid character %q at the start of the file", c)
		}
		return er.fail("not a roost-export file: the document is not a JSON object")
	}
	er.lx.next()
	er.h.Write([]byte("{"))
	for first := true; ; first = false {
		more, err := er.more('}', first, "the document")
		if err != nil {
			return err
		}
		if !more {
			break
		}
		key, err := er.name("the document")
		if err != nil {
			return err
		}
		if !first {
			er.h.Write([]byte(","))
		}
		if key == "checksum" {
			return er.checksum()
		}
		if er.seen[key] {
			return er.fail("member %q appears twice", key)
		}
		er.seen[key] = true
		er.h.Write(jsonName(key))
		er.h.Write([]byte(":"))
		if key == "tables" {
			if !er.seen["format"] || !er.seen["version"] {
				return er.fail(`"format" and "version" must come before "tables"`)
			}
			if err := er.tables(ctx, rec); err != nil {
				return err
			}
			continue
		}
		raw, err := er.value(fmt.Sprintf("member %q", key))
		if err != nil {
			return err
		}
		if err := er.header(key, raw); err != nil {
			return err
		}
	}
	return er.fail("no checksum: the document has no \"checksum\" member (it must be the last one)")
}

// header interprets one top-level member other than tables.
func (er *exportReader) header(key string, raw []byte) error {
	h := &er.info.Header
	str := func(dst *string) {
		if err := json.Unmarshal(raw, dst); err != nil {
			er.p.add("", 0, key, "expected a string, got %s", clip(raw))
		}
	}
	switch key {
	case "format":
		str(&h.Format)
		if h.Format != FormatName {
			return er.fail("not a roost-export file (format %q)", h.Format)
		}
	case "version":
		if err := json.Unmarshal(raw, &h.Version); err != nil {
			return er.fail("version: expected an integer, got %s", clip(raw))
		}
		if h.Version > FormatVersion {
			return er.fail("file is format %d, this roost reads up to %d: import it with a newer roost", h.Version, FormatVersion)
		}
		if h.Version < 1 {
			return er.fail("version: %d is not a format version (1 to %d)", h.Version, FormatVersion)
		}
	case "roost_version":
		str(&h.RoostVersion)
	case "cluster_id":
		str(&h.ClusterID)
	case "source_node":
		str(&h.SourceNode)
	case "raft_index":
		if err := json.Unmarshal(raw, &h.RaftIndex); err != nil {
			er.p.add("", 0, key, "expected a non-negative integer, got %s", clip(raw))
		}
	case "created_at":
		if err := json.Unmarshal(raw, &h.CreatedAt); err != nil {
			er.p.add("", 0, key, "expected an RFC 3339 time, got %s", clip(raw))
		}
	case "counts":
		if err := json.Unmarshal(raw, &er.info.Counts); err != nil {
			er.p.add("", 0, key, "expected an object of table record counts, got %s", clip(raw))
		}
	case "config_files":
		var files []ConfigFile
		if err := strictUnmarshal(raw, &files); err != nil {
			er.p.add("config_files", 0, fieldOf(err), "%s", messageOf(err))
			break
		}
		for i, f := range files {
			if f.Path == "" {
				er.p.add("config_files", i+1, "path", "required")
			}
			if sum := fmt.Sprintf("%x", sha256.Sum256(f.Content)); f.SHA256 != sum {
				er.p.add("config_files", i+1, "sha256", "content hashes to %s, the file says %q", sum, f.SHA256)
			}
		}
		er.info.ConfigFiles = files
	case "sessions":
		var s Sessions
		if err := strictUnmarshal(raw, &s); err != nil {
			er.p.add("sessions", 0, fieldOf(err), "%s", messageOf(err))
			break
		}
		s.Content = nil
		er.info.Sessions = &s
	default:
		er.p.add("", 0, key, "unknown member (a roost-export version %d has none of this name)", FormatVersion)
	}
	return nil
}

func (er *exportReader) tables(ctx context.Context, rec recordFunc) error {
	if err := er.open('{', `"tables"`); err != nil {
		return err
	}
	er.h.Write([]byte("{"))
	for first := true; ; first = false {
		more, err := er.more('}', first, `"tables"`)
		if err != nil {
			return err
		}
		if !more {
			break
		}
		table, err := er.name(`"tables"`)
		if err != nil {
			return err
		}
		if !first {
			er.h.Write([]byte(","))
		}
		er.h.Write(jsonName(table))
		er.h.Write([]byte(":"))
		known := slices.Contains(store.Tables, table)
		switch {
		case !known:
			er.p.add(table, 0, "", "unknown table (this roost has %v)", store.Tables)
		case slices.Contains(er.info.Sections, table):
			return er.fail("table %q appears twice in \"tables\"", table)
		default:
			er.info.Sections = append(er.info.Sections, table)
		}
		what := fmt.Sprintf("table %q", table)
		if err := er.open('[', what); err != nil {
			return err
		}
		er.h.Write([]byte("["))
		n := 0
		for {
			more, err := er.more(']', n == 0, what)
			if err != nil {
				return err
			}
			if !more {
				break
			}
			n++
			if n > 1 {
				er.h.Write([]byte(","))
			}
			raw, err := er.value(fmt.Sprintf("%s record %d", what, n))
			if err != nil {
				return err
			}
			if known {
				if err := rec(table, n, raw); err != nil {
					return err
				}
			}
			if n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}
		er.h.Write([]byte("]"))
		if known {
			er.info.Seen[table] = n
		}
	}
	er.h.Write([]byte("}"))
	return nil
}

func (er *exportReader) checksum() error {
	want := fmt.Sprintf("sha256:%x", er.h.Sum(nil))
	raw, err := er.lx.value()
	if err != nil {
		return er.readErr(err, `"checksum"`)
	}
	var got string
	if err := json.Unmarshal(raw, &got); err != nil {
		return er.fail(`"checksum": expected a string, got %s`, clip(raw))
	}
	er.info.Checksum = got
	c, err := er.lx.peek()
	if err != nil {
		return er.readErr(err, "the document")
	}
	if c != '}' {
		return er.fail(`"checksum" must be the last member of the document`)
	}
	er.lx.next()
	if c, err := er.lx.peek(); err == nil {
		return er.fail("data after the end of the document at byte %d: %q", er.lx.off, c)
	} else if !errors.Is(err, io.EOF) {
		return er.readErr(err, "the end of the document")
	}
	if got != want {
		er.p.add("", 0, "checksum", "checksum mismatch: the file says %q, its content hashes to %q: the file was changed or damaged", got, want)
	}
	for _, t := range er.info.Sections {
		if c, ok := er.info.Counts[t]; !ok {
			er.p.add(t, 0, "", "no count for this table in \"counts\"")
		} else if c != er.info.Seen[t] {
			er.p.add(t, 0, "", "the file declares %d records in \"counts\", the table has %d", c, er.info.Seen[t])
		}
	}
	for t := range er.info.Counts {
		if !slices.Contains(er.info.Sections, t) {
			er.p.add(t, 0, "", "\"counts\" has a count for a table the file does not hold")
		}
	}
	return nil
}

func clip(b []byte) string {
	if len(b) > 60 {
		return string(b[:57]) + "..."
	}
	return string(b)
}

// lexer finds the JSON values of a stream without decoding them: the
// structure of a roost-export is read with it, its values are decoded
// (or, records, validated) by their consumers. It reads each byte once.
type lexer struct {
	r       *bufio.Reader
	off     int64 // bytes consumed
	buf     []byte
	started bool // something other than whitespace was seen
}

func newLexer(r io.Reader) *lexer {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 256<<10)
	}
	return &lexer{r: br}
}

// lexError is a byte that cannot be there.
type lexError struct {
	off int64
	c   byte
	msg string
}

func (e *lexError) Error() string { return fmt.Sprintf("%s %q at byte %d", e.msg, e.c, e.off) }

// peek skips whitespace and returns the next byte without consuming it.
func (l *lexer) peek() (byte, error) {
	for {
		b, err := l.r.ReadByte()
		if err != nil {
			return 0, err
		}
		switch b {
		case ' ', '\t', '\n', '\r':
			l.off++
			continue
		}
		l.started = true
		l.r.UnreadByte()
		return b, nil
	}
}

// next consumes one byte.
func (l *lexer) next() (byte, error) {
	b, err := l.r.ReadByte()
	if err == nil {
		l.off++
	}
	return b, err
}

func eof(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// value reads one JSON value after whitespace and returns its bytes
// (valid until the next call). Only its extent is checked: strings,
// escapes and nesting.
func (l *lexer) value() ([]byte, error) {
	c, err := l.peek()
	if err != nil {
		return nil, err
	}
	l.buf = l.buf[:0]
	switch {
	case c == '"':
		l.next()
		l.buf = append(l.buf, '"')
		return l.buf, l.stringBody()
	case c == '{' || c == '[':
		depth := 0
		for {
			b, err := l.next()
			if err != nil {
				return nil, eof(err)
			}
			l.buf = append(l.buf, b)
			switch b {
			case '"':
				if err := l.stringBody(); err != nil {
					return nil, err
				}
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return l.buf, nil
				}
			}
		}
	case c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f' || c == 'n':
		for {
			b, err := l.r.ReadByte()
			if errors.Is(err, io.EOF) {
				return l.buf, nil
			}
			if err != nil {
				return nil, err
			}
			if !(b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b == '+' || b == '-' || b == '.') {
				l.r.UnreadByte()
				return l.buf, nil
			}
			l.off++
			l.buf = append(l.buf, b)
		}
	}
	return nil, &lexError{off: l.off, c: c, msg: "invalid character"}
}

// stringBody reads the rest of a string after its opening quote into buf.
func (l *lexer) stringBody() error {
	for {
		b, err := l.next()
		if err != nil {
			return eof(err)
		}
		l.buf = append(l.buf, b)
		switch b {
		case '"':
			return nil
		case '\\':
			b, err := l.next()
			if err != nil {
				return eof(err)
			}
			l.buf = append(l.buf, b)
		}
	}
}
