package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"slices"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

const (
	ageIntro = "age-encryption.org/v1\n"
	// maxManifestSize bounds what a hostile archive can make a reader
	// hold in memory; a real manifest is a few KiB.
	maxManifestSize = 64 << 20
	// maxZstdWindow bounds the decoder's memory for hostile input; the
	// writer's window is 2 MiB.
	maxZstdWindow = 128 << 20
)

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// ReadOptions give the key of an encrypted backup; for an unencrypted one
// they are ignored.
type ReadOptions struct {
	Identities []age.Identity
	Passphrase []byte
}

// ParseIdentities reads an age identity file: one "AGE-SECRET-KEY-1..."
// per line, "#" comments and blank lines ignored.
func ParseIdentities(r io.Reader) ([]age.Identity, error) {
	ids, err := age.ParseIdentities(r)
	if err != nil {
		// age's errors never quote key material, so they are safe to show.
		return nil, fmt.Errorf("reading age identity file: %w", err)
	}
	return ids, nil
}

// ReadManifest returns the manifest of a backup. The manifest is the last
// entry, so this reads, and verifies, the whole stream: it is Walk with no
// callback.
func ReadManifest(src io.Reader, opts ReadOptions) (Manifest, error) {
	return Walk(src, opts, nil)
}

// Walk reads a backup from src and calls fn for each file in archive order
// with the file's path, size and mode (not its SHA256, which is known only
// after the file is read) and a reader of its content. fn may be nil; it
// need not read r to the end (Walk reads the rest) and must not keep r.
//
// Walk verifies as it reads: age authentication, the zstd checksum, that
// every entry is a regular file with a safe, unique path; and at the end
// that MANIFEST.json exists, is of this format and a version this roost
// reads, and lists exactly the files of the archive with their sizes,
// modes and sha256. It returns the manifest, or the first problem as an
// error: one of the Err values here, a *FileError naming the file, or fn's
// error (prefixed with the file's path). On error the Manifest is zero.
//
// Because the manifest comes last, fn sees the files before the archive is
// known to be good; a caller that writes them (like Extract) must be ready
// to throw them away when Walk fails.
func Walk(src io.Reader, opts ReadOptions, fn func(f FileEntry, r io.Reader) error) (Manifest, error) {
	s, err := openStream(src, opts)
	if err != nil {
		return Manifest{}, err
	}
	defer s.close()
	m, err := s.walk(fn)
	if err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// guard wraps one decoding layer. It turns the layer's errors into typed
// errors (ErrTruncated, ErrCorrupt, ...) and keeps the first one, so the
// root cause survives the layers above it, which may reword or replace it:
// when a lower guard has failed, every guard above reports that failure.
type guard struct {
	r        io.Reader
	below    *guard // the layer this one reads from; nil at the bottom
	classify func(error) error
	err      error
	eof      bool
}

func (g *guard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(p)
	switch {
	case err == nil:
	case err == io.EOF:
		g.eof = true
	default:
		if c := g.below.cause(); c != nil {
			g.err = c
		} else {
			g.err = g.classify(err)
		}
		return n, g.err
	}
	return n, err
}

// cause is the lowest failure at or below g.
func (g *guard) cause() error {
	if g == nil {
		return nil
	}
	if c := g.below.cause(); c != nil {
		return c
	}
	return g.err
}

type stream struct {
	top *guard // the decompressed tar stream
	zr  *zstd.Decoder
	tr  *tar.Reader
	buf []byte
}

// openStream detects the encryption, decrypts and decompresses, and
// returns the tar stream.
func openStream(src io.Reader, opts ReadOptions) (*stream, error) {
	br := bufio.NewReaderSize(src, 64<<10)
	bottom := &guard{r: br, classify: func(err error) error {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return kindf(ErrTruncated, err, "reading backup: %v", err)
		}
		return fmt.Errorf("reading backup: %w", err)
	}}

	head, err := br.Peek(len(ageIntro))
	if err != nil && err != io.EOF {
		return nil, bottom.classify(err)
	}
	var under *guard // what zstd reads
	switch {
	case len(head) == 0:
		return nil, kindf(ErrTruncated, nil, "the file is empty")
	case len(head) < len(ageIntro) && bytes.HasPrefix([]byte(ageIntro), head),
		len(head) < len(zstdMagic) && bytes.HasPrefix(zstdMagic, head):
		return nil, kindf(ErrTruncated, nil, "the file is only %d bytes", len(head))
	case bytes.HasPrefix(head, zstdMagic):
		under = bottom
	case bytes.HasPrefix(head, []byte(ageIntro[:len(ageIntro)-1])):
		under, err = decrypt(bottom, opts)
		if err != nil {
			return nil, err
		}
	default:
		return nil, &kindError{kind: ErrNotBackup, msg: "not a roost node backup (neither zstd nor age)"}
	}

	zr, err := zstd.NewReader(under, zstd.WithDecoderMaxWindow(maxZstdWindow))
	if err != nil {
		return nil, fmt.Errorf("starting zstd decoder: %w", err)
	}
	top := &guard{r: zr, below: under, classify: func(err error) error {
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF):
			return kindf(ErrTruncated, err, "the zstd stream ends early")
		case errors.Is(err, zstd.ErrCRCMismatch):
			return kindf(ErrCorrupt, err, "zstd checksum mismatch (damaged data)")
		}
		return kindf(ErrCorrupt, err, "zstd: %v", err)
	}}
	return &stream{top: top, zr: zr, tr: tar.NewReader(top), buf: make([]byte, copyBufferSize)}, nil
}

// decrypt opens the age layer over bottom.
func decrypt(bottom *guard, opts ReadOptions) (*guard, error) {
	if len(opts.Identities) == 0 && len(opts.Passphrase) == 0 {
		return nil, ErrEncrypted
	}
	ids := slices.Clone(opts.Identities)
	if len(opts.Passphrase) > 0 {
		id, err := age.NewScryptIdentity(string(opts.Passphrase))
		if err != nil {
			return nil, fmt.Errorf("passphrase: %w", err)
		}
		ids = append(ids, id)
	}
	dr, err := age.Decrypt(bottom, ids...)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		switch {
		case bottom.err != nil:
			return nil, bottom.err
		case errors.As(err, &noMatch):
			return nil, &kindError{kind: ErrWrongKey, msg: ErrWrongKey.Error(), err: err}
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return nil, kindf(ErrTruncated, err, "the age header ends early")
		}
		return nil, kindf(ErrCorrupt, err, "age header: %v", err)
	}
	return &guard{r: dr, below: bottom, classify: func(err error) error {
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF):
			return kindf(ErrTruncated, err, "the encrypted stream ends early")
		case bottom.eof:
			// age cannot tell a cut-off last chunk from a damaged one:
			// both fail to authenticate. Cut off is the likely story.
			return kindf(ErrTruncated, err, "the last encrypted chunk is cut short or damaged")
		}
		return kindf(ErrCorrupt, err, "age: %v", err)
	}}, nil
}

func (s *stream) close() { s.zr.Close() }

// tarError types an error of the tar reader itself.
func (s *stream) tarError(err error) error {
	if c := s.top.cause(); c != nil {
		return c
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return kindf(ErrTruncated, err, "the tar stream ends early")
	}
	return kindf(ErrCorrupt, err, "tar: %v", err)
}

// fail returns err unless reading on reveals a lower failure. A flipped
// byte often shows first as nonsense in the tar stream (a bad header, an
// odd path), while zstd reports its checksum only at the end of the frame;
// "checksum mismatch" is the truthful report.
func (s *stream) fail(err error) error {
	for s.top.cause() == nil {
		if _, rerr := s.top.Read(s.buf); rerr != nil {
			break
		}
	}
	if c := s.top.cause(); c != nil {
		return c
	}
	return err
}

// hashReader hashes what is read through it and keeps its first error,
// so that an fn that swallows a read error cannot hide it.
type hashReader struct {
	r   io.Reader
	h   hash.Hash
	n   int64
	err error
}

func (h *hashReader) Read(p []byte) (int, error) {
	if h.err != nil {
		return 0, h.err
	}
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	if err != nil {
		h.err = err
	}
	return n, err
}

// drain reads the rest of h with a big buffer.
func (h *hashReader) drain(buf []byte) error {
	for {
		if _, err := h.Read(buf); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

func (s *stream) walk(fn func(FileEntry, io.Reader) error) (Manifest, error) {
	var (
		files    = make(map[string]FileEntry)
		order    []string
		dirs     = make(map[string]bool)
		manifest []byte
		sawMan   bool
		h        = sha256.New()
	)
	for {
		hdr, err := s.tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Manifest{}, s.fail(s.tarError(err))
		}
		name := hdr.Name
		if sawMan {
			return Manifest{}, s.fail(&FileError{Path: name, Problem: "follows " + ManifestName + ", which must be the last entry"})
		}
		if err := entryProblem(hdr, files, dirs); err != nil {
			return Manifest{}, s.fail(err)
		}
		if name == ManifestName {
			if hdr.Size > maxManifestSize {
				return Manifest{}, s.fail(&FileError{Path: name, Problem: fmt.Sprintf("%d bytes, more than a manifest can be", hdr.Size)})
			}
			manifest, err = io.ReadAll(s.tr)
			if err != nil {
				return Manifest{}, s.fail(s.tarError(err))
			}
			sawMan = true
			continue
		}

		f := FileEntry{Path: name, Size: hdr.Size, Mode: uint32(fs.FileMode(hdr.Mode).Perm())}
		h.Reset()
		hr := &hashReader{r: s.tr, h: h}
		if fn != nil {
			if err := fn(f, hr); err != nil {
				// A failed read of r is the archive's fault, not fn's.
				if c := s.top.cause(); c != nil {
					return Manifest{}, c
				}
				if hr.err != nil && hr.err != io.EOF {
					return Manifest{}, s.fail(s.tarError(hr.err))
				}
				return Manifest{}, fmt.Errorf("backup file %s: %w", displayPath(name), err)
			}
		}
		if err := hr.drain(s.buf); err != nil {
			return Manifest{}, s.fail(s.tarError(err))
		}
		f.SHA256 = hex.EncodeToString(h.Sum(nil))
		files[name] = f
		order = append(order, name)
		parentDirs(name, func(dir string) { dirs[dir] = true })
	}

	// Read to the very end: only there does zstd check its checksum and
	// age its last chunk. Past tar's end-of-archive blocks only zero
	// padding may follow (GNU tar pads to 10 KiB records).
	for {
		n, err := s.top.Read(s.buf)
		if slices.ContainsFunc(s.buf[:n], func(b byte) bool { return b != 0 }) {
			return Manifest{}, s.fail(kindf(ErrCorrupt, nil, "data after the end of the tar stream"))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return Manifest{}, err
		}
	}
	if !sawMan {
		return Manifest{}, ErrNoManifest
	}
	m, err := parseManifest(manifest)
	if err != nil {
		return Manifest{}, err
	}
	if err := checkFiles(m, files, order); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// entryProblem checks a tar entry before anything reads its content.
func entryProblem(hdr *tar.Header, files map[string]FileEntry, dirs map[string]bool) error {
	name := hdr.Name
	if p := pathProblem(name); p != "" {
		return &FileError{Path: name, Problem: p}
	}
	if hdr.Typeflag != tar.TypeReg {
		return &FileError{Path: name, Problem: fmt.Sprintf("not a regular file (tar type %q)", hdr.Typeflag)}
	}
	if _, dup := files[name]; dup {
		return &FileError{Path: name, Problem: "appears twice in the archive"}
	}
	// A file where another needs a directory (a and a/b) cannot be
	// extracted; refuse it before anything is written.
	if dirs[name] {
		return &FileError{Path: name, Problem: "is also the directory of another file"}
	}
	var conflict string
	parentDirs(name, func(dir string) {
		if _, ok := files[dir]; ok && conflict == "" {
			conflict = dir
		}
	})
	if conflict != "" {
		return &FileError{Path: name, Problem: fmt.Sprintf("is below %s, which is a file", conflict)}
	}
	return nil
}

func parseManifest(data []byte) (Manifest, error) {
	// Format and version first, alone: a newer version may have changed
	// other fields' shapes, and "too new" is the useful report then.
	var head struct {
		Format        string `json:"format"`
		FormatVersion int    `json:"format_version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return Manifest{}, kindf(ErrCorrupt, err, "%s: %v", ManifestName, err)
	}
	switch {
	case head.Format != FormatName:
		return Manifest{}, &kindError{kind: ErrNotBackup, msg: fmt.Sprintf("not a roost node backup (%s format %q)", ManifestName, head.Format)}
	case head.FormatVersion > FormatVersion:
		return Manifest{}, &kindError{kind: ErrUnsupportedVersion,
			msg: fmt.Sprintf("backup is format %d, this roost reads up to %d", head.FormatVersion, FormatVersion)}
	case head.FormatVersion < 1:
		return Manifest{}, kindf(ErrCorrupt, nil, "%s: invalid format_version %d", ManifestName, head.FormatVersion)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, kindf(ErrCorrupt, err, "%s: %v", ManifestName, err)
	}
	return m, nil
}

// checkFiles compares the manifest's list with what the archive held.
func checkFiles(m Manifest, files map[string]FileEntry, order []string) error {
	listed := make(map[string]bool, len(m.Files))
	for _, want := range m.Files {
		name := want.Path
		if p := pathProblem(name); p != "" {
			return &FileError{Path: name, Problem: "in the manifest: " + p}
		}
		if listed[name] {
			return &FileError{Path: name, Problem: "listed twice in the manifest"}
		}
		listed[name] = true
		got, ok := files[name]
		switch {
		case !ok:
			return &FileError{Path: name, Problem: "listed in the manifest but missing from the archive"}
		case got.Size != want.Size:
			return &FileError{Path: name, Problem: fmt.Sprintf("size mismatch (manifest %d, archive %d)", want.Size, got.Size)}
		case got.SHA256 != want.SHA256:
			return &FileError{Path: name, Problem: fmt.Sprintf("sha256 mismatch (manifest %s, archive %s)", short(want.SHA256), short(got.SHA256))}
		case got.Mode != want.Mode:
			return &FileError{Path: name, Problem: fmt.Sprintf("mode mismatch (manifest %#o, archive %#o)", want.Mode, got.Mode)}
		}
	}
	for _, name := range order {
		if !listed[name] {
			return &FileError{Path: name, Problem: "in the archive but not listed in the manifest"}
		}
	}
	return nil
}

// short abbreviates a hex digest for a message.
func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12] + "…"
	}
	if sum == "" {
		return `""`
	}
	return sum
}
