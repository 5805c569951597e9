package archive

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Extract writes the files of a backup under dir and returns its manifest.
// dir must be empty or not exist (it is then created, with any missing
// parents, mode 0700). Subdirectories are created 0700; files keep their
// mode less group and world write. Files and directories are fsynced.
//
// Extract verifies the backup as Walk does. Since the manifest comes last,
// that ends only after every file is written: on any error Extract removes
// all it created (dir too, if it made it) and returns the error.
func Extract(src io.Reader, opts ReadOptions, dir string) (m Manifest, err error) {
	x, err := newExtractor(dir)
	if err != nil {
		return Manifest{}, err
	}
	defer func() {
		if err != nil {
			if cerr := x.cleanup(); cerr != nil {
				err = fmt.Errorf("%w (and cleaning up %s failed: %v)", err, x.dir, cerr)
			}
		}
		x.root.Close()
	}()
	m, err = Walk(src, opts, x.file)
	if err != nil {
		return Manifest{}, err
	}
	if err := x.syncDirs(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

type extractor struct {
	dir     string
	root    *os.Root // confines every write to dir, symlinks included
	created string   // the topmost directory Extract created, "" if dir existed
	dirs    []string // subdirectories created, in creation order
	made    map[string]bool
	tops    []string // entries created directly in dir, for cleanup
	buf     []byte
}

func newExtractor(dir string) (*extractor, error) {
	if dir == "" {
		return nil, errors.New("extract: no directory given")
	}
	dir = filepath.Clean(dir)
	x := &extractor{dir: dir, made: make(map[string]bool), buf: make([]byte, copyBufferSize)}
	fi, err := os.Stat(dir)
	switch {
	case err == nil:
		if !fi.IsDir() {
			return nil, fmt.Errorf("extract: %s is not a directory", dir)
		}
		empty, err := isEmptyDir(dir)
		if err != nil {
			return nil, fmt.Errorf("extract: %w", err)
		}
		if !empty {
			return nil, fmt.Errorf("extract: %s is not empty", dir)
		}
	case errors.Is(err, fs.ErrNotExist):
		// Remember the topmost missing directory: cleanup removes it.
		top := dir
		for {
			parent := filepath.Dir(top)
			if parent == top {
				break
			}
			if _, err := os.Stat(parent); err == nil {
				break
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("extract: %w", err)
			}
			top = parent
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("extract: %w", err)
		}
		x.created = top
	default:
		return nil, fmt.Errorf("extract: %w", err)
	}
	x.root, err = os.OpenRoot(dir)
	if err != nil {
		err = fmt.Errorf("extract: %w", err)
		if cerr := x.cleanupCreated(); cerr != nil {
			err = fmt.Errorf("%w (and removing %s failed: %v)", err, x.created, cerr)
		}
		return nil, err
	}
	return x, nil
}

func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err == io.EOF {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", dir, err)
	}
	return len(names) == 0, nil
}

// file is Walk's callback: it writes one file. Walk has already refused
// unsafe paths; the os.Root refuses them again.
func (x *extractor) file(f FileEntry, r io.Reader) (err error) {
	if d := path.Dir(f.Path); d != "." {
		if err := x.mkdirs(d); err != nil {
			return err
		}
	}
	out, err := x.root.OpenFile(f.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating %s: %w", x.show(f.Path), err)
	}
	x.track(f.Path)
	defer func() {
		if cerr := out.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing %s: %w", x.show(f.Path), cerr)
		}
	}()
	// writerOnly hides os.File's ReadFrom, which would copy through its
	// own 32 KiB buffer instead of ours.
	if _, err := io.CopyBuffer(writerOnly{out}, r, x.buf); err != nil {
		return fmt.Errorf("writing %s: %w", x.show(f.Path), err)
	}
	// Explicit, so the umask has no say; never group or world writable.
	if err := out.Chmod(fs.FileMode(f.Mode).Perm() &^ 0o022); err != nil {
		return fmt.Errorf("setting mode of %s: %w", x.show(f.Path), err)
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", x.show(f.Path), err)
	}
	return nil
}

type writerOnly struct{ w io.Writer }

func (w writerOnly) Write(p []byte) (int, error) { return w.w.Write(p) }

// mkdirs creates dir and its parents below the root, 0700.
func (x *extractor) mkdirs(dir string) error {
	var err error
	each := func(d string) {
		if err != nil || x.made[d] {
			return
		}
		if err = x.root.Mkdir(d, 0o700); err != nil {
			err = fmt.Errorf("creating directory %s: %w", x.show(d), err)
			return
		}
		x.made[d] = true
		x.dirs = append(x.dirs, d)
		x.track(d)
	}
	parentDirs(dir, each)
	each(dir)
	return err
}

// track remembers the top-level entry of name for cleanup.
func (x *extractor) track(name string) {
	top, _, _ := strings.Cut(name, "/")
	if !slices.Contains(x.tops, top) {
		x.tops = append(x.tops, top)
	}
}

func (x *extractor) show(name string) string {
	return filepath.Join(x.dir, filepath.FromSlash(name))
}

// syncDirs makes the new directory entries durable: every directory that
// got one, deepest first, up to the parent of the topmost one created.
func (x *extractor) syncDirs() error {
	for _, d := range slices.Backward(x.dirs) {
		if err := syncRootDir(x.root, d); err != nil {
			return err
		}
	}
	if err := syncRootDir(x.root, "."); err != nil {
		return err
	}
	if x.created == "" {
		return nil
	}
	for d := x.dir; ; {
		d = filepath.Dir(d)
		if err := syncDir(d); err != nil {
			return err
		}
		if d == filepath.Dir(x.created) || d == filepath.Dir(d) {
			return nil
		}
	}
}

func syncRootDir(root *os.Root, name string) error {
	f, err := root.Open(name)
	if err != nil {
		return fmt.Errorf("opening directory %s to sync: %w", filepath.Join(root.Name(), name), err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", filepath.Join(root.Name(), name), err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening directory %s to sync: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// cleanup removes everything Extract created.
func (x *extractor) cleanup() error {
	if x.created != "" {
		return x.cleanupCreated()
	}
	var errs []error
	for _, top := range x.tops {
		if err := x.root.RemoveAll(top); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (x *extractor) cleanupCreated() error {
	if x.created == "" {
		return nil
	}
	return os.RemoveAll(x.created)
}
