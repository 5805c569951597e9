// Package foreign reads the data files of other MQTT brokers into a
// backup.Dataset for Roost's import (validate, stage, commit): the JSON
// export of EMQX 4.x (emqx_ctl data export, 4.0 to 4.4) and the
// dynamic-security JSON file of Mosquitto 2.x (the file mosquitto_ctrl
// dynsec manages).
//
// A reader returns an error only when the input cannot be read at all
// (not JSON, not a JSON object, truncated). Everything wrong with one
// record becomes a backup.Problem naming the section, the 1-based record
// number and the field; every problem is reported, not just the first.
// What Roost cannot represent exactly is listed in Dataset.Skipped (whole
// sections) or Dataset.Notes (mapping decisions), never dropped silently.
//
// Note for callers: this package imports package backup (for its types),
// so package backup itself cannot import it; call the readers from the
// layer above (CLI, REST, node).
package foreign

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/roostmq/roost/internal/backup"
	"github.com/roostmq/roost/internal/broker"
	"github.com/roostmq/roost/internal/store"
)

// Format names, as --format spells them.
const (
	formatEMQX4     = "emqx4"
	formatMosquitto = "mosquitto-dynsec"
)

// Detect names the foreign format of a JSON file from its first bytes
// (any prefix of the file; a few KiB is plenty): "emqx4",
// "mosquitto-dynsec", or "" when it is neither (a Roost export, another
// file, not JSON). It looks at the top-level keys it can read before the
// prefix ends.
func Detect(head []byte) string {
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")) // UTF-8 BOM
	dec := json.NewDecoder(bytes.NewReader(head))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return ""
	}
	var emqx, mosq int
	emqxVersion := false
	for {
		tok, err := dec.Token()
		if err != nil {
			break // end of the prefix
		}
		key, ok := tok.(string)
		if !ok {
			break // end of the object
		}
		val, err := dec.Token()
		if err != nil {
			// Only the key fits in the prefix; it still counts.
			val = nil
		}
		switch key {
		case "version":
			if s, ok := val.(string); ok && strings.HasPrefix(s, "4.") {
				emqxVersion = true
			}
		case "format":
			if s, ok := val.(string); ok && strings.HasPrefix(s, "roost") {
				return ""
			}
		case "auth_mnesia", "acl_mnesia", "auth_clientid", "auth_username", "blacklist", "apps",
			"rules", "resources", "schemas", "modules", "configs", "listeners_state", "date":
			emqx++
		case "defaultACLAccess", "clients", "groups", "roles", "anonymousGroup":
			mosq++
		}
		if err != nil || skipRest(dec, val) != nil {
			break
		}
	}
	switch {
	case emqxVersion:
		return formatEMQX4
	case mosq > 0 && emqx == 0:
		return formatMosquitto
	case emqx > 0 && mosq == 0:
		return formatEMQX4
	}
	return ""
}

// skipRest consumes the rest of a value whose first token was tok.
func skipRest(dec *json.Decoder, tok json.Token) error {
	d, ok := tok.(json.Delim)
	if !ok || d == '}' || d == ']' {
		return nil
	}
	for depth := 1; depth > 0; {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := t.(json.Delim); ok {
			if d == '{' || d == '[' {
				depth++
			} else {
				depth--
			}
		}
	}
	return nil
}

// readObject streams a JSON document that must be one object, calling
// fn for each top-level key with the decoder positioned at its value; fn
// must consume exactly that value.
func readObject(r io.Reader, what string, fn func(key string, dec *json.Decoder) error) error {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: the file is empty", what)
		}
		return fmt.Errorf("%s: not JSON: %w", what, err)
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("%s: the top level must be a JSON object, got %s", what, tokenKind(tok))
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%s: not valid JSON (near byte %d): %w", what, dec.InputOffset(), err)
		}
		key, _ := tok.(string)
		if err := fn(key, dec); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return fmt.Errorf("%s: not valid JSON (near byte %d): %w", what, dec.InputOffset(), unexpectedEOF(err))
	}
	if tok, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return fmt.Errorf("%s: not valid JSON after the top-level object (near byte %d): %w", what, dec.InputOffset(), err)
		}
		return fmt.Errorf("%s: unexpected %s after the top-level object (near byte %d)", what, tokenKind(tok), dec.InputOffset())
	}
	return nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF // a truncated file
	}
	return err
}

// syntaxErr wraps a decoding error of a section as "unreadable input".
func syntaxErr(what string, dec *json.Decoder, err error) error {
	return fmt.Errorf("%s: not valid JSON (near byte %d): %w", what, dec.InputOffset(), unexpectedEOF(err))
}

func tokenKind(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '[':
			return "an array"
		case '{':
			return "an object"
		}
		return fmt.Sprintf("%q", string(t))
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", tok)
}

// section reads the value at dec as an array of records, calling fn with
// each element (1-based). A value that is not an array is reported as a
// problem of the section and skipped. It returns the number of elements.
func section(c *collector, table string, what string, dec *json.Decoder, fn func(n int, raw json.RawMessage)) (int, error) {
	tok, err := dec.Token()
	if err != nil {
		return 0, syntaxErr(what, dec, err)
	}
	if tok == nil {
		return 0, nil // "section": null, as an empty section
	}
	if tok != json.Delim('[') {
		c.problem(table, 0, "", "must be an array of records, got %s", tokenKind(tok))
		if err := skipRest(dec, tok); err != nil {
			return 0, syntaxErr(what, dec, err)
		}
		return 0, nil
	}
	n := 0
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return n, syntaxErr(what, dec, err)
		}
		n++
		if fn != nil {
			fn(n, raw)
		}
	}
	if _, err := dec.Token(); err != nil {
		return n, syntaxErr(what, dec, err)
	}
	return n, nil
}

// skipSection consumes an unsupported section and lists it as skipped:
// an array with its record count, anything else by name.
func skipSection(ds *backup.Dataset, key, what, why string, dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return syntaxErr(what, dec, err)
	}
	if tok == json.Delim('[') {
		n := 0
		for dec.More() {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return syntaxErr(what, dec, err)
			}
			n++
		}
		if _, err := dec.Token(); err != nil {
			return syntaxErr(what, dec, err)
		}
		if n > 0 {
			ds.Skipped = append(ds.Skipped, fmt.Sprintf("%s (%s): %s", key, plural(n, "record"), why))
		}
		return nil
	}
	if err := skipRest(dec, tok); err != nil {
		return syntaxErr(what, dec, err)
	}
	if tok != nil {
		ds.Skipped = append(ds.Skipped, fmt.Sprintf("%s: %s", key, why))
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// collector gathers problems into a dataset.
type collector struct{ ds *backup.Dataset }

func (c *collector) problem(table string, rec int, field, format string, args ...any) {
	c.ds.Problems = append(c.ds.Problems, backup.Problem{Table: table, Record: rec, Field: field,
		Msg: fmt.Sprintf(format, args...)})
}

func (c *collector) note(format string, args ...any) {
	c.ds.Notes = append(c.ds.Notes, fmt.Sprintf(format, args...))
}

// record is one JSON object of a section, with typed field accessors
// that report problems located at the record and field.
type record struct {
	c      *collector
	table  string
	n      int
	prefix string // of field names, for a nested object ("acls[2].")
	f      map[string]json.RawMessage
}

// nested returns the accessor of an object inside r, whose problems are
// reported under r's record with field names prefixed by path.
func (r *record) nested(path string, f map[string]json.RawMessage) *record {
	return &record{c: r.c, table: r.table, n: r.n, prefix: r.prefix + path + ".", f: f}
}

func newRecord(c *collector, table string, n int, raw json.RawMessage) (*record, bool) {
	r := &record{c: c, table: table, n: n}
	if len(raw) == 0 || raw[0] != '{' {
		c.problem(table, n, "", "must be a JSON object, got %s", rawKind(raw))
		return nil, false
	}
	if err := json.Unmarshal(raw, &r.f); err != nil {
		c.problem(table, n, "", "not a valid JSON object: %v", err)
		return nil, false
	}
	return r, true
}

func rawKind(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '[':
		return "an array"
	case '{':
		return "an object"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func (r *record) problem(field, format string, args ...any) {
	r.c.problem(r.table, r.n, r.prefix+field, format, args...)
}

// has reports whether field is present and not null.
func (r *record) has(field string) bool {
	v, ok := r.f[field]
	return ok && string(v) != "null"
}

// str returns a string field. Missing or null: "" and false, a problem
// when required. Another type: a problem.
func (r *record) str(field string, required bool) (string, bool) {
	v, ok := r.f[field]
	if !ok || string(v) == "null" {
		if required {
			r.problem(field, "required")
		}
		return "", false
	}
	var s string
	if v[0] != '"' || json.Unmarshal(v, &s) != nil {
		r.problem(field, "must be a string, got %s", rawKind(v))
		return "", false
	}
	return s, true
}

// boolean returns a boolean field; the strings "true" and "false" count
// (EMQX reads them with any_to_atom). ok is false after a problem.
func (r *record) boolean(field string) (v, present, ok bool) {
	raw, found := r.f[field]
	if !found || string(raw) == "null" {
		return false, false, true
	}
	switch string(raw) {
	case "true", `"true"`:
		return true, true, true
	case "false", `"false"`:
		return false, true, true
	}
	r.problem(field, "must be true or false, got %s", rawKind(raw))
	return false, true, false
}

// integer returns an integer field. null, or a string naming "no value"
// in EMQX ("undefined", "infinity"), count as absent.
func (r *record) integer(field string) (v int64, present, ok bool) {
	raw, found := r.f[field]
	if !found {
		return 0, false, true
	}
	switch string(raw) {
	case "null", `"undefined"`, `"infinity"`, `""`:
		return 0, false, true
	}
	if raw[0] == '"' || raw[0] == '{' || raw[0] == '[' || raw[0] == 't' || raw[0] == 'f' {
		r.problem(field, "must be an integer, got %s", rawKind(raw))
		return 0, true, false
	}
	if i, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return i, true, true
	}
	if f, err := strconv.ParseFloat(string(raw), 64); err == nil && f == float64(int64(f)) && f < 1<<62 && f > -(1<<62) {
		return int64(f), true, true
	}
	r.problem(field, "must be an integer, got %s", raw)
	return 0, true, false
}

// epoch reads an integer field holding a time since the Unix epoch in
// unit (time.Second or time.Millisecond). Absent: the zero time. Times
// before 1970 or after 9999 (which a JSON time cannot carry) are
// problems.
func (r *record) epoch(field string, unit time.Duration) (time.Time, bool) {
	v, present, ok := r.integer(field)
	if !ok || !present {
		return time.Time{}, ok
	}
	max := int64(253402300799) // 9999-12-31T23:59:59Z
	if unit == time.Millisecond {
		max = max*1000 + 999
	}
	if v < 0 || v > max {
		r.problem(field, "%d is out of range for a time in %s since 1970", v, map[time.Duration]string{time.Second: "seconds", time.Millisecond: "milliseconds"}[unit])
		return time.Time{}, false
	}
	if unit == time.Millisecond {
		return time.UnixMilli(v).UTC(), true
	}
	return time.Unix(v, 0).UTC(), true
}

// Identifier checks, as the REST API applies them (internal/api's
// validID): not empty, at most 65535 bytes of UTF-8 without NUL.
const maxIDLen = 65535

func checkID(id string) string {
	switch {
	case id == "":
		return "must not be empty"
	case len(id) > maxIDLen:
		return fmt.Sprintf("longer than %d bytes", maxIDLen)
	case strings.IndexByte(id, 0) >= 0:
		return "contains a NUL character"
	case !utf8.ValidString(id):
		return "not valid UTF-8"
	}
	return ""
}

// canonicalPeerhost returns the one spelling of an IP address or CIDR
// block under which Roost stores its ban, as the REST API does
// (internal/api's canonicalPeerhost): IPv4-mapped addresses unmapped,
// blocks masked; zones refused.
func canonicalPeerhost(v string) (string, error) {
	p, err := broker.ParsePeerhost(v)
	if err != nil {
		return "", err
	}
	if !strings.Contains(v, "/") {
		if a, err := netip.ParseAddr(v); err == nil && a.Zone() != "" {
			return "", fmt.Errorf("an IP address with a zone (%q) cannot be banned", v)
		}
		return p.Addr().String(), nil
	}
	return p.String(), nil
}

// userRecord, aclRecord and banRecord build the backup.Record of a
// store record.
func userRecord(u *store.User) backup.Record {
	return backup.Record{Table: store.TableUsers, Key: store.UserKey(u.Kind, u.ID), Value: u}
}

func aclRecord(a *store.ACLRule) backup.Record {
	return backup.Record{Table: store.TableACL, Value: a}
}

func banRecord(b *store.Ban) backup.Record {
	return backup.Record{Table: store.TableBanned, Key: store.BanKey(b.Kind, b.Value), Value: b}
}

// setRawSalt stores a binary salt in a user record the way authn.Hash
// reads it ([]byte(u.Salt)): the raw bytes as a Go string. All binary
// salts of this package go through here.
func setRawSalt(u *store.User, salt []byte) { u.Salt = string(salt) }

// survivesStorage reports whether u's salt and hash come back unchanged
// from the store's encoding of a record (JSON). encoding/json replaces
// bytes that are not UTF-8 with U+FFFD, so a binary salt stored as a Go
// string is silently corrupted and the user could never log in again;
// such records are reported instead of imported.
func survivesStorage(u *store.User) bool {
	b, err := json.Marshal(u)
	if err != nil {
		return false
	}
	var back store.User
	if json.Unmarshal(b, &back) != nil {
		return false
	}
	return back.Salt == u.Salt && back.PasswordHash == u.PasswordHash
}

// placeholderProblem explains a topic containing "${", which Roost reads
// as a placeholder while the source broker read it literally.
func placeholderProblem(topic string) string {
	if strings.Contains(topic, "${") {
		return "contains \"${\", which Roost reads as a placeholder (${username}, ${clientid}) but the source broker matched literally"
	}
	return ""
}

// quoteList renders up to max names for a note, then "and N more".
func quoteList(names []string, max int) string {
	var b strings.Builder
	for i, n := range names {
		if i == max {
			fmt.Fprintf(&b, " and %d more", len(names)-max)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(n))
	}
	return b.String()
}
