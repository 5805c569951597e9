package backup

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"

	"github.com/roostmq/roost/internal/store"
)

// ExportOptions say what an export holds besides the tables.
type ExportOptions struct {
	Header Header   // Format and Version are filled by WriteExport
	Tables []string // the tables to export, in store.Tables order; nil: all
	// ConfigFiles are read and embedded (a missing one is an error).
	ConfigFiles []string
	// Sessions, when set, writes the node's session database; it is
	// embedded as the "sessions" member.
	Sessions func(w io.Writer) (int64, error)
	Progress func(Progress)
}

// ExportResult describes a written export.
type ExportResult struct {
	Header   Header         `json:"header"`
	Counts   map[string]int `json:"counts"`
	Checksum string         `json:"checksum"`
	Bytes    int64          `json:"bytes"` // uncompressed JSON
}

// WriteExport writes a roost-export document of the tables in tx to w.
// Records are copied one at a time from the read transaction: memory
// stays flat however large the tables are.
func WriteExport(ctx context.Context, w io.Writer, tx *store.Tx, opts ExportOptions) (*ExportResult, error) {
	tables := opts.Tables
	if tables == nil {
		tables = store.Tables
	}
	for _, t := range tables {
		if !slices.Contains(store.Tables, t) {
			return nil, fmt.Errorf("export: unknown table %q (tables: %v)", t, store.Tables)
		}
	}
	h := opts.Header
	h.Format, h.Version = FormatName, FormatVersion
	bw := bufio.NewWriterSize(w, 256<<10)
	cw := &checksumWriter{w: bw, h: sha256.New(), hashing: true}
	res := &ExportResult{Header: h, Counts: map[string]int{}}

	// The header members one by one, so they are in the documented order.
	cw.Write([]byte("{"))
	members := []struct {
		name string
		v    any
	}{
		{"format", h.Format}, {"version", h.Version}, {"roost_version", h.RoostVersion},
		{"cluster_id", h.ClusterID}, {"source_node", h.SourceNode}, {"raft_index", h.RaftIndex},
		{"created_at", h.CreatedAt.UTC()},
	}
	for i, m := range members {
		b, err := json.Marshal(m.v)
		if err != nil {
			return nil, fmt.Errorf("export: encode %s: %w", m.name, err)
		}
		if i > 0 {
			cw.Write([]byte(","))
		}
		cw.Write(jsonName(m.name))
		cw.Write([]byte(":"))
		cw.Write(b)
	}

	var total int64
	for _, t := range tables {
		total += int64(tx.Count(t))
	}
	prog := newProgress(opts.Progress, "export")
	var done int64
	cw.Write([]byte(`,"tables":{`))
	var buf bytes.Buffer
	for ti, t := range tables {
		if ti > 0 {
			cw.Write([]byte(","))
		}
		cw.Write(jsonName(t))
		cw.Write([]byte(":["))
		n := 0
		err := tx.ForEach(t, func(key string, val []byte) error {
			buf.Reset()
			if err := compactInto(&buf, val); err != nil {
				return fmt.Errorf("record %s/%s is not valid JSON: %w", t, key, err)
			}
			if n > 0 {
				cw.Write([]byte(","))
			}
			if _, err := cw.Write(buf.Bytes()); err != nil {
				return err
			}
			n++
			done++
			if done%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
				prog.report(done, total, 0, 0, false)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("export: table %s: %w", t, err)
		}
		cw.Write([]byte("]"))
		res.Counts[t] = n
	}
	cw.Write([]byte("}"))
	prog.report(done, total, 0, 0, true)

	cw.Write([]byte(`,"config_files":[`))
	for i, path := range opts.ConfigFiles {
		cf, err := readConfigFile(path)
		if err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		b, err := json.Marshal(cf)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			cw.Write([]byte(","))
		}
		cw.Write(b)
	}
	cw.Write([]byte("]"))

	if opts.Sessions != nil {
		if err := writeSessions(cw, h.SourceNode, opts.Sessions); err != nil {
			return nil, fmt.Errorf("export: sessions: %w", err)
		}
	}

	counts := make([]byte, 0, 128)
	counts = append(counts, '{')
	for i, t := range tables {
		if i > 0 {
			counts = append(counts, ',')
		}
		counts = append(counts, jsonName(t)...)
		counts = append(counts, ':')
		counts = strconv.AppendInt(counts, int64(res.Counts[t]), 10)
	}
	counts = append(counts, '}')
	cw.Write([]byte(`,"counts":`))
	cw.Write(counts)
	cw.Write([]byte(","))
	cw.hashing = false
	res.Checksum = cw.sum()
	cw.Write([]byte(`"checksum":"` + res.Checksum + "\"}\n"))
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("export: write: %w", err)
	}
	res.Bytes = cw.n
	return res, nil
}

// writeSessions writes the "sessions" member, streaming the session
// database through base64: a spooled temp file keeps memory flat and
// gives the size up front.
func writeSessions(cw *checksumWriter, node string, write func(io.Writer) (int64, error)) error {
	tmp, err := os.CreateTemp("", "roost-sessions-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	size, err := write(tmp)
	if err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	head, _ := json.Marshal(struct {
		Node   string `json:"node"`
		Format string `json:"format"`
		Size   int64  `json:"size"`
	}{node, "bbolt", size})
	cw.Write([]byte(`,"sessions":`))
	cw.Write(head[:len(head)-1]) // without the closing brace
	cw.Write([]byte(`,"content":"`))
	enc := base64.NewEncoder(base64.StdEncoding, cw)
	if _, err := io.Copy(enc, tmp); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err = cw.Write([]byte(`"}`))
	return err
}

func readConfigFile(path string) (ConfigFile, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return ConfigFile{}, fmt.Errorf("config file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return ConfigFile{}, fmt.Errorf("config file %s is not a regular file", path)
	}
	if fi.Size() > maxConfigFile {
		return ConfigFile{}, fmt.Errorf("config file %s is %d bytes, more than the %d a config file may have", path, fi.Size(), maxConfigFile)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ConfigFile{}, fmt.Errorf("config file: %w", err)
	}
	return ConfigFile{Path: path, Mode: fmt.Sprintf("%04o", fi.Mode().Perm()), SHA256: fmt.Sprintf("%x", sha256.Sum256(b)), Content: b}, nil
}

// maxConfigFile bounds one embedded config file (config, certificate).
const maxConfigFile = 8 << 20
