package target

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Dir is a directory target: the node's <data_dir>/backup by default, or
// any directory (an NFS mount, say). An object is written to a hidden
// temp file, synced, then linked to its name (a link never replaces a
// file), so the directory never shows a partial object.
type Dir struct{ path string }

// NewDir returns the target of the directory path; it is created (0700)
// on the first Put.
func NewDir(path string) *Dir { return &Dir{path: filepath.Clean(path)} }

// TempPrefix starts the names of a directory target's unfinished
// objects.
const TempPrefix = ".partial-"

func (d *Dir) String() string { return d.path }

// Path is the directory.
func (d *Dir) Path() string { return d.path }

func (d *Dir) fail(op, name string, err error) error {
	return &Error{Target: d.path, Op: op, Name: name, Err: err}
}

func (d *Dir) Put(ctx context.Context, name string, write func(io.Writer) error) (Object, error) {
	if err := checkName(name); err != nil {
		return Object{}, d.fail("put", "", err)
	}
	final := filepath.Join(d.path, name)
	if _, err := os.Lstat(final); err == nil {
		return Object{}, d.fail("put", name, ErrExists)
	}
	if err := os.MkdirAll(d.path, 0o700); err != nil {
		return Object{}, d.fail("put", name, err)
	}
	tmp, err := os.CreateTemp(d.path, TempPrefix+name+"-*")
	if err != nil {
		return Object{}, d.fail("put", name, err)
	}
	kept := false
	defer func() {
		if !kept {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	cw := &countingWriter{w: newWriteBehind(tmp)}
	if err := write(cw); err != nil {
		return Object{}, err
	}
	if err := ctx.Err(); err != nil {
		return Object{}, err
	}
	if err := tmp.Sync(); err != nil {
		return Object{}, d.fail("put", name, err)
	}
	if err := tmp.Close(); err != nil {
		return Object{}, d.fail("put", name, err)
	}
	if err := os.Link(tmp.Name(), final); err != nil {
		if errors.Is(err, os.ErrExist) {
			return Object{}, d.fail("put", name, ErrExists)
		}
		return Object{}, d.fail("put", name, err)
	}
	kept = true
	os.Remove(tmp.Name())
	syncDir(d.path)
	return d.Stat(ctx, name)
}

func syncDir(path string) {
	if f, err := os.Open(path); err == nil {
		f.Sync()
		f.Close()
	}
}

func (d *Dir) Open(_ context.Context, name string) (io.ReadCloser, Object, error) {
	if err := checkName(name); err != nil {
		return nil, Object{}, d.fail("open", "", err)
	}
	f, err := os.Open(filepath.Join(d.path, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, Object{}, d.fail("open", name, ErrNotFound)
	}
	if err != nil {
		return nil, Object{}, d.fail("open", name, err)
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, Object{}, d.fail("open", name, fmt.Errorf("%w: not a regular file", ErrNotFound))
	}
	return f, Object{Name: name, Size: fi.Size(), ModifiedAt: fi.ModTime().UTC()}, nil
}

func (d *Dir) Stat(_ context.Context, name string) (Object, error) {
	if err := checkName(name); err != nil {
		return Object{}, d.fail("stat", "", err)
	}
	fi, err := os.Stat(filepath.Join(d.path, name))
	if errors.Is(err, os.ErrNotExist) || err == nil && !fi.Mode().IsRegular() {
		return Object{}, d.fail("stat", name, ErrNotFound)
	}
	if err != nil {
		return Object{}, d.fail("stat", name, err)
	}
	return Object{Name: name, Size: fi.Size(), ModifiedAt: fi.ModTime().UTC()}, nil
}

func (d *Dir) List(context.Context) ([]Object, error) {
	ents, err := os.ReadDir(d.path)
	if errors.Is(err, os.ErrNotExist) {
		return []Object{}, nil
	}
	if err != nil {
		return nil, d.fail("list", "", err)
	}
	out := []Object{}
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, Object{Name: e.Name(), Size: fi.Size(), ModifiedAt: fi.ModTime().UTC()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (d *Dir) Delete(_ context.Context, name string) error {
	if err := checkName(name); err != nil {
		return d.fail("delete", "", err)
	}
	p := filepath.Join(d.path, name)
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return d.fail("delete", name, ErrNotFound)
	}
	if err != nil {
		return d.fail("delete", name, err)
	}
	if !fi.Mode().IsRegular() {
		return d.fail("delete", name, errors.New("not a regular file"))
	}
	if err := os.Remove(p); err != nil {
		return d.fail("delete", name, err)
	}
	return nil
}

// RemoveStaleTemps removes, from the directory path, every temp file
// (TempPrefix…) and those of earlier versions' names: what writes cut
// off when the process stopped left. It returns their names. Only call
// it where no other process writes the directory (the node's own backup
// dir at start: its node backups, exports, uploads and import spools).
func RemoveStaleTemps(path string) []string {
	var removed []string
	ents, _ := os.ReadDir(path)
	for _, e := range ents {
		if e.Type().IsRegular() && isTempName(e.Name()) && os.Remove(filepath.Join(path, e.Name())) == nil {
			removed = append(removed, e.Name())
		}
	}
	return removed
}

// isTempName reports whether name is a temp file's: TempPrefix…, or the
// names earlier versions used (.tmp-backup-…, .tmp-sessions-…,
// .upload-….tmp, .export-….tmp, .spool-….tmp, .received-….tmp).
func isTempName(name string) bool {
	if strings.HasPrefix(name, TempPrefix) || strings.HasPrefix(name, ".tmp-backup-") || strings.HasPrefix(name, ".tmp-sessions-") {
		return true
	}
	for _, p := range []string{".upload-", ".export-", ".spool-", ".received-"} {
		if strings.HasPrefix(name, p) && strings.HasSuffix(name, ".tmp") {
			return true
		}
	}
	return false
}

// AbortIncomplete removes the temp files of unfinished objects whose
// names own selects and that were last written before the cutoff: left
// by a process killed mid-write (a directory target on an NFS mount is
// not cleaned at start, as the node's own backup dir is).
func (d *Dir) AbortIncomplete(_ context.Context, own func(name string) bool, before time.Time) ([]string, error) {
	ents, err := os.ReadDir(d.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, d.fail("list", "", err)
	}
	var names []string
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), TempPrefix)
		i := strings.LastIndex(rest, "-")
		if !ok || i <= 0 || !own(rest[:i]) {
			continue
		}
		if fi, err := e.Info(); err != nil || !fi.ModTime().Before(before) {
			continue
		}
		if err := os.Remove(filepath.Join(d.path, e.Name())); err == nil {
			names = append(names, rest[:i])
		}
	}
	return names, nil
}

// Incomplete is a target that can clear what unfinished writes left
// behind (S3: unfinished multipart uploads; a directory: temp files).
type Incomplete interface {
	AbortIncomplete(ctx context.Context, own func(name string) bool, before time.Time) ([]string, error)
}

var (
	_ Incomplete = (*Dir)(nil)
	_ Incomplete = (*S3)(nil)
)
