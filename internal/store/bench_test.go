package store

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/hashicorp/raft"
)

// BenchmarkFSMApplyPuts is the CPU of the FSM alone (no fsync): entries
// of 1024 retained puts, half new keys, half replacing ones. Not run in
// CI; compare two builds with -bench FSMApplyPuts -benchtime 3000x.
func BenchmarkFSMApplyPuts(b *testing.B) {
	f, err := newFSM(b.TempDir()+"/s.db", slog.New(slog.DiscardHandler), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer f.close()
	f.db.NoSync = true
	val := []byte(`{"v":1,"topic":"x","payload":"aGVsbG8gd29ybGQ="}`)
	logs := make([][]*raft.Log, b.N)
	for i := range logs {
		ops := make([]Op, 1024)
		for j := range ops {
			ops[j] = Op{Type: OpPut, Table: TableRetained, Key: fmt.Sprintf("t/%08d", (i*512+j)%(1<<20)), Value: val}
		}
		logs[i] = []*raft.Log{{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: encodeOps(ops)}}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.ApplyBatch(logs[i])
	}
}
