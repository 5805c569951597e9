package backup

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/roostmq/roost/internal/backup/target"
	"github.com/roostmq/roost/internal/store"
)

// File names in the backup dir: one path element, no hidden files (the
// manager's temp files are hidden), nothing that could climb out.
var fileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$`)

// CheckName refuses a file name that is not a plain name in the backup
// dir: path separators, "..", absolute paths, hidden files.
func CheckName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: a file name is required", ErrBadRequest)
	case strings.ContainsAny(name, `/\`) || filepath.IsAbs(name):
		return fmt.Errorf("%w: file name %q: must be a name in the backup dir, without a path", ErrBadRequest, name)
	case strings.Contains(name, ".."):
		return fmt.Errorf("%w: file name %q: must not contain \"..\"", ErrBadRequest, name)
	case !fileName.MatchString(name):
		return fmt.Errorf("%w: file name %q: use 1 to 200 letters, digits, '.', '_', '+' or '-', starting with a letter or digit", ErrBadRequest, name)
	}
	return nil
}

func (m *Manager) path(name string) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	return filepath.Join(m.opts.Dir, name), nil
}

// FileInfo describes a file in the backup dir.
type FileInfo struct {
	Name       string    `json:"name"`
	Size       int64     `json:"size"`
	ModifiedAt time.Time `json:"modified_at"`
}

// Files lists the backup dir, by name.
func (m *Manager) Files() ([]FileInfo, error) {
	ents, err := os.ReadDir(m.opts.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return []FileInfo{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", m.opts.Dir, err)
	}
	out := []FileInfo{}
	for _, e := range ents {
		if !e.Type().IsRegular() || CheckName(e.Name()) != nil || isNodeBackup(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, FileInfo{Name: e.Name(), Size: fi.Size(), ModifiedAt: fi.ModTime().UTC()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Open opens a file of the backup dir for reading.
func (m *Manager) Open(name string) (*os.File, FileInfo, error) {
	p, err := m.path(name)
	if err != nil {
		return nil, FileInfo{}, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, FileInfo{}, fmt.Errorf("%w: %s in the backup dir %s", ErrFileNotFound, name, m.opts.Dir)
	}
	if err != nil {
		return nil, FileInfo{}, err
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, FileInfo{}, fmt.Errorf("%w: %s is not a regular file", ErrFileNotFound, name)
	}
	return f, FileInfo{Name: name, Size: fi.Size(), ModifiedAt: fi.ModTime().UTC()}, nil
}

// Delete removes a file of the backup dir.
func (m *Manager) Delete(name string) error {
	p, err := m.path(name)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s in the backup dir %s", ErrFileNotFound, name, m.opts.Dir)
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrBadRequest, name)
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// What made the temp files of the backup dir that are not an object
// being written (those are target.TempPrefix+<name>-…, see target.Dir):
// every temp file there is target.TempPrefix+<what>-<random>.
const (
	uploadTemp   = "upload"
	spoolTemp    = "spool"
	receivedTemp = "received"
)

// RemoveStaleTemps removes the temp files that anything writing the
// backup dir left there when the node stopped in the middle: node
// backups and exports being written, uploads, import spools, received
// files. Call it at start, before any of them runs (only this node
// writes its backup dir).
func (m *Manager) RemoveStaleTemps() {
	for _, n := range target.RemoveStaleTemps(m.opts.Dir) {
		m.log.Info("removed a temp file left by an unfinished backup or data transfer", "file", n)
	}
}

// createTemp makes a hidden temp file in the backup dir (mode 0600).
func (m *Manager) createTemp(what string) (*os.File, error) {
	if err := os.MkdirAll(m.opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create backup dir: %w", err)
	}
	f, err := os.CreateTemp(m.opts.Dir, target.TempPrefix+what+"-*")
	if err != nil {
		return nil, fmt.Errorf("create a file in the backup dir: %w", err)
	}
	return f, nil
}

// keep gives the synced temp file its final name, never replacing a
// file (a hard link fails when the name exists). With rename, a taken
// name gets a "-2", "-3"... before its extension.
func (m *Manager) keep(tmp, name string, rename bool) (string, error) {
	for i := 1; i < 1000; i++ {
		try := name
		if i > 1 {
			try = numbered(name, i)
		}
		err := os.Link(tmp, filepath.Join(m.opts.Dir, try))
		if err == nil {
			os.Remove(tmp)
			if d, err := os.Open(m.opts.Dir); err == nil {
				d.Sync()
				d.Close()
			}
			return try, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("keep %s: %w", try, err)
		}
		if rename && sameContent(tmp, filepath.Join(m.opts.Dir, try)) {
			os.Remove(tmp) // the same file again (an import retried): keep one copy
			return try, nil
		}
		if !rename {
			return "", fmt.Errorf("%w: %s is already in the backup dir (delete it or choose another name)", ErrFileExists, name)
		}
	}
	return "", fmt.Errorf("%w: too many files named like %s", ErrFileExists, name)
}

// sameContent reports whether two files hold the same bytes.
func sameContent(a, b string) bool {
	sum := func(p string) (int64, [32]byte, bool) {
		f, err := os.Open(p)
		if err != nil {
			return 0, [32]byte{}, false
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		return n, [32]byte(h.Sum(nil)), err == nil
	}
	if fa, err := os.Stat(a); err != nil {
		return false
	} else if fb, err := os.Stat(b); err != nil || fa.Size() != fb.Size() || !fb.Mode().IsRegular() {
		return false
	}
	na, ha, oka := sum(a)
	nb, hb, okb := sum(b)
	return oka && okb && na == nb && ha == hb
}

// numbered inserts "-i" before a name's extensions: x.json.gz → x-2.json.gz.
func numbered(name string, i int) string {
	base, ext := name, ""
	for _, e := range []string{".json.gz", ".json", ".gz"} {
		if strings.HasSuffix(name, e) {
			base, ext = strings.TrimSuffix(name, e), e
			break
		}
	}
	return fmt.Sprintf("%s-%d%s", base, i, ext)
}

// ReceivedFile is a file received for one import and not kept: a hidden
// temp file in the backup dir (not listed, not downloadable), removed by
// Remove, or at the next start if the node stopped first.
type ReceivedFile struct {
	Name string // as the sender called it; for the report
	path string
}

// Receive writes r to a ReceivedFile, for an import (a dry run above
// all) that must not leave a copy in the backup dir.
func (m *Manager) Receive(name string, r io.Reader) (*ReceivedFile, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	tmp, err := m.createTemp(receivedTemp)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(tmp, r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("receive %s: %w", name, err)
	}
	return &ReceivedFile{Name: name, path: tmp.Name()}, nil
}

// Remove deletes the received file.
func (f *ReceivedFile) Remove() error {
	if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the received %s: %w", f.Name, err)
	}
	return nil
}

// UploadOptions tune Upload.
type UploadOptions struct {
	Rename  bool   // a taken name gets a number instead of failing
	Format  string // as for an import; "" or auto: detected
	Foreign ForeignOptions
}

// UploadResult describes a kept upload.
type UploadResult struct {
	FileInfo
	Report *ImportReport `json:"validation"`
}

// Upload stores r as name in the backup dir after validating it as an
// import would (checksum, format, version, every record): a file with
// problems is not kept (a *ValidationError says why).
func (m *Manager) Upload(ctx context.Context, name string, r io.Reader, opts UploadOptions) (*UploadResult, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	tmp, err := m.createTemp(uploadTemp)
	if err != nil {
		return nil, err
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmpName)
		}
	}()
	size, err := io.Copy(tmp, r)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", name, err)
	}
	rep, err := m.validateFile(ctx, tmpName, name, ImportOptions{Format: opts.Format, Foreign: opts.Foreign, Privileged: true})
	if err != nil {
		return nil, err
	}
	kept, err := m.keep(tmpName, name, opts.Rename)
	if err != nil {
		return nil, err
	}
	ok = true
	rep.File = kept
	m.log.Info("kept an uploaded file", "file", kept, "size", size, "format", rep.Format)
	fi, err := os.Stat(filepath.Join(m.opts.Dir, kept))
	if err != nil {
		return nil, err
	}
	return &UploadResult{FileInfo: FileInfo{Name: kept, Size: fi.Size(), ModifiedAt: fi.ModTime().UTC()}, Report: rep}, nil
}

// ExportRequest asks for an export into the backup dir.
type ExportRequest struct {
	// Filename in the backup dir, ending in .json or .json.gz (gzip).
	// "": roost-export-<UTC time>.json.gz.
	Filename        string
	Tables          []string // nil: all
	IncludeSessions bool
	// To is where the export goes: "" backup.target; "local" the
	// node's backup dir; an absolute directory path; s3://bucket/prefix.
	To        string
	Progress  func(Progress)
	scheduled bool
}

// ExportFile describes a written export.
type ExportFile struct {
	Filename      string         `json:"filename"`
	Path          string         `json:"path"`   // the file's path, or the object's s3:// URL
	Target        string         `json:"target"` // a directory or s3://bucket/prefix
	Remote        bool           `json:"remote"` // at backup.target rather than in the backup dir
	Size          int64          `json:"size"`
	Format        string         `json:"format"`
	Version       int            `json:"version"`
	SourceNode    string         `json:"source_node"`
	ClusterID     string         `json:"cluster_id"`
	RaftIndex     uint64         `json:"raft_index"`
	CreatedAt     time.Time      `json:"created_at"`
	Tables        []string       `json:"tables"`
	Counts        map[string]int `json:"counts"`
	Records       int64          `json:"records"`
	ConfigFiles   int            `json:"config_files"`
	Sessions      bool           `json:"sessions"`
	Checksum      string         `json:"checksum"`
	DurationMS    int64          `json:"duration_ms"`
	RecordsPerSec float64        `json:"records_per_sec"`
}

// CheckExport refuses, before any work, a request Export would refuse at
// once.
func (m *Manager) CheckExport(req ExportRequest) error {
	if req.Filename != "" {
		if err := CheckName(req.Filename); err != nil {
			return err
		}
		if !strings.HasSuffix(req.Filename, ".json") && !strings.HasSuffix(req.Filename, ".json.gz") {
			return fmt.Errorf("%w: export file name %q must end in .json or .json.gz", ErrBadRequest, req.Filename)
		}
	}
	if _, err := m.targetOf(req.To); err != nil {
		return err
	}
	for _, t := range req.Tables {
		if !slices.Contains(storeTables(), t) {
			return fmt.Errorf("%w: unknown table %q (tables: %s)", ErrBadRequest, t, strings.Join(storeTables(), ", "))
		}
	}
	if req.IncludeSessions && m.opts.Sessions == nil {
		return fmt.Errorf("%w: this node keeps no persistent sessions to include", ErrBadRequest)
	}
	return nil
}

// Export writes the tables, from one linearizable read point, with the
// node's config files, to a target (backup.target by default), streaming
// (a directory shows the file once complete, a bucket once its upload
// is). On a follower the read point is reached by committing a no-op
// entry through the leader and waiting to apply it (store.SyncPoint):
// the export then holds every write acknowledged before it started, on
// whichever node it runs. The outcome goes to Options.Health, under the
// export's target.
func (m *Manager) Export(ctx context.Context, req ExportRequest) (*ExportFile, error) {
	start := time.Now()
	out, tg, err := m.export(ctx, req, start)
	if tg != nil { // else refused before a target was known: a bad request
		var name string
		var size int64
		if out != nil {
			name, size = out.Filename, out.Size
		}
		m.opts.Health.Record(ctx, KindDataExport, TargetLabel(tg, m.opts.Dir), start, name, size, err)
	}
	return out, err
}

// export returns the target too, once resolved, for the health record.
func (m *Manager) export(ctx context.Context, req ExportRequest, start time.Time) (*ExportFile, target.Target, error) {
	name, rename := req.Filename, false
	if name == "" {
		name, rename = exportPrefix+start.UTC().Format(exportTimeLayout)+".json.gz", true
		if req.scheduled {
			name = exportPrefix + start.UTC().Format(scheduledTimeLayout) + scheduledSuffix + ".json.gz"
		}
	}
	if err := CheckName(name); err != nil {
		return nil, nil, err
	}
	if !strings.HasSuffix(name, ".json") && !strings.HasSuffix(name, ".json.gz") {
		return nil, nil, fmt.Errorf("%w: export file name %q must end in .json or .json.gz", ErrBadRequest, name)
	}
	tg, err := m.targetOf(req.To)
	if err != nil {
		return nil, nil, err
	}
	if name, err = freeName(ctx, tg, name, rename); err != nil {
		return nil, tg, err
	}
	tables := req.Tables
	for _, t := range tables {
		if !slices.Contains(storeTables(), t) {
			return nil, tg, fmt.Errorf("%w: unknown table %q (tables: %s)", ErrBadRequest, t, strings.Join(storeTables(), ", "))
		}
	}
	if tables != nil {
		tables = inStoreOrder(tables)
	}
	var sessions func(io.Writer) (int64, error)
	if req.IncludeSessions {
		if m.opts.Sessions == nil {
			return nil, tg, fmt.Errorf("%w: this node keeps no persistent sessions to include", ErrBadRequest)
		}
		sessions = m.opts.Sessions
	}
	if _, err := m.st.SyncPoint(ctx); err != nil {
		return nil, tg, fmt.Errorf("export: reach a consistent read point: %w", err)
	}

	var res *ExportResult
	obj, err := tg.Put(ctx, name, func(out io.Writer) error {
		w := out
		var zw *gzip.Writer
		if strings.HasSuffix(name, ".gz") {
			zw, _ = gzip.NewWriterLevel(out, gzip.BestSpeed)
			w = zw
		}
		err := m.st.View(func(tx *store.Tx) error {
			var err error
			res, err = WriteExport(ctx, w, tx, ExportOptions{
				Header: Header{RoostVersion: m.opts.Version, ClusterID: m.opts.ClusterID(), SourceNode: m.opts.NodeName,
					RaftIndex: tx.AppliedIndex(), CreatedAt: start.UTC()},
				Tables: tables, ConfigFiles: m.opts.ConfigFiles(), Sessions: sessions, Progress: req.Progress,
			})
			return err
		})
		if err == nil && zw != nil {
			err = zw.Close()
		}
		return err
	})
	if err != nil {
		return nil, tg, fmt.Errorf("export: %w", TargetError(err))
	}
	out := &ExportFile{Filename: name, Path: ObjectPath(tg, name), Target: tg.String(), Remote: m.isRemote(tg), Size: obj.Size, Format: FormatName,
		Version: FormatVersion, SourceNode: res.Header.SourceNode, ClusterID: res.Header.ClusterID,
		RaftIndex: res.Header.RaftIndex, CreatedAt: res.Header.CreatedAt, Counts: res.Counts,
		ConfigFiles: len(m.opts.ConfigFiles()), Sessions: sessions != nil, Checksum: res.Checksum}
	out.Tables = tables
	if out.Tables == nil {
		out.Tables = storeTables()
	}
	for _, n := range res.Counts {
		out.Records += int64(n)
	}
	d := time.Since(start)
	out.DurationMS, out.RecordsPerSec = d.Milliseconds(), rate(out.Records, d)
	m.log.Info("export written", "target", tg.String(), "file", name, "size", out.Size, "records", out.Records,
		"raft_index", out.RaftIndex, "duration", d.Round(time.Millisecond))
	return out, tg, nil
}

// freeName returns name, or with rename the first numbered variant of it
// that tg does not hold.
func freeName(ctx context.Context, tg target.Target, name string, rename bool) (string, error) {
	for i := 1; i < 1000; i++ {
		try := name
		if i > 1 {
			try = numbered(name, i)
		}
		// Any error but "found" leaves the name to Put, whose error says
		// more (an S3 HEAD answer carries no error code).
		if _, err := tg.Stat(ctx, try); err != nil {
			return try, nil
		}
		if !rename {
			return "", fmt.Errorf("%w: %s is already at %s (delete it or choose another name)", ErrFileExists, name, tg)
		}
	}
	return "", fmt.Errorf("%w: too many files named like %s", ErrFileExists, name)
}

// isNodeBackup tells the node backups (internal/backup/nodebackup) that
// share the backup dir from data files: they have routes of their own.
func isNodeBackup(name string) bool {
	return strings.HasSuffix(name, ".tar.zst") || strings.HasSuffix(name, ".tar.zst.age")
}
