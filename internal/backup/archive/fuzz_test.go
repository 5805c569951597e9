package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"filippo.io/age"
)

// fuzzKey decrypts the encrypted seeds; a fixed key keeps the corpus
// reproducible. It protects nothing.
const fuzzKey = "AGE-SECRET-KEY-1K5786RWZEERJF5L7KN40USQJLKM96WQ5P5H27YEHCGMLC0E4RASQYACVQU"

func fuzzSeedFiles() []testFile {
	return []testFile{
		{"data/node.json", 0o600, []byte(`{"node":"n1"}`)},
		{"data/store.db", 0o600, bytes.Repeat([]byte("page\x00\x01retained/topic"), 300)},
		{"data/empty", 0o644, nil},
		{"config/roost.conf", 0o640, []byte("node = \"n1\"\n")},
	}
}

// FuzzWalk: whatever the bytes, Walk returns a verified manifest or an
// error, and never panics or hangs.
func FuzzWalk(f *testing.F) {
	id, err := age.ParseX25519Identity(fuzzKey)
	if err != nil {
		f.Fatal(err)
	}
	files := fuzzSeedFiles()
	plain := backupBytes(f, files, WriteOptions{Concurrency: 1})
	enc := backupBytes(f, files[:2], WriteOptions{Recipients: []string{id.Recipient().String()}, Concurrency: 1})

	f.Add(plain)
	f.Add(enc)
	f.Add(plain[:len(plain)/2])
	f.Add(enc[:len(enc)-10])
	for _, off := range []int{5, 20, len(plain) / 2, len(plain) - 2} {
		bad := bytes.Clone(plain)
		bad[off] ^= 0x20
		f.Add(bad)
	}
	a := reg("data/a", []byte("alpha"))
	f.Add(craft(f, []rawEntry{a, manifestEntry(f, manifestFor(a))}, nil))
	f.Add(craft(f, []rawEntry{reg("../evil", []byte("x")), manifestEntry(f, manifestFor(a))}, nil))
	f.Add(craft(f, []rawEntry{{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "data/l", Linkname: "/"}}}, nil))
	f.Add(craft(f, []rawEntry{a, reg(ManifestName, []byte(`{"format":"roost-node-backup","format_version":9}`))}, nil))
	f.Add(zstdBytes(f, []byte("not a tar stream at all")))
	f.Add([]byte(ageIntro))
	f.Add(zstdMagic)
	f.Add([]byte{})

	opts := ReadOptions{Identities: []age.Identity{id}}
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 0
		m, err := Walk(bytes.NewReader(data), opts, func(fe FileEntry, r io.Reader) error {
			// Read some of every other file: Walk must cope with both.
			n++
			if n%2 == 0 {
				_, err := io.CopyN(io.Discard, r, 3)
				if err != nil && err != io.EOF {
					return err
				}
			}
			return nil
		})
		if err != nil {
			if !reflect.DeepEqual(m, Manifest{}) {
				t.Fatalf("error %v with a non-zero manifest", err)
			}
			if errors.Is(err, ErrEncrypted) {
				t.Fatalf("ErrEncrypted although a key was given")
			}
			return
		}
		if m.Format != FormatName || m.FormatVersion < 1 || m.FormatVersion > FormatVersion {
			t.Fatalf("accepted a manifest of format %q version %d", m.Format, m.FormatVersion)
		}
		for _, fe := range m.Files {
			if pathProblem(fe.Path) != "" || fe.Path == ManifestName {
				t.Fatalf("accepted unsafe path %q", fe.Path)
			}
		}
		if n != len(m.Files) {
			t.Fatalf("fn saw %d files, manifest lists %d", n, len(m.Files))
		}
		// An accepted archive reads the same again.
		m2, err := ReadManifest(bytes.NewReader(data), opts)
		if err != nil || !reflect.DeepEqual(m, m2) || !m.CreatedAt.Equal(m2.CreatedAt) {
			t.Fatalf("second read differs: %v", err)
		}
	})
}
