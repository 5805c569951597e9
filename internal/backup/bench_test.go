package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roostmq/roost/internal/store"
)

// TestMeasureExportImport measures export and import of many users on
// a one-node store (ROOST_MEASURE_USERS=N to run; N=100000 or 1000000):
// records/s and the process's peak RSS.
func TestMeasureExportImport(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ROOST_MEASURE_USERS"))
	if n == 0 {
		t.Skip("set ROOST_MEASURE_USERS=N to measure")
	}
	ctx := context.Background()
	src := openStore(t)
	hash := strings.Repeat("ab", 32)
	for i := 0; i < n; i += 5000 {
		var ops []store.Op
		for j := i; j < min(i+5000, n); j++ {
			u := store.User{V: 1, Kind: "username", ID: fmt.Sprintf("user-%07d", j), PasswordHash: hash, Salt: "0123456789abcdef",
				Algorithm: "sha256", SaltPosition: "prefix", CreatedAt: time.Now().UTC()}
			ops = append(ops, put(t, store.TableUsers, store.UserKey(u.Kind, u.ID), u))
		}
		apply(t, src, ops...)
	}
	runtime.GC()
	t.Logf("filled %d users; %s", n, rss())
	m := newManager(t, src, "a")
	start := time.Now()
	f, err := m.Export(ctx, ExportRequest{})
	if err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	t.Logf("export: %d records in %s = %.0f records/s, %d bytes gzip; %s", f.Records, d.Round(time.Millisecond), float64(f.Records)/d.Seconds(), f.Size, rss())

	dst := openStore(t)
	md := newManager(t, dst, "b")
	os.MkdirAll(md.Dir(), 0o700)
	if err := os.Rename(f.Path, md.Dir()+"/in.json.gz"); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	var phases []string
	seen := map[string]bool{}
	rep, err := md.Import(ctx, ImportRequest{Filename: "in.json.gz", ImportOptions: ImportOptions{Privileged: true, Progress: func(p Progress) {
		if !seen[p.Phase] {
			seen[p.Phase] = true
			phases = append(phases, fmt.Sprintf("%s from %s", p.Phase, time.Since(start).Round(time.Millisecond)))
		}
	}}})
	if err != nil {
		t.Fatal(err)
	}
	d = time.Since(start)
	t.Logf("phases: %v", phases)
	t.Logf("import into empty: %d records in %s = %.0f records/s; %s", rep.Records, d.Round(time.Millisecond), float64(rep.Records)/d.Seconds(), rss())
	start = time.Now()
	rep, err = md.Import(ctx, ImportRequest{Filename: "in.json.gz", ImportOptions: ImportOptions{Privileged: true}})
	if err != nil {
		t.Fatal(err)
	}
	d = time.Since(start)
	t.Logf("import again (merge, all unchanged): %d records in %s = %.0f records/s; %s", rep.Records, d.Round(time.Millisecond), float64(rep.Records)/d.Seconds(), rss())
	if digest(t, src) != digest(t, dst) {
		t.Fatal("digests differ")
	}
}

func rss() string {
	b, _ := os.ReadFile("/proc/self/status")
	f := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			f[k] = strings.TrimSpace(v)
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return fmt.Sprintf("RSS %s (peak %s; anon %s, file %s); Go heap in use %d MB, from the OS %d MB",
		f["VmRSS"], f["VmHWM"], f["RssAnon"], f["RssFile"], ms.HeapInuse>>20, ms.HeapSys>>20)
}

func BenchmarkCheckUser(b *testing.B) {
	raw := []byte(goodUser)
	p := &problems{}
	for b.Loop() {
		checkRecord("users", 1, raw, p)
	}
}

func BenchmarkUnmarshalUser(b *testing.B) {
	raw := []byte(goodUser)
	for b.Loop() {
		var u userRecord
		json.Unmarshal(raw, &u)
	}
}

func BenchmarkReadExport(b *testing.B) {
	var recs []string
	for range 10000 {
		recs = append(recs, goodUser)
	}
	doc := document(header1, [][2]any{{"users", recs}}, nil)
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		p := &problems{}
		readExport(context.Background(), bytes.NewReader(doc), p, func(string, int, []byte) error { return nil })
	}
}
