package backup

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/roostmq/roost/internal/store"
)

// spool keeps the validated records of an import, as they will be
// staged (key and value), in a hidden temp file of the backup dir
// between the validating pass and staging: staging reads them back
// without parsing the input again, and memory stays flat.
type spool struct {
	f   *os.File
	w   *bufio.Writer
	buf []byte
	n   int64
}

func (m *Manager) newSpool() (*spool, error) {
	f, err := m.createTemp(spoolTemp)
	if err != nil {
		return nil, err
	}
	return &spool{f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

// add appends one record: table index, then key and value, each
// length-prefixed.
func (s *spool) add(table, key string, val []byte) error {
	ti := slices.Index(store.Tables, table)
	if ti < 0 {
		return fmt.Errorf("spool: unknown table %q", table)
	}
	s.buf = append(s.buf[:0], byte(ti))
	s.buf = binary.AppendUvarint(s.buf, uint64(len(key)))
	s.buf = append(s.buf, key...)
	s.buf = binary.AppendUvarint(s.buf, uint64(len(val)))
	s.buf = append(s.buf, val...)
	s.n++
	if _, err := s.w.Write(s.buf); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// each calls fn for every record in order; val is valid during the call.
func (s *spool) each(ctx context.Context, fn func(table, key string, val []byte) error) error {
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	r := bufio.NewReaderSize(s.f, 1<<20)
	var key, val []byte
	read := func(dst []byte) ([]byte, error) {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, err
		}
		if n > 1<<30 {
			return nil, errors.New("record too large")
		}
		dst = slices.Grow(dst[:0], int(n))[:n]
		_, err = io.ReadFull(r, dst)
		return dst, err
	}
	for i := int64(0); i < s.n; i++ {
		ti, err := r.ReadByte()
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if key, err = read(key); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if val, err = read(val); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if int(ti) >= len(store.Tables) {
			return fmt.Errorf("spool: bad table index %d", ti)
		}
		if err := fn(store.Tables[ti], string(key), val); err != nil {
			return err
		}
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *spool) remove() {
	s.f.Close()
	os.Remove(s.f.Name())
}
