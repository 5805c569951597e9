package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
)

// FuzzReadExport feeds arbitrary bytes to the roost-export reader and
// the record validation of the import pipeline: they must never panic,
// and a document they accept must be valid JSON whose records all
// passed validation. The seed corpus is in testdata/fuzz/FuzzReadExport.
func FuzzReadExport(f *testing.F) {
	f.Add(document(header1, [][2]any{{"users", []string{goodUser}}, {"acl", []string{goodRule}}}, nil))
	f.Add(document(header1, [][2]any{{"banned", []string{goodBan}}, {"retained", []string{goodRet}}, {"config", []string{goodConf}}}, nil))
	f.Add([]byte(`{"format":"roost-export","version":2}`))
	f.Add([]byte(`{"format":"roost-export","version":1,"tables":{"users":[{}]}}`))
	f.Add([]byte(``))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := &problems{}
		pipe := newPipeline(p)
		accepted := 0
		info, err := readExport(context.Background(), bytes.NewReader(data), p, func(table string, num int, raw []byte) error {
			if c, ok := checkRecord(table, num, raw, p); ok {
				if _, _, _, ok := pipe.accept(table, num, raw, c); ok {
					accepted++
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("reader error (not a problem) on in-memory input: %v", err)
		}
		if !p.empty() {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted a document that is not valid JSON: %q", data)
		}
		total := 0
		for _, n := range info.Seen {
			total += n
		}
		if total != accepted {
			t.Fatalf("accepted with %d records read but %d valid", total, accepted)
		}
	})
}
