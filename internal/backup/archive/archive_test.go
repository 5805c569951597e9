package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

// wantManifest is what Close makes of sampleManifest for files.
func wantManifest(files []testFile) Manifest {
	m := sampleManifest()
	m.Format, m.FormatVersion = FormatName, FormatVersion
	m.Files = []FileEntry{}
	for _, f := range files {
		m.Files = append(m.Files, FileEntry{Path: f.path, Size: int64(len(f.data)), Mode: uint32(f.mode), SHA256: sum(f.data)})
	}
	return m
}

// checkRoundTrip reads the backup at path three ways and compares.
func checkRoundTrip(t *testing.T, path string, files []testFile, opts ReadOptions) {
	t.Helper()
	want := wantManifest(files)

	m := readManifestFile(t, path, opts)
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("manifest:\n got %+v\nwant %+v", m, want)
	}

	// Walk hands over every file, in order, with its content.
	f := openFile(t, path)
	var got []testFile
	_, err := Walk(f, opts, func(e FileEntry, r io.Reader) error {
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if e.Size != int64(len(data)) {
			t.Errorf("%s: entry size %d, read %d", e.Path, e.Size, len(data))
		}
		got = append(got, testFile{path: e.Path, mode: fs.FileMode(e.Mode), data: data})
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	if len(got) != len(files) {
		t.Fatalf("Walk saw %d files, want %d", len(got), len(files))
	}
	for i := range files {
		if got[i].path != files[i].path || got[i].mode != files[i].mode || !bytes.Equal(got[i].data, files[i].data) {
			t.Errorf("file %d: got %s %v (%d bytes), want %s %v (%d bytes)", i,
				got[i].path, got[i].mode, len(got[i].data), files[i].path, files[i].mode, len(files[i].data))
		}
	}

	// Extract into a directory whose parents do not exist yet.
	dir := filepath.Join(t.TempDir(), "restore", "node1")
	m, err = Extract(openFile(t, path), opts, dir)
	if err != nil {
		t.Fatalf("Extract: %v", err)
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("Extract manifest differs")
	}
	checkExtracted(t, dir, files)
}

func checkExtracted(t *testing.T, dir string, files []testFile) {
	t.Helper()
	var onDisk []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && fi.Mode().Perm() != 0o700 {
				t.Errorf("directory %s has mode %v, want 0700", p, fi.Mode().Perm())
			}
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		onDisk = append(onDisk, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range files {
		want = append(want, f.path)
		p := filepath.Join(dir, filepath.FromSlash(f.path))
		data, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("extracted %s: %v", f.path, err)
			continue
		}
		if !bytes.Equal(data, f.data) {
			t.Errorf("extracted %s: content differs", f.path)
		}
		fi, _ := os.Stat(p)
		if wantMode := f.mode &^ 0o022; fi.Mode().Perm() != wantMode {
			t.Errorf("extracted %s: mode %v, want %v", f.path, fi.Mode().Perm(), wantMode)
		}
	}
	slices.Sort(onDisk)
	slices.Sort(want)
	if !slices.Equal(onDisk, want) {
		t.Errorf("files on disk %v, want %v", onDisk, want)
	}
}

func openFile(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func readManifestFile(t *testing.T, path string, opts ReadOptions) Manifest {
	t.Helper()
	m, err := ReadManifest(openFile(t, path), opts)
	if err != nil {
		t.Fatalf("ReadManifest: %v", err)
	}
	return m
}

func TestRoundTripPlain(t *testing.T) {
	files := sampleFiles(1)
	src := writeSources(t, files)
	path := backupFile(t, src, files, WriteOptions{})

	head := make([]byte, 4)
	if _, err := io.ReadFull(openFile(t, path), head); err != nil || !bytes.Equal(head, zstdMagic) {
		t.Fatalf("plain backup starts with %x, want the zstd magic", head)
	}
	checkRoundTrip(t, path, files, ReadOptions{})

	// The manifest is the last tar entry, after the files in their order.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(bytes.NewReader(unzstd(t, raw)))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
	}
	want := []string{}
	for _, f := range files {
		want = append(want, f.path)
	}
	want = append(want, ManifestName)
	if !slices.Equal(names, want) {
		t.Errorf("tar entries %v, want %v", names, want)
	}

	// Extract into an existing empty directory keeps that directory.
	dir := t.TempDir()
	if _, err := Extract(openFile(t, path), ReadOptions{}, dir); err != nil {
		t.Fatal(err)
	}
	checkExtracted(t, dir, files)
}

func TestRoundTripRecipient(t *testing.T) {
	files := sampleFiles(2)
	src := writeSources(t, files)
	id1, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	id2, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	path := backupFile(t, src, files, WriteOptions{
		Recipients:  []string{id1.Recipient().String(), id2.Recipient().String()},
		Concurrency: 2,
	})
	head := make([]byte, len(ageIntro))
	if _, err := io.ReadFull(openFile(t, path), head); err != nil || string(head) != ageIntro {
		t.Fatalf("encrypted backup starts with %q", head)
	}

	// The second recipient's key, read from an identity file.
	ids, err := ParseIdentities(strings.NewReader("# backup key\n\n" + id2.String() + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	checkRoundTrip(t, path, files, ReadOptions{Identities: ids})

	t.Run("no key", func(t *testing.T) {
		_, err := ReadManifest(openFile(t, path), ReadOptions{})
		if !errors.Is(err, ErrEncrypted) || err.Error() != ErrEncrypted.Error() {
			t.Fatalf("got %v, want ErrEncrypted", err)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		other, _ := age.GenerateX25519Identity()
		_, err := ReadManifest(openFile(t, path), ReadOptions{Identities: []age.Identity{other}})
		if !errors.Is(err, ErrWrongKey) || err.Error() != "cannot decrypt backup: wrong key or passphrase" {
			t.Fatalf("got %v, want ErrWrongKey", err)
		}
		dir := filepath.Join(t.TempDir(), "out")
		if _, err := Extract(openFile(t, path), ReadOptions{Identities: []age.Identity{other}}, dir); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("Extract: got %v, want ErrWrongKey", err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Extract left %s behind (%v)", dir, err)
		}
	})
	t.Run("bad identity file", func(t *testing.T) {
		if _, err := ParseIdentities(strings.NewReader("AGE-SECRET-KEY-1NOTAKEY\n")); err == nil {
			t.Fatal("ParseIdentities accepted garbage")
		}
	})
}

// The one test with scrypt. Its default work factor (2^18) is slow on
// purpose, minutes under the race detector, so the test lowers it.
func TestRoundTripPassphrase(t *testing.T) {
	files := sampleFiles(3)[:3]
	src := writeSources(t, files)
	pass := []byte("correct horse battery staple")
	path := backupFile(t, src, files, WriteOptions{Passphrase: pass, scryptLogN: 12})

	m := readManifestFile(t, path, ReadOptions{Passphrase: pass})
	if !reflect.DeepEqual(m, wantManifest(files)) {
		t.Fatalf("manifest differs: %+v", m)
	}
	_, err := ReadManifest(openFile(t, path), ReadOptions{Passphrase: []byte("wrong")})
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong passphrase: got %v, want ErrWrongKey", err)
	}
}

func TestWriterOptions(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	for name, opts := range map[string]WriteOptions{
		"recipients and passphrase": {Recipients: []string{id.Recipient().String()}, Passphrase: []byte("x")},
		"bad recipient":             {Recipients: []string{"age1notakey"}},
		"two keys in one string":    {Recipients: []string{id.Recipient().String() + "\n" + id.Recipient().String()}},
		"negative concurrency":      {Concurrency: -1},
	} {
		if _, err := NewWriter(io.Discard, opts); err == nil {
			t.Errorf("%s: NewWriter accepted it", name)
		}
	}
}

func TestAddFileRefusals(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, WriteOptions{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := w.AddFile("data/a", 0o600, 1, now, strings.NewReader("a")); err != nil {
		t.Fatal(err)
	}
	// Refused before writing anything: the writer stays usable.
	for _, c := range []struct {
		path string
		mode os.FileMode
		size int64
	}{
		{"/etc/passwd", 0o600, 0},
		{"../x", 0o600, 0},
		{"data/../x", 0o600, 0},
		{`data\x`, 0o600, 0},
		{"data//x", 0o600, 0},
		{"data/", 0o600, 0},
		{"", 0o600, 0},
		{ManifestName, 0o600, 0},
		{"data/a", 0o600, 0},   // twice
		{"data", 0o600, 0},     // the directory of data/a
		{"data/a/b", 0o600, 0}, // below the file data/a
		{"data/link", os.ModeSymlink | 0o777, 0},
		{"data/dir", fs.ModeDir | 0o700, 0},
		{"data/neg", 0o600, -1},
	} {
		if err := w.AddFile(c.path, c.mode, c.size, now, strings.NewReader("")); err == nil {
			t.Errorf("AddFile(%q, %v, %d) accepted", c.path, c.mode, c.size)
		}
	}
	if err := w.AddFile("data/b", 0o600, 2, now, strings.NewReader("bb")); err != nil {
		t.Fatal(err)
	}
	// Times tar's plain header cannot hold are fine too.
	if err := w.AddFile("data/zero-time", 0o600, 1, time.Time{}, strings.NewReader("z")); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("d/", 80) + "long-name-needs-pax"
	if err := w.AddFile(long, 0o600, 1, now, strings.NewReader("l")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(sampleManifest()); err != nil {
		t.Fatal(err)
	}
	m, err := ReadManifest(bytes.NewReader(buf.Bytes()), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 4 || m.Files[0].Path != "data/a" || m.Files[1].Path != "data/b" || m.Files[3].Path != long {
		t.Fatalf("files %+v", m.Files)
	}
}

func TestAddFileWrongSize(t *testing.T) {
	for _, c := range []struct {
		name    string
		size    int64
		content string
	}{
		{"fewer", 10, "short"},
		{"more", 3, "longer than three"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, err := NewWriter(io.Discard, WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			err = w.AddFile("data/store.db", 0o600, c.size, time.Now(), strings.NewReader(c.content))
			if err == nil || !strings.Contains(err.Error(), "data/store.db") {
				t.Fatalf("got %v, want an error naming data/store.db", err)
			}
			// The backup is broken now: every later call says so.
			if err2 := w.AddFile("data/other", 0o600, 0, time.Now(), strings.NewReader("")); err2 != err {
				t.Fatalf("AddFile after failure: %v", err2)
			}
			if err2 := w.Close(sampleManifest()); err2 != err {
				t.Fatalf("Close after failure: %v", err2)
			}
		})
	}
}

// failingReader gives some bytes, then an error.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	n := min(len(p), r.n)
	r.n -= n
	return n, nil
}

func TestAddFileReadError(t *testing.T) {
	w, err := NewWriter(io.Discard, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = w.AddFile("data/store.db", 0o600, 100, time.Now(), &failingReader{n: 10})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") || !strings.Contains(err.Error(), "data/store.db") {
		t.Fatalf("got %v", err)
	}
	w.Close(Manifest{})
}

// Yield is called before every chunk of a file: a large file never runs
// more than one chunk without giving the caller a turn.
func TestAddFileYields(t *testing.T) {
	calls := 0
	w, err := NewWriter(io.Discard, WriteOptions{Concurrency: 1, Yield: func() { calls++ }})
	if err != nil {
		t.Fatal(err)
	}
	const size = 10*writeChunk + 7
	if err := w.AddFile("data/store.db", 0o600, size, time.Now(), io.LimitReader(zeroReader{}, size)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(Manifest{Node: "n1"}); err != nil {
		t.Fatal(err)
	}
	if calls != 11 {
		t.Fatalf("Yield called %d times for %d chunks", calls, 11)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestEmptyBackup(t *testing.T) {
	data := backupBytes(t, nil, WriteOptions{})
	m, err := ReadManifest(bytes.NewReader(data), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Files == nil || len(m.Files) != 0 || m.Node != "n1" {
		t.Fatalf("manifest %+v", m)
	}
}

// truncatedOffsets are cut points through every layer of a backup.
func cutPoints(n int) []int {
	pts := []int{0, 1, 2, 3, 4, 5, 10, 21, 22, 50, 100, 200, 1000, 4096, 70000}
	for i := 1; i < 20; i++ {
		pts = append(pts, n*i/20)
	}
	pts = append(pts, n-1000, n-100, n-17, n-16, n-5, n-4, n-3, n-1)
	var out []int
	for _, p := range pts {
		if p >= 0 && p < n && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func TestTruncated(t *testing.T) {
	files := smallFiles(4)
	id, _ := age.GenerateX25519Identity()
	for _, c := range []struct {
		name  string
		wopts WriteOptions
		ropts ReadOptions
	}{
		{"plain", WriteOptions{}, ReadOptions{}},
		{"x25519", WriteOptions{Recipients: []string{id.Recipient().String()}}, ReadOptions{Identities: []age.Identity{id}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := backupBytes(t, files, c.wopts)
			for _, cut := range cutPoints(len(data)) {
				_, err := ReadManifest(bytes.NewReader(data[:cut]), c.ropts)
				var fe *FileError
				if !errors.Is(err, ErrTruncated) && !errors.As(err, &fe) {
					t.Errorf("cut at %d of %d: got %v, want ErrTruncated or a FileError", cut, len(data), err)
				}
			}
		})
	}
}

func TestFlippedByte(t *testing.T) {
	files := smallFiles(5)
	data := backupBytes(t, files, WriteOptions{})
	plain := unzstd(t, data)
	var offsets []int
	for i := 0; i < 40; i++ {
		offsets = append(offsets, i)
	}
	for i := 1; i < 40; i++ {
		offsets = append(offsets, len(data)*i/40)
	}
	for i := 1; i <= 12; i++ {
		offsets = append(offsets, len(data)-i)
	}
	kinds := map[string]int{}
	for _, off := range offsets {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(data)
			bad[off] ^= bit
			_, err := ReadManifest(bytes.NewReader(bad), ReadOptions{})
			if err == nil {
				// Some zstd header bits do not change the content (a
				// larger window than needed): accepted, but only if the
				// tar stream is byte for byte the original.
				if !bytes.Equal(unzstd(t, bad), plain) {
					t.Errorf("flipped bit %#x at %d of %d: changed content accepted", bit, off, len(data))
				}
				kinds["harmless"]++
				continue
			}
			var fe *FileError
			switch {
			case errors.Is(err, ErrCorrupt):
				kinds["corrupt"]++
			case errors.Is(err, ErrTruncated):
				kinds["truncated"]++
			case errors.Is(err, ErrNotBackup):
				kinds["not a backup"]++
			case errors.As(err, &fe):
				kinds["file"]++
			default:
				t.Errorf("flipped bit %#x at %d: untyped error %v", bit, off, err)
			}
		}
	}
	t.Logf("errors by kind: %v", kinds)

	// A flip inside the compressed data is reported as the checksum failure
	// it is, not as whatever nonsense it made of the tar stream.
	bad := bytes.Clone(data)
	bad[len(data)/2] ^= 0x10
	_, err := ReadManifest(bytes.NewReader(bad), ReadOptions{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "zstd") {
		t.Errorf("flip in the middle: %v", err)
	}
}

func TestFlippedByteEncrypted(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	data := backupBytes(t, smallFiles(6), WriteOptions{Recipients: []string{id.Recipient().String()}})
	for _, off := range []int{0, 30, 100, 250, len(data) / 3, len(data) / 2, len(data) - 20, len(data) - 1} {
		bad := bytes.Clone(data)
		bad[off] ^= 0x04
		if _, err := ReadManifest(bytes.NewReader(bad), ReadOptions{Identities: []age.Identity{id}}); err == nil {
			t.Errorf("flip at %d of %d accepted", off, len(data))
		}
	}
}

func TestNotABackup(t *testing.T) {
	for name, data := range map[string][]byte{
		"zip":       []byte("PK\x03\x04 some zip file"),
		"gzip":      {0x1f, 0x8b, 8, 0, 0, 0, 0, 0},
		"text":      []byte("hello, this is not a backup at all\n"),
		"tar":       craftTar(t, reg("a", []byte("a"))),
		"armor age": []byte("-----BEGIN AGE ENCRYPTED FILE-----\n"),
	} {
		_, err := ReadManifest(bytes.NewReader(data), ReadOptions{})
		if !errors.Is(err, ErrNotBackup) || err.Error() != "not a roost node backup (neither zstd nor age)" {
			t.Errorf("%s: got %v", name, err)
		}
	}
	for name, data := range map[string][]byte{
		"empty":       nil,
		"zstd magic":  zstdMagic[:3],
		"age intro":   []byte("age-encryption.or"),
		"only intro":  []byte(ageIntro),
		"zstd header": zstdMagic,
	} {
		_, err := ReadManifest(bytes.NewReader(data), ReadOptions{Passphrase: []byte("p")})
		if !errors.Is(err, ErrTruncated) {
			t.Errorf("%s: got %v, want ErrTruncated", name, err)
		}
	}
}

func craftTar(t *testing.T, entries ...rawEntry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := e.hdr
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.data)
	}
	tw.Close()
	return buf.Bytes()
}

func unzstd(t *testing.T, data []byte) []byte {
	t.Helper()
	s, err := openStream(bytes.NewReader(data), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	out, err := io.ReadAll(s.top)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCraftedArchives feeds the reader archives the Writer would never
// make, and checks each is refused with the file named.
func TestCraftedArchives(t *testing.T) {
	a := reg("data/a", []byte("alpha"))
	b := reg("data/b", []byte("bravo"))
	withB := manifestFor(a, b)
	onlyA := manifestFor(a)
	changed := manifestFor(a, b)
	changed.Files[1].SHA256 = sum([]byte("other"))
	resized := manifestFor(a, b)
	resized.Files[1].Size = 6
	remoded := manifestFor(a, b)
	remoded.Files[1].Mode = 0o644
	listedTwice := manifestFor(a, b, a)
	unsafeListed := manifestFor(a, reg("../b", nil))
	symlink := rawEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "data/link", Linkname: "/etc/passwd"}}
	dirEntry := rawEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "data/", Mode: 0o755}}

	for _, c := range []struct {
		name    string
		entries []rawEntry
		path    string // the file the FileError names
		problem string // part of its problem
	}{
		{"missing file", []rawEntry{a, manifestEntry(t, withB)}, "data/b", "missing from the archive"},
		{"extra file", []rawEntry{a, b, manifestEntry(t, onlyA)}, "data/b", "not listed in the manifest"},
		{"sha256 mismatch", []rawEntry{a, b, manifestEntry(t, changed)}, "data/b", "sha256 mismatch (manifest "},
		{"size mismatch", []rawEntry{a, b, manifestEntry(t, resized)}, "data/b", "size mismatch (manifest 6, archive 5)"},
		{"mode mismatch", []rawEntry{a, b, manifestEntry(t, remoded)}, "data/b", "mode mismatch"},
		{"listed twice", []rawEntry{a, b, manifestEntry(t, listedTwice)}, "data/a", "listed twice"},
		{"unsafe path in manifest", []rawEntry{a, manifestEntry(t, unsafeListed)}, "../b", ".."},
		{"dot-dot", []rawEntry{a, reg("../evil", []byte("x")), manifestEntry(t, withB)}, "../evil", `".."`},
		{"dot-dot inside", []rawEntry{reg("data/../../evil", []byte("x")), manifestEntry(t, withB)}, "data/../../evil", `".."`},
		{"absolute", []rawEntry{reg("/tmp/evil", []byte("x")), manifestEntry(t, withB)}, "/tmp/evil", "absolute"},
		{"backslash", []rawEntry{reg(`..\evil`, []byte("x")), manifestEntry(t, withB)}, `..\evil`, "backslash"},
		{"dot", []rawEntry{reg("./data/a", []byte("x")), manifestEntry(t, withB)}, "./data/a", "clean"},
		{"symlink", []rawEntry{symlink, manifestEntry(t, withB)}, "data/link", "not a regular file"},
		{"directory", []rawEntry{dirEntry, a, manifestEntry(t, withB)}, "data/", ""},
		{"duplicate", []rawEntry{a, a, manifestEntry(t, withB)}, "data/a", "twice"},
		{"file then dir", []rawEntry{reg("data", []byte("x")), a, manifestEntry(t, withB)}, "data/a", "is a file"},
		{"dir then file", []rawEntry{a, reg("data", []byte("x")), manifestEntry(t, withB)}, "data", "directory of another file"},
		{"entry after manifest", []rawEntry{a, b, manifestEntry(t, withB), reg("data/c", nil)}, "data/c", "last entry"},
		{"two manifests", []rawEntry{a, b, manifestEntry(t, withB), manifestEntry(t, withB)}, ManifestName, "last entry"},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := craft(t, c.entries, nil)
			_, err := ReadManifest(bytes.NewReader(data), ReadOptions{})
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a FileError", err)
			}
			if fe.Path != c.path || !strings.Contains(fe.Problem, c.problem) {
				t.Fatalf("got %q, want a FileError for %s about %q", err, c.path, c.problem)
			}
			checkExtractFails(t, data, err)
		})
	}
}

// checkExtractFails runs Extract on data into a new directory and into an
// existing empty one, and checks it fails with want and leaves nothing:
// not the directories, not a file outside them.
func checkExtractFails(t *testing.T, data []byte, want error) {
	t.Helper()
	base := t.TempDir()
	outside := filepath.Join(base, "evil")
	newDir := filepath.Join(base, "new", "node")
	_, err := Extract(bytes.NewReader(data), ReadOptions{}, newDir)
	if err == nil || err.Error() != want.Error() {
		t.Fatalf("Extract into a new dir: got %v, want %v", err, want)
	}
	if _, err := os.Stat(filepath.Join(base, "new")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Extract left %s/new behind", base)
	}
	empty := filepath.Join(base, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(bytes.NewReader(data), ReadOptions{}, empty); err == nil || err.Error() != want.Error() {
		t.Fatalf("Extract into an empty dir: got %v, want %v", err, want)
	}
	if ents, err := os.ReadDir(empty); err != nil || len(ents) != 0 {
		t.Errorf("Extract left %v in %s (%v)", ents, empty, err)
	}
	for _, p := range []string{outside, "/tmp/evil", filepath.Join(filepath.Dir(base), "evil")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("Extract wrote %s", p)
		}
	}
}

func TestNoManifest(t *testing.T) {
	for name, data := range map[string][]byte{
		"no entries": craft(t, nil, nil),
		"files only": craft(t, []rawEntry{reg("data/a", []byte("a"))}, nil),
	} {
		_, err := ReadManifest(bytes.NewReader(data), ReadOptions{})
		if !errors.Is(err, ErrNoManifest) {
			t.Errorf("%s: got %v, want ErrNoManifest", name, err)
		}
	}
}

func TestManifestFormat(t *testing.T) {
	a := reg("data/a", []byte("alpha"))
	newer := manifestFor(a)
	newer.FormatVersion = 2
	other := manifestFor(a)
	other.Format = "roost-export"
	zero := manifestFor(a)
	zero.FormatVersion = 0

	data := craft(t, []rawEntry{a, manifestEntry(t, newer)}, nil)
	_, err := ReadManifest(bytes.NewReader(data), ReadOptions{})
	if !errors.Is(err, ErrUnsupportedVersion) || err.Error() != "backup is format 2, this roost reads up to 1" {
		t.Errorf("newer version: got %v", err)
	}
	checkExtractFails(t, data, err)

	// A newer version may change field shapes: still "too new", not "bad JSON".
	data = craft(t, []rawEntry{a, reg(ManifestName, []byte(`{"format":"roost-node-backup","format_version":3,"files":{"a":1}}`))}, nil)
	if _, err := ReadManifest(bytes.NewReader(data), ReadOptions{}); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("newer version, other shape: got %v", err)
	}

	data = craft(t, []rawEntry{a, manifestEntry(t, other)}, nil)
	if _, err := ReadManifest(bytes.NewReader(data), ReadOptions{}); !errors.Is(err, ErrNotBackup) {
		t.Errorf("other format: got %v", err)
	}
	for name, m := range map[string][]byte{
		"version 0":    mustJSON(t, zero),
		"not JSON":     []byte("{not json"),
		"trailing":     append(mustJSON(t, manifestFor(a)), []byte("{}")...),
		"wrong shapes": []byte(`{"format":"roost-node-backup","format_version":1,"files":"nope"}`),
	} {
		data := craft(t, []rawEntry{a, reg(ManifestName, m)}, nil)
		if _, err := ReadManifest(bytes.NewReader(data), ReadOptions{}); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
}

func mustJSON(t *testing.T, m Manifest) []byte {
	return manifestEntry(t, m).data
}

func TestTrailingData(t *testing.T) {
	a := reg("data/a", []byte("alpha"))
	m := manifestEntry(t, manifestFor(a))
	// GNU tar pads to 10 KiB records: zeros after the end are fine.
	if _, err := ReadManifest(bytes.NewReader(craft(t, []rawEntry{a, m}, make([]byte, 9216))), ReadOptions{}); err != nil {
		t.Errorf("zero padding: %v", err)
	}
	_, err := ReadManifest(bytes.NewReader(craft(t, []rawEntry{a, m}, []byte("junk"))), ReadOptions{})
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("junk after the tar stream: got %v", err)
	}
	// And after the zstd frame.
	data := append(craft(t, []rawEntry{a, m}, nil), "junk"...)
	if _, err := ReadManifest(bytes.NewReader(data), ReadOptions{}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("junk after the zstd frame: got %v", err)
	}
}

func TestFileErrorText(t *testing.T) {
	err := &FileError{Path: "data/store.db", Problem: "sha256 mismatch (manifest abc…, archive def…)"}
	if got := err.Error(); got != "backup file data/store.db: sha256 mismatch (manifest abc…, archive def…)" {
		t.Errorf("got %q", got)
	}
	if got := (&FileError{Problem: "empty path"}).Error(); got != `backup file "": empty path` {
		t.Errorf("got %q", got)
	}
}

func TestWalkCallback(t *testing.T) {
	files := smallFiles(7)
	data := backupBytes(t, files, WriteOptions{})

	// fn may read part of r, or nothing: Walk reads the rest and verifies.
	var seen []string
	m, err := Walk(bytes.NewReader(data), ReadOptions{}, func(f FileEntry, r io.Reader) error {
		seen = append(seen, f.Path)
		if f.SHA256 != "" {
			t.Errorf("%s: SHA256 given before the file is read", f.Path)
		}
		_, err := r.Read(make([]byte, 7))
		if err != nil && err != io.EOF {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(files) || len(m.Files) != len(files) {
		t.Fatalf("saw %v", seen)
	}

	// fn's own error stops the walk, named and unwrappable.
	boom := errors.New("boom")
	_, err = Walk(bytes.NewReader(data), ReadOptions{}, func(f FileEntry, r io.Reader) error {
		if f.Path == "data/store.db" {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "data/store.db") {
		t.Fatalf("got %v", err)
	}

	// A read error the callback swallows still fails the walk.
	cut := data[:len(data)/2]
	_, err = Walk(bytes.NewReader(cut), ReadOptions{}, func(f FileEntry, r io.Reader) error {
		io.Copy(io.Discard, r)
		return nil
	})
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("swallowed read error: got %v", err)
	}
	_, err = Walk(bytes.NewReader(cut), ReadOptions{}, func(f FileEntry, r io.Reader) error {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return fmt.Errorf("copying: %w", err)
		}
		return nil
	})
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("returned read error: got %v", err)
	}
}

func TestExtractRefusesNonEmptyDir(t *testing.T) {
	data := backupBytes(t, sampleFiles(8)[:2], WriteOptions{})
	dir := t.TempDir()
	keep := filepath.Join(dir, "keep")
	if err := os.WriteFile(keep, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(bytes.NewReader(data), ReadOptions{}, dir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("got %v", err)
	}
	if got, err := os.ReadFile(keep); err != nil || string(got) != "mine" {
		t.Fatalf("existing file touched: %q %v", got, err)
	}
	if _, err := Extract(bytes.NewReader(data), ReadOptions{}, keep); err == nil {
		t.Fatal("Extract onto a regular file succeeded")
	}
}

func TestExtractNoPartialDir(t *testing.T) {
	files := smallFiles(9)
	data := backupBytes(t, files, WriteOptions{})
	// Cut late: every file but the manifest is complete and on disk by
	// the time the stream runs out.
	for _, cut := range []int{len(data) / 2, len(data) - 3} {
		_, err := Walk(bytes.NewReader(data[:cut]), ReadOptions{}, nil)
		if err == nil {
			t.Fatalf("cut at %d accepted", cut)
		}
		checkExtractFails(t, data[:cut], err)
	}
	// A sha256 mismatch in the last file is known only at the very end.
	a := reg("data/a", bytes.Repeat([]byte("a"), 100000))
	b := reg("config/certs/b.pem", []byte("bravo"))
	m := manifestFor(a, b)
	m.Files[1].SHA256 = sum([]byte("charlie"))
	bad := craft(t, []rawEntry{a, b, manifestEntry(t, m)}, nil)
	_, err := Walk(bytes.NewReader(bad), ReadOptions{}, nil)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Path != "config/certs/b.pem" {
		t.Fatalf("got %v", err)
	}
	checkExtractFails(t, bad, err)
}
