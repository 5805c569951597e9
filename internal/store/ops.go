package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// OpType says what an Op does to its table.
type OpType byte

const (
	OpPut    OpType = 1 // set Key to Value
	OpDelete OpType = 2 // remove Key (no error if absent)
	OpAppend OpType = 3 // add Value under the table's next sequence number; its "id" field is set to it
	OpClear  OpType = 4 // remove every record of Table

	// Staging of imports (stage.go): records are staged over many raft
	// entries and committed to the tables in one.
	OpStageBegin  OpType = 5 // Key: stage id; Value: JSON StageInfo. Creates the stage
	OpStagePut    OpType = 6 // Key: stage id; Table: the table; Value: packed records (StagePut)
	OpStageCommit OpType = 7 // Key: stage id; Value: JSON CommitSpec. Applies the stage in one step
	OpStageAbort  OpType = 8 // Key: stage id. Removes the stage (nothing if absent)
	OpSync        OpType = 9 // changes nothing: a write barrier (SyncPoint)
)

func (t OpType) String() string {
	switch t {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpAppend:
		return "append"
	case OpClear:
		return "clear"
	case OpStageBegin, OpStagePut, OpStageCommit, OpStageAbort, OpSync:
		return stageOpName(t)
	}
	return fmt.Sprintf("op(%d)", byte(t))
}

// Op is one change to a replicated table. Ops are applied in order, and all
// ops of one Apply call commit in the same raft entry and bbolt transaction.
type Op struct {
	Type  OpType
	Table string
	Key   string
	Value []byte
}

// Change is what an observer sees after a commit: the op as applied, with
// the key an OpAppend was given. A Reset change (Table == "") means the
// whole state was replaced (snapshot restore): reload everything.
type Change struct {
	Type  OpType
	Table string
	Key   string
	Value []byte
	Index uint64 // raft index of the entry
}

// Reset reports whether the change replaces the whole state.
func (c Change) Reset() bool { return c.Table == "" }

// Put encodes rec as JSON and returns the op storing it under key.
func Put(table, key string, rec any) (Op, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return Op{}, fmt.Errorf("encode %s record %q: %w", table, key, err)
	}
	return Op{Type: OpPut, Table: table, Key: key, Value: b}, nil
}

// Append encodes rec as JSON and returns the op adding it under the
// table's next sequence number.
func Append(table string, rec any) (Op, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return Op{}, fmt.Errorf("encode %s record: %w", table, err)
	}
	return Op{Type: OpAppend, Table: table, Value: b}, nil
}

// Delete returns the op removing key from table.
func Delete(table, key string) Op { return Op{Type: OpDelete, Table: table, Key: key} }

// Clear returns the op emptying table.
func Clear(table string) Op { return Op{Type: OpClear, Table: table} }

// commandVersion prefixes every encoded raft command so the encoding can
// change without breaking old logs.
const commandVersion = 1

// encodeOps packs ops into one raft log entry:
// version byte, uvarint count, then per op: type byte and three
// uvarint-length-prefixed byte strings (table, key, value).
func encodeOps(ops []Op) []byte {
	n := 1 + binary.MaxVarintLen64
	for _, op := range ops {
		n += 1 + 3*binary.MaxVarintLen64 + len(op.Table) + len(op.Key) + len(op.Value)
	}
	b := make([]byte, 0, n)
	b = append(b, commandVersion)
	b = binary.AppendUvarint(b, uint64(len(ops)))
	for _, op := range ops {
		b = append(b, byte(op.Type))
		b = binary.AppendUvarint(b, uint64(len(op.Table)))
		b = append(b, op.Table...)
		b = binary.AppendUvarint(b, uint64(len(op.Key)))
		b = append(b, op.Key...)
		b = binary.AppendUvarint(b, uint64(len(op.Value)))
		b = append(b, op.Value...)
	}
	return b
}

var errBadCommand = errors.New("malformed store command")

func decodeOps(b []byte) ([]Op, error) {
	if len(b) < 1 || b[0] != commandVersion {
		return nil, fmt.Errorf("%w: unknown version", errBadCommand)
	}
	b = b[1:]
	count, n := binary.Uvarint(b)
	if n <= 0 || count > uint64(len(b)) {
		return nil, fmt.Errorf("%w: bad op count", errBadCommand)
	}
	b = b[n:]
	ops := make([]Op, 0, count)
	readBytes := func() ([]byte, error) {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return nil, errBadCommand
		}
		v := b[n : n+int(l)]
		b = b[n+int(l):]
		return v, nil
	}
	for i := uint64(0); i < count; i++ {
		if len(b) < 1 {
			return nil, fmt.Errorf("%w: truncated", errBadCommand)
		}
		op := Op{Type: OpType(b[0])}
		b = b[1:]
		table, err := readBytes()
		if err != nil {
			return nil, err
		}
		key, err := readBytes()
		if err != nil {
			return nil, err
		}
		val, err := readBytes()
		if err != nil {
			return nil, err
		}
		op.Table, op.Key, op.Value = string(table), string(key), val
		ops = append(ops, op)
	}
	return ops, nil
}
