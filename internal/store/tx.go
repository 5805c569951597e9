package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"
)

// Tx is a consistent read-only view of every table.
type Tx struct{ tx *bolt.Tx }

// View runs fn on a consistent snapshot of the local state. Values passed
// to fn are valid only inside it: copy what you keep.
func (s *Store) View(fn func(tx *Tx) error) error {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	return s.fsm.db.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// AppliedIndex is the raft index this view reflects.
func (t *Tx) AppliedIndex() uint64 {
	i, _ := readApplied(t.tx)
	return i
}

// AppliedTerm is the raft term of the entry at AppliedIndex.
func (t *Tx) AppliedTerm() uint64 {
	_, term := readApplied(t.tx)
	return term
}

func (t *Tx) bucket(table string) (*bolt.Bucket, error) {
	b := t.tx.Bucket([]byte(table))
	if b == nil {
		return nil, fmt.Errorf("store: unknown table %q", table)
	}
	return b, nil
}

// Get returns the raw value of key, or nil.
func (t *Tx) Get(table, key string) []byte {
	b, err := t.bucket(table)
	if err != nil {
		return nil
	}
	return b.Get([]byte(key))
}

// ForEach calls fn for each record of table in key order.
func (t *Tx) ForEach(table string, fn func(key string, val []byte) error) error {
	b, err := t.bucket(table)
	if err != nil {
		return err
	}
	return b.ForEach(func(k, v []byte) error { return fn(string(k), v) })
}

// Seek calls fn for records with keys >= from in key order until fn
// returns false or an error: pagination without a full scan.
func (t *Tx) Seek(table, from string, fn func(key string, val []byte) (bool, error)) error {
	b, err := t.bucket(table)
	if err != nil {
		return err
	}
	c := b.Cursor()
	for k, v := c.Seek([]byte(from)); k != nil; k, v = c.Next() {
		more, err := fn(string(k), v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// Count returns the number of records in table.
func (t *Tx) Count(table string) int {
	b, err := t.bucket(table)
	if err != nil {
		return 0
	}
	return b.Stats().KeyN
}

// WriteTo writes the whole state (a bbolt file) as of this view.
func (t *Tx) WriteTo(w io.Writer) (int64, error) { return t.tx.WriteTo(w) }

// Get decodes the record under key. ok is false when it is absent.
func Get[T any](tx *Tx, table, key string) (rec T, ok bool, err error) {
	v := tx.Get(table, key)
	if v == nil {
		return rec, false, nil
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, false, fmt.Errorf("store: decode %s/%s: %w", table, key, err)
	}
	return rec, true, nil
}

// List decodes every record of table, in key order.
func List[T any](tx *Tx, table string) ([]T, error) {
	var out []T
	err := tx.ForEach(table, func(key string, val []byte) error {
		var rec T
		if err := json.Unmarshal(val, &rec); err != nil {
			return fmt.Errorf("store: decode %s/%s: %w", table, key, err)
		}
		out = append(out, rec)
		return nil
	})
	return out, err
}

// TableDigest identifies a table's exact content.
type TableDigest struct {
	Table  string `json:"table"`
	Count  int    `json:"count"`
	SHA256 string `json:"sha256"`
}

// Digest returns, per table, the record count and a sha256 over every
// key and value in key order. Two nodes with equal digests hold the same
// data; the raft index says as of when.
func (s *Store) Digest() (index uint64, tables []TableDigest, err error) {
	err = s.View(func(tx *Tx) error {
		index = tx.AppliedIndex()
		for _, name := range Tables {
			h := sha256.New()
			n := 0
			var lb [binary.MaxVarintLen64]byte
			err := tx.ForEach(name, func(k string, v []byte) error {
				h.Write(lb[:binary.PutUvarint(lb[:], uint64(len(k)))])
				io.WriteString(h, k)
				h.Write(lb[:binary.PutUvarint(lb[:], uint64(len(v)))])
				h.Write(v)
				n++
				return nil
			})
			if err != nil {
				return err
			}
			tables = append(tables, TableDigest{Table: name, Count: n, SHA256: hex.EncodeToString(h.Sum(nil))})
		}
		return nil
	})
	return index, tables, err
}
