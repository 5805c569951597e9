package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync/atomic"

	"github.com/roostmq/roost/internal/store"
)

// Input formats of an import.
const (
	FormatAuto            = "auto"
	FormatRoost           = "roost"
	FormatEMQX4           = "emqx4"
	FormatMosquittoDynsec = "mosquitto-dynsec"
)

// Formats lists the names --format accepts.
func Formats() []string {
	return []string{FormatAuto, FormatRoost, FormatEMQX4, FormatMosquittoDynsec}
}

// ForeignOptions tune the foreign-format readers.
type ForeignOptions struct {
	// EMQXAuthAs says whether pre-4.3 EMQX auth_mnesia logins are
	// usernames or client ids (EMQX's auth.mnesia.as): username | clientid.
	EMQXAuthAs string
}

// ForeignReader reads a foreign-format file (already decompressed) into
// a Dataset. internal/backup/foreign provides them; the node registers
// them with Options.Foreign, so this package does not depend on it.
type ForeignReader func(r io.Reader, opts ForeignOptions) (*Dataset, error)

// sourceInfo is what an input says about itself besides its records.
type sourceInfo struct {
	Format      string
	Version     int
	Header      *Header  // roost-export only
	Sections    []string // the tables the input holds, even empty ones
	ConfigFiles []ConfigFile
	Sessions    *Sessions
	Skipped     []string
	Notes       []string
}

// A source is one input of the importer: a roost-export file or a
// Dataset of a foreign reader. scan calls fn for every record in input
// order; what is wrong with the input itself goes to p. Scanning twice
// yields the same records (the importer validates in one pass and
// stages in a second one).
type source interface {
	scan(ctx context.Context, p *problems, fn recordFunc) (*sourceInfo, error)
	// position is how far the current scan has read, of how much (bytes).
	position() (done, total int64)
	// settle returns the Record.Settle of the record of table under
	// key, or nil. Call it only for records scan has passed on.
	settle(table, key string) func([]byte) any
}

type settlers map[[2]string]func([]byte) any

// settlersOf indexes the Settle functions of a Dataset by table and key.
func settlersOf(ds *Dataset) settlers {
	var m settlers
	for _, r := range ds.Records {
		if r.Settle == nil {
			continue
		}
		if m == nil {
			m = settlers{}
		}
		m[[2]string{r.Table, r.Key}] = r.Settle
	}
	return m
}

// fileSource is an import file in the backup dir.
type fileSource struct {
	path     string
	format   string // roost | emqx4 | mosquitto-dynsec (auto resolved)
	foreign  ForeignReader
	fopts    ForeignOptions
	ds       *Dataset // a foreign file, read once
	dsSettle settlers
	dsErr    string
	cr       atomic.Pointer[countingReader]
	size     atomic.Int64
}

func (s *fileSource) position() (int64, int64) {
	cr := s.cr.Load()
	if cr == nil {
		return 0, s.size.Load()
	}
	return cr.n.Load(), s.size.Load()
}

func (s *fileSource) open() (io.Reader, func(), error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", s.path, err)
	}
	if fi, err := f.Stat(); err == nil {
		s.size.Store(fi.Size())
	}
	cr := &countingReader{r: f}
	s.cr.Store(cr)
	r, closeZ, err := decompress(cr)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return r, func() { closeZ(); f.Close() }, nil
}

func (s *fileSource) scan(ctx context.Context, p *problems, fn recordFunc) (*sourceInfo, error) {
	if s.format != FormatRoost {
		if s.ds == nil && s.dsErr == "" {
			r, done, err := s.open()
			if err != nil {
				p.stop("%v", err)
				return &sourceInfo{Format: s.format}, nil
			}
			ds, err := s.foreign(r, s.fopts)
			done()
			if err != nil {
				s.dsErr = fmt.Sprintf("not a valid %s file: %v", s.format, err)
			} else if ds == nil {
				s.dsErr = fmt.Sprintf("the %s reader returned nothing", s.format)
			}
			s.ds = ds
			if ds != nil {
				s.dsSettle = settlersOf(ds)
			}
		}
		if s.dsErr != "" {
			p.stop("%s", s.dsErr)
			return &sourceInfo{Format: s.format}, nil
		}
		ds := &datasetSource{ds: s.ds, format: s.format, settlers: s.dsSettle}
		return ds.scan(ctx, p, fn)
	}
	r, done, err := s.open()
	if err != nil {
		p.stop("%v", err)
		return &sourceInfo{Format: FormatRoost}, nil
	}
	defer done()
	info, err := readExport(ctx, r, p, fn)
	if err != nil {
		return nil, err
	}
	h := info.Header
	si := &sourceInfo{Format: FormatRoost, Version: h.Version, Header: &h, Sections: info.Sections,
		ConfigFiles: info.ConfigFiles, Sessions: info.Sessions}
	if info.Sessions != nil {
		si.Notes = append(si.Notes, fmt.Sprintf("the file holds the persistent sessions of node %s (%d bytes): they are node-local and not imported", info.Sessions.Node, info.Sessions.Size))
	}
	return si, nil
}

// settle is set only for a foreign file: the records of a roost-export
// are imported as they are. (s.dsSettle is written before scan passes on
// the first record, so a caller of settle sees it.)
func (s *fileSource) settle(table, key string) func([]byte) any {
	return s.dsSettle[[2]string{table, key}]
}

// datasetSource is the records of a foreign reader.
type datasetSource struct {
	ds       *Dataset
	format   string
	settlers settlers // settlersOf(ds)
	done     atomic.Int64
}

func (s *datasetSource) settle(table, key string) func([]byte) any {
	return s.settlers[[2]string{table, key}]
}

func (s *datasetSource) position() (int64, int64) { return s.done.Load(), int64(len(s.ds.Records)) }

func (s *datasetSource) scan(ctx context.Context, p *problems, fn recordFunc) (*sourceInfo, error) {
	for _, pr := range s.ds.Problems {
		p.add(pr.Table, pr.Record, pr.Field, "%s", pr.Msg)
	}
	info := &sourceInfo{Format: s.format, Skipped: s.ds.Skipped, Notes: s.ds.Notes}
	nums := map[string]int{}
	s.done.Store(0)
	for i, r := range s.ds.Records {
		s.done.Store(int64(i + 1))
		if !slices.Contains(store.Tables, r.Table) {
			p.add(r.Table, 0, "", "unknown table (this roost has %v)", store.Tables)
			continue
		}
		nums[r.Table]++
		raw, err := marshalRecord(r.Value)
		if err != nil {
			p.add(r.Table, nums[r.Table], "", "cannot encode the record: %v", err)
			continue
		}
		if err := fn(r.Table, nums[r.Table], raw); err != nil {
			return nil, err
		}
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
	for _, t := range store.Tables {
		if nums[t] > 0 {
			info.Sections = append(info.Sections, t)
		}
	}
	return info, nil
}

// marshalRecord encodes a Dataset value as the store encodes it, filling
// the record version and a ban's canonical peerhost.
func marshalRecord(v any) ([]byte, error) {
	switch r := v.(type) {
	case store.User:
		return marshalRecord(&r)
	case store.ACLRule:
		return marshalRecord(&r)
	case store.Ban:
		return marshalRecord(&r)
	case store.Retained:
		return marshalRecord(&r)
	case store.APIKey:
		return marshalRecord(&r)
	case store.Admin:
		return marshalRecord(&r)
	case store.ConfigOverride:
		return marshalRecord(&r)
	case *store.User:
		r.V = max(r.V, store.RecordVersion)
	case *store.ACLRule:
		r.V = max(r.V, store.RecordVersion)
	case *store.Ban:
		r.V = max(r.V, store.RecordVersion)
		if r.Kind == store.KindPeerhost {
			if c, err := CanonicalPeerhost(r.Value); err == nil {
				r.Value = c
			}
		}
	case *store.Retained:
		r.V = max(r.V, store.RecordVersion)
	case *store.APIKey:
		r.V = max(r.V, store.RecordVersion)
	case *store.Admin:
		r.V = max(r.V, store.RecordVersion)
	case *store.ConfigOverride:
		r.V = max(r.V, store.RecordVersion)
	case json.RawMessage:
		return r, nil
	default:
		return nil, fmt.Errorf("unsupported record type %T", v)
	}
	return json.Marshal(v)
}

// detectFormat names the format of the file at path from its first
// bytes: a roost-export by its "format" member, the foreign formats by
// their characteristic members. The error is a problem for the report.
func detectFormat(path string, foreign func([]byte) string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	r, done, err := decompress(f)
	if err != nil {
		return "", err
	}
	defer done()
	prefix := make([]byte, 64<<10)
	n, err := io.ReadFull(r, prefix)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	whole := n < len(prefix) // the file is shorter than the prefix
	prefix = prefix[:n]
	trimmed := bytes.TrimSpace(prefix)
	if len(trimmed) == 0 {
		return "", errors.New("the file is empty")
	}
	if trimmed[0] != '{' {
		var v any
		if err := json.Unmarshal(trimmed, &v); err != nil && whole {
			return "", fmt.Errorf("not JSON: %v", err)
		}
		return "", errors.New("not an export file: the document is not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if _, err := dec.Token(); err == nil {
		if tok, err := dec.Token(); err == nil && tok == "format" {
			var name string
			if dec.Decode(&name) == nil {
				if name == FormatName {
					return FormatRoost, nil
				}
				return "", fmt.Errorf("not a roost-export file (format %q)", name)
			}
		} else if err != nil && whole {
			var syn *json.SyntaxError
			if errors.As(err, &syn) {
				return "", fmt.Errorf("not JSON: %v", err)
			}
		}
	}
	has := func(member string) bool { return bytes.Contains(prefix, []byte(`"`+member+`"`)) }
	if has("format") && bytes.Contains(prefix, []byte(FormatName)) {
		return FormatRoost, nil
	}
	if foreign != nil {
		if f := foreign(prefix); f != "" {
			return f, nil
		}
	}
	switch {
	case has("defaultACLAccess") || (has("clients") && has("roles")):
		return FormatMosquittoDynsec, nil
	case has("auth_mnesia") || has("acl_mnesia") || (has("rules") && has("resources")) || (has("apps") && has("blacklist")):
		return FormatEMQX4, nil
	}
	return "", fmt.Errorf("not a file this roost recognises (a roost-export, an EMQX 4.x export or a Mosquitto dynamic-security file): give --format if it is one")
}
