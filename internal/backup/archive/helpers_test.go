package archive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// testFile is one file of a test backup, as it sits on the source disk.
type testFile struct {
	path string // slash path in the archive and below the source dir
	mode os.FileMode
	data []byte
}

// sampleFiles is a node's data dir and config in miniature: a few-MB
// store, an empty file, nested directories, a group/world-writable mode.
func sampleFiles(seed uint64) []testFile { return sampleFilesSized(seed, 3<<20+12345) }

// smallFiles is sampleFiles with a 400 KiB store, for tests that read a
// backup hundreds of times (still several zstd blocks and age chunks).
func smallFiles(seed uint64) []testFile { return sampleFilesSized(seed, 400<<10+7) }

func sampleFilesSized(seed uint64, storeSize int) []testFile {
	rng := rand.New(rand.NewPCG(seed, 1))
	store := make([]byte, storeSize)
	fillSemiCompressible(rng, store)
	sessions := make([]byte, 200<<10)
	for i := range sessions {
		sessions[i] = byte(rng.Uint32())
	}
	return []testFile{
		{"data/node.json", 0o600, []byte(`{"node":"n1","id":"7f3a"}` + "\n")},
		{"data/store.db", 0o600, store},
		{"data/sessions.db", 0o600, sessions},
		{"data/cookie", 0o400, []byte("s3cr3t-cookie-value")},
		{"data/empty.lock", 0o644, nil},
		{"config/roost.conf", 0o666, []byte("node = \"n1\"\n")},
		{"config/certs/server.pem", 0o644, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")},
	}
}

// fillSemiCompressible fills p with something like database pages: text
// records with numbers in them, and now and then a random run (keys,
// hashes, binary payloads). zstd -3 shrinks it about 3.3 times.
func fillSemiCompressible(rng *rand.Rand, p []byte) {
	words := []string{"topic", "sensors/", "temperature", "client-", "session", "retained", "qos", "payload", "{\"v\":", "},", "\x00\x00\x00\x01"}
	for i := 0; i < len(p); {
		switch rng.IntN(48) {
		case 0, 1:
			end := min(i+48, len(p))
			for ; i < end; i++ {
				p[i] = byte(rng.Uint32())
			}
			continue
		case 2: // a page's free space
			end := min(i+256, len(p))
			clear(p[i:end])
			i = end
			continue
		}
		w := words[rng.IntN(len(words))]
		i += copy(p[i:], w)
		for range 2 {
			if i < len(p) {
				p[i] = byte('0' + rng.IntN(10))
				i++
			}
		}
	}
}

// writeSources puts files under a fresh directory and returns it.
func writeSources(t testing.TB, files []testFile) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	return dir
}

func sampleManifest() Manifest {
	return Manifest{
		Node:         "n1",
		NodeID:       "7f3a",
		ClusterID:    "c-42",
		RoostVersion: "0.9.0-test",
		CreatedAt:    time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC),
		Raft: RaftState{
			Index: 1234, Term: 7, ConfigurationIndex: 12,
			Servers: []RaftServer{
				{ID: "n1", Address: "127.0.0.1:7001", Suffrage: "Voter"},
				{ID: "n2", Address: "127.0.0.1:7002", Suffrage: "Voter"},
			},
			CurrentTerm: 7, LastVoteTerm: 7, LastVoteCand: "n1",
		},
		Tables:    map[string]int{"retained": 10, "acl": 2},
		ConfigDir: "/etc/roost",
	}
}

// backupFile writes a backup of files (read from srcDir) to a file on disk
// and returns its path.
func backupFile(t testing.TB, srcDir string, files []testFile, opts WriteOptions) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "node.backup")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := NewWriter(f, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, tf := range files {
		src, err := os.Open(filepath.Join(srcDir, filepath.FromSlash(tf.path)))
		if err != nil {
			t.Fatal(err)
		}
		fi, err := src.Stat()
		if err != nil {
			t.Fatal(err)
		}
		err = w.AddFile(tf.path, fi.Mode(), fi.Size(), fi.ModTime(), src)
		src.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(sampleManifest()); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// backupBytes writes a backup of in-memory files and returns it.
func backupBytes(t testing.TB, files []testFile, opts WriteOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := w.AddFile(f.path, f.mode, int64(len(f.data)), time.Unix(1700000000, 0), bytes.NewReader(f.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(sampleManifest()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sum(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// rawEntry is a tar entry written as is, to craft archives the Writer
// refuses to make.
type rawEntry struct {
	hdr  tar.Header
	data []byte
}

func reg(name string, data []byte) rawEntry {
	return rawEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o600, Size: int64(len(data))}, data: data}
}

// manifestEntry is the MANIFEST.json entry for m.
func manifestEntry(t testing.TB, m Manifest) rawEntry {
	t.Helper()
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return reg(ManifestName, data)
}

// manifestFor is a valid manifest for the regular entries given.
func manifestFor(entries ...rawEntry) Manifest {
	m := sampleManifest()
	m.Format, m.FormatVersion = FormatName, FormatVersion
	m.Files = []FileEntry{}
	for _, e := range entries {
		m.Files = append(m.Files, FileEntry{Path: e.hdr.Name, Size: int64(len(e.data)), Mode: uint32(e.hdr.Mode), SHA256: sum(e.data)})
	}
	return m
}

// craft builds zstd(tar(entries)) by hand, then appends trailer.
func craft(t testing.TB, entries []rawEntry, trailer []byte) []byte {
	t.Helper()
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	for _, e := range entries {
		hdr := e.hdr
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	tarBuf.Write(trailer)
	return zstdBytes(t, tarBuf.Bytes())
}

func zstdBytes(t testing.TB, data []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(data, nil)
}
