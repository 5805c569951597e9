package archive

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"filippo.io/age"
)

// benchSources writes ~256 MiB of database-like data (see
// fillSemiCompressible) under a temporary directory: eight 32 MiB stores
// and a few small files, as a node's data dir might hold.
func benchSources(b *testing.B) (string, []testFile) {
	b.Helper()
	rng := rand.New(rand.NewPCG(42, 42))
	var files []testFile
	for i := range 8 {
		data := make([]byte, 32<<20)
		fillSemiCompressible(rng, data)
		files = append(files, testFile{path: "data/store/" + string(rune('a'+i)) + ".db", mode: 0o600, data: data})
	}
	files = append(files,
		testFile{"data/node.json", 0o600, []byte(`{"node":"n1"}`)},
		testFile{"config/roost.conf", 0o644, []byte("node = \"n1\"\n")},
	)
	dir := writeSources(b, files)
	for i := range files {
		files[i].data = nil // only sizes from here on; the bytes are on disk
	}
	return dir, files
}

// countingWriter is io.Discard that counts, for the compression ratio.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// BenchmarkWrite backs up the files from disk (page cache) to nowhere.
// The tar-zstd case is the yardstick: tar -cf - | zstd -3 on the same dir.
func BenchmarkWrite(b *testing.B) {
	dir, files := benchSources(b)
	var total int64
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(dir, f.path))
		if err != nil {
			b.Fatal(err)
		}
		total += fi.Size()
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}

	run := func(b *testing.B, opts WriteOptions) {
		b.SetBytes(total)
		var out countingWriter
		for b.Loop() {
			out.n = 0
			w, err := NewWriter(&out, opts)
			if err != nil {
				b.Fatal(err)
			}
			for _, f := range files {
				if err := addFromDisk(w, dir, f.path); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(sampleManifest()); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(total)/float64(out.n), "ratio")
	}
	b.Run("plain", func(b *testing.B) { run(b, WriteOptions{}) })
	b.Run("age", func(b *testing.B) { run(b, WriteOptions{Recipients: []string{id.Recipient().String()}}) })
	b.Run("tar-zstd-cli", func(b *testing.B) {
		if _, err := exec.LookPath("zstd"); err != nil {
			b.Skip("zstd not installed")
		}
		b.SetBytes(total)
		for b.Loop() {
			cmd := exec.Command("sh", "-c", `tar -cf - -C "$1" . | zstd -q -3 -c > /dev/null`, "sh", dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
	})
}

func addFromDisk(w *Writer, dir, name string) error {
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return w.AddFile(name, fi.Mode(), fi.Size(), fi.ModTime(), f)
}
