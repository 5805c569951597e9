// Package nodebackup makes and restores physical backups of one node's
// data dir (DESIGN §7): a hot, consistent archive of the store as of one
// raft index, the raft facts to bring the node back there, its sessions,
// identity and config files (format: internal/backup/archive); and the
// offline restore that refuses another node's backup and never leaves a
// half-restored data dir.
package nodebackup

import (
	"bufio"
	"context"
	"filippo.io/age"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/roostmq/roost/internal/backup"
	"github.com/roostmq/roost/internal/backup/archive"
	"github.com/roostmq/roost/internal/backup/target"
	"github.com/roostmq/roost/internal/config"
	"github.com/roostmq/roost/internal/store"
)

// Names of the data dir's node-local files, as the node uses them.
const (
	SessionsFile = "sessions.db"
	LockFile     = "LOCK"
	SocketName   = "roost.sock"
)

// Archive paths: data dir files under data/, config files under config/
// followed by their absolute path on the source node.
const (
	dataPrefix   = "data/"
	configPrefix = "config/"
)

// Options configure the backups of a running node.
type Options struct {
	Store   *store.Store
	DataDir string
	Dir     string // the node's own backup dir: <data_dir>/backup
	// Target is where backups go by default and where the schedule
	// writes (backup.target); nil: the backup dir.
	Target target.Target
	// Resolve returns the target of a request's "to": an absolute
	// directory path or s3://bucket/prefix. Nil: only the defaults.
	Resolve   func(spec string) (target.Target, error)
	Identity  func() config.Identity
	Version   string
	Sessions  func(w io.Writer) (int64, error) // a consistent copy of sessions.db
	Config    func() []string                  // the node's config files, absolute paths
	ConfigDir string
	Logger    *slog.Logger

	Interval time.Duration // scheduled backups; 0: none
	Keep     int           // scheduled backups kept; 0: all

	// Health records the outcome of every backup, scheduled or asked
	// for, to any target (kind node_backup, target backup.TargetLabel).
	// Nil: not recorded.
	Health *backup.Health
}

// Manager makes, lists and schedules the backups of a running node.
type Manager struct {
	opts Options
	log  *slog.Logger
	mu   sync.Mutex // one backup at a time
	smu  sync.Mutex
	sch  ScheduleStatus
}

// New returns a Manager.
func New(opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Target == nil {
		opts.Target = target.NewDir(opts.Dir)
	}
	m := &Manager{opts: opts, log: opts.Logger.With("component", "node-backup")}
	m.sch.Target = opts.Target.String()
	m.sch.Interval = opts.Interval.String()
	m.sch.Keep = opts.Keep
	m.sch.Enabled = opts.Interval > 0
	opts.Health.Declare(backup.KindNodeBackup, m.label(opts.Target), max(opts.Interval, 0))
	return m
}

// CreateRequest asks for one backup.
type CreateRequest struct {
	Name       string   `json:"name,omitempty"`       // in the backup dir; default roost-backup-<node>-<UTC time>.tar.zst[.age]
	Recipients []string `json:"recipients,omitempty"` // age X25519 public keys
	Passphrase string   `json:"passphrase,omitempty"`
	// To is where the backup goes: "" backup.target; "local" the node's
	// backup dir; an absolute directory path; or s3://bucket/prefix.
	To string `json:"to,omitempty"`
	// Progress, when set, is called a few times a second while the
	// backup is written, and once at the end (done == total). Phase
	// "backup"; done/total and bytes/bytes_total both count the bytes of
	// the node's files read into the archive (whatever the target: an
	// upload streams them on as they come), rate is bytes per second.
	// The total is known up front except for sessions.db, whose
	// consistent copy may differ a little from the file's size.
	Progress  func(backup.Progress) `json:"-"`
	scheduled bool
}

// Info describes a backup at a target.
type Info struct {
	Name string `json:"name"`
	// Path is the file's path, or the object's s3:// URL.
	Path   string `json:"path,omitempty"`
	Target string `json:"target,omitempty"`
	// Remote: at backup.target rather than in the backup dir.
	Remote     bool      `json:"remote"`
	Size       int64     `json:"size"`
	ModifiedAt time.Time `json:"modified_at"`
	Scheduled  bool      `json:"scheduled"`
	Encrypted  bool      `json:"encrypted"`
}

// Result is what Create reports.
type Result struct {
	Info
	Node       string         `json:"node"`
	NodeID     string         `json:"node_id"`
	ClusterID  string         `json:"cluster_id"`
	RaftIndex  uint64         `json:"raft_index"`
	RaftTerm   uint64         `json:"raft_term"`
	Tables     map[string]int `json:"tables"`
	Files      int            `json:"files"`
	DurationMS int64          `json:"duration_ms"`
	// ViewMS is how long the store's read view was held open (writers
	// are not blocked by it, but cannot reuse pages meanwhile).
	ViewMS int64 `json:"view_ms"`
}

const (
	namePrefix  = "roost-backup-"
	autoSuffix  = "-auto"
	plainExt    = ".tar.zst"
	agedExt     = ".tar.zst.age"
	timeLayout  = "20060102T150405.000Z"
	maxNameNode = 64
)

// IsBackupName reports whether a file of the backup dir is a node backup
// (and not a data export).
func IsBackupName(name string) bool {
	return strings.HasSuffix(name, plainExt) || strings.HasSuffix(name, agedExt)
}

func isScheduledName(name string) bool {
	return strings.HasPrefix(name, namePrefix) &&
		(strings.HasSuffix(name, autoSuffix+plainExt) || strings.HasSuffix(name, autoSuffix+agedExt))
}

func (m *Manager) defaultName(node string, at time.Time, encrypted, scheduled bool) string {
	name := namePrefix + nameNode(node) + "-" + at.UTC().Format(timeLayout)
	if scheduled {
		name += autoSuffix
	}
	if encrypted {
		return name + agedExt
	}
	return name + plainExt
}

// nameNode is the node's name as default backup names hold it: ASCII
// letters, digits, '-', '_' and '.', others as '_', at most maxNameNode.
func nameNode(node string) string {
	var safe strings.Builder
	for _, r := range node {
		if r < 128 && (r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			safe.WriteRune(r)
		} else {
			safe.WriteByte('_')
		}
	}
	n := safe.String()
	if len(n) > maxNameNode {
		n = n[:maxNameNode]
	}
	return n
}

func checkBackupName(name string) error {
	if err := backup.CheckName(name); err != nil {
		return err
	}
	if !IsBackupName(name) {
		return fmt.Errorf("%w: backup name %q must end in %s (or %s when encrypted)", backup.ErrBadRequest, name, plainExt, agedExt)
	}
	return nil
}

// errNoRemote is a request for the remote target where none is set.
var errNoRemote = fmt.Errorf("%w: the backups are in the node's backup dir (list them without remote)", backup.ErrNoRemote)

// targetOf resolves a request's "to" (backup.ResolveTarget).
func (m *Manager) targetOf(to string) (target.Target, error) {
	return backup.ResolveTarget(to, m.opts.Target, m.opts.Dir, m.opts.Resolve, "backups")
}

// label names tg in the health records: "local" for the backup dir.
func (m *Manager) label(tg target.Target) string { return backup.TargetLabel(tg, m.opts.Dir) }

// listed returns the target that a listing, download or delete means:
// the node's backup dir, or (remote) backup.target.
func (m *Manager) listed(remote bool) (target.Target, error) {
	if !remote {
		return target.NewDir(m.opts.Dir), nil
	}
	if m.label(m.opts.Target) == backup.TargetLocal {
		return nil, errNoRemote
	}
	return m.opts.Target, nil
}

func (m *Manager) isRemote(tg target.Target) bool {
	return backup.IsRemoteTarget(tg, m.opts.Target, m.opts.Dir)
}

// Target is backup.target (the backup dir when it is not set).
func (m *Manager) Target() target.Target { return m.opts.Target }

// Dir is the node's backup dir.
func (m *Manager) Dir() string { return m.opts.Dir }

// CheckCreate refuses, before any work, a request that Create would
// refuse at once: a bad recipient, name or target, a name that is taken
// at the target, or another backup of this node running. (Create checks
// again: a backup may start in between.) It lets a caller that streams
// progress answer these with a plain error status.
func (m *Manager) CheckCreate(ctx context.Context, req CreateRequest) error {
	if _, _, _, err := m.checkRequest(ctx, req, m.opts.Identity(), time.Now()); err != nil {
		return err
	}
	if !m.mu.TryLock() {
		return fmt.Errorf("%w: another backup of this node is running", backup.ErrImportInProgress)
	}
	m.mu.Unlock()
	return nil
}

// checkRequest validates req and returns the backup's name and target.
// The target is returned once resolved, even with an error (for the
// health record of a failed look-up there).
func (m *Manager) checkRequest(ctx context.Context, req CreateRequest, id config.Identity, at time.Time) (name string, tg target.Target, encrypted bool, err error) {
	if len(req.Recipients) > 0 && req.Passphrase != "" {
		return "", nil, false, fmt.Errorf("%w: give recipients or a passphrase, not both", backup.ErrBadRequest)
	}
	for _, r := range req.Recipients {
		if _, err := age.ParseX25519Recipient(r); err != nil {
			return "", nil, false, fmt.Errorf("%w: recipient %q is not an age X25519 public key (age1...): %v", backup.ErrBadRequest, r, err)
		}
	}
	encrypted = len(req.Recipients) > 0 || req.Passphrase != ""
	name = req.Name
	if name == "" {
		name = m.defaultName(id.Name, at, encrypted, req.scheduled)
	}
	if encrypted != strings.HasSuffix(name, agedExt) && IsBackupName(name) {
		if encrypted {
			return "", nil, false, fmt.Errorf("%w: an encrypted backup's name ends in %s", backup.ErrBadRequest, agedExt)
		}
		return "", nil, false, fmt.Errorf("%w: a backup that is not encrypted ends in %s, not %s", backup.ErrBadRequest, plainExt, agedExt)
	}
	if err := checkBackupName(name); err != nil {
		return "", nil, false, err
	}
	if tg, err = m.targetOf(req.To); err != nil {
		return "", nil, false, err
	}
	if _, err := tg.Stat(ctx, name); err == nil {
		return "", tg, false, fmt.Errorf("%w: %s is at %s already", backup.ErrFileExists, name, tg)
	}
	return name, tg, encrypted, nil
}

// Create writes one backup of this node to its target, streaming: a
// directory shows it only once complete (temp file, fsync, link), an S3
// bucket only once its multipart upload is completed. With encryption,
// the bytes are age-encrypted before they leave the process. The
// outcome goes to Options.Health, under the backup's target.
func (m *Manager) Create(ctx context.Context, req CreateRequest) (*Result, error) {
	start := time.Now()
	res, tg, err := m.create(ctx, req, start)
	if tg != nil { // else refused before a target was known: a bad request
		var name string
		var size int64
		if res != nil {
			name, size = res.Name, res.Size
		}
		m.opts.Health.Record(ctx, backup.KindNodeBackup, m.label(tg), start, name, size, err)
	}
	return res, err
}

func (m *Manager) create(ctx context.Context, req CreateRequest, start time.Time) (*Result, target.Target, error) {
	id := m.opts.Identity()
	name, tg, encrypted, err := m.checkRequest(ctx, req, id, start)
	if err != nil {
		return nil, tg, err
	}
	if !m.mu.TryLock() {
		return nil, tg, fmt.Errorf("%w: another backup of this node is running", backup.ErrImportInProgress)
	}
	defer m.mu.Unlock()
	if err := os.MkdirAll(m.opts.Dir, 0o700); err != nil { // the sessions copy is spooled there
		return nil, tg, fmt.Errorf("backup: %w", err)
	}
	var res *Result
	obj, err := tg.Put(ctx, name, func(w io.Writer) error {
		var err error
		inBackground(func() { res, err = m.write(ctx, w, id, req) })
		return err
	})
	if err != nil {
		m.log.Error("node backup failed", "target", tg.String(), "name", name, "err", err)
		return nil, tg, fmt.Errorf("backup: %w", backup.TargetError(err))
	}
	res.Info = Info{Name: name, Path: backup.ObjectPath(tg, name), Target: tg.String(), Remote: m.isRemote(tg), Size: obj.Size,
		ModifiedAt: obj.ModifiedAt, Scheduled: isScheduledName(name), Encrypted: encrypted}
	took := time.Since(start)
	res.DurationMS = took.Milliseconds()
	m.log.Info("node backup written", "file", res.Path, "target", tg.String(), "bytes", obj.Size, "raft_index", res.RaftIndex,
		"duration", took.Round(time.Millisecond))
	return res, tg, nil
}

// write streams the archive into w: the store first (its read view is
// taken first and released as soon as it is copied), then sessions, the
// other data dir files and the config files.
func (m *Manager) write(ctx context.Context, w io.Writer, id config.Identity, req CreateRequest) (*Result, error) {
	// zstd in parallel blocks, about 35 MiB each, on half the cores (at
	// most 4): the broker keeps the rest. On 2 cores, both for zstd took
	// publish p99 to 3.3x its level without a backup.
	inner, err := archive.NewWriter(w, archive.WriteOptions{Recipients: req.Recipients, Passphrase: []byte(req.Passphrase),
		Concurrency: min(max(runtime.GOMAXPROCS(0)/2, 1), 4), Yield: newYielder().yield})
	if err != nil {
		return nil, err
	}
	aw := &archiveWriter{Writer: inner}
	fail := func(err error) (*Result, error) {
		aw.Close(archive.Manifest{}) // releases the encoder; the temp file is removed
		return nil, err
	}
	dataFiles, err := m.dataFileNames()
	if err != nil {
		return fail(err)
	}
	var configFiles []string
	if m.opts.Config != nil {
		configFiles = m.opts.Config()
	}
	viewStart := time.Now()
	b, err := m.opts.Store.BeginBackup()
	if err != nil {
		return fail(err)
	}
	meta, tables := b.Meta, b.Tables
	if req.Progress != nil {
		aw.meter = m.newMeter(req.Progress, b.Size(), dataFiles, configFiles)
	}
	pr, wait := readerOf(b)
	err = aw.AddFile(dataPrefix+store.StateFile, 0o600, b.Size(), time.Now(), pr)
	pr.Close() // ends WriteTo early if AddFile failed
	wait()
	b.Close()
	viewMS := time.Since(viewStart).Milliseconds()
	if err != nil {
		return fail(fmt.Errorf("store: %w", err))
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if m.opts.Sessions != nil {
		if err := m.addSessions(aw); err != nil {
			return fail(err)
		}
	}
	for _, n := range dataFiles {
		if err := addFile(aw, dataPrefix+n, filepath.Join(m.opts.DataDir, n)); err != nil {
			return fail(fmt.Errorf("data dir file %s: %w", n, err))
		}
	}
	for _, p := range configFiles {
		if err := addFile(aw, configPrefix+strings.TrimPrefix(filepath.ToSlash(p), "/"), p); err != nil {
			return fail(fmt.Errorf("config file %s: %w", p, err))
		}
	}
	man := archive.Manifest{
		Node: id.Name, NodeID: id.NodeID, ClusterID: id.ClusterID,
		RoostVersion: m.opts.Version, CreatedAt: time.Now().UTC(), Tables: tables, ConfigDir: m.opts.ConfigDir,
		Raft: archive.RaftState{Index: meta.Index, Term: meta.Term, ConfigurationIndex: meta.ConfigurationIndex,
			CurrentTerm: meta.CurrentTerm, LastVoteTerm: meta.LastVoteTerm, LastVoteCand: meta.LastVoteCand},
	}
	for _, s := range meta.Servers {
		man.Raft.Servers = append(man.Raft.Servers, archive.RaftServer{ID: s.ID, Address: s.Address, Suffrage: s.Suffrage})
	}
	if err := aw.Close(man); err != nil {
		return nil, err
	}
	aw.meter.finish()
	return &Result{Node: id.Name, NodeID: id.NodeID, ClusterID: id.ClusterID, RaftIndex: meta.Index, RaftTerm: meta.Term,
		Tables: tables, Files: aw.files, ViewMS: viewMS}, nil
}

// archiveWriter counts the files written, for the report, and the bytes
// read into them, for the progress.
type archiveWriter struct {
	*archive.Writer
	files int
	meter *meter // nil: no progress reports
}

func (w *archiveWriter) AddFile(path string, mode os.FileMode, size int64, modTime time.Time, r io.Reader) error {
	if w.meter != nil {
		r = &meteredReader{r: r, m: w.meter}
	}
	err := w.Writer.AddFile(path, mode, size, modTime, r)
	if err == nil {
		w.files++
	}
	return err
}

// readerOf turns a WriterTo into a Reader through a pipe, so the archive
// writer can pull it like any file. wait returns once WriteTo has. The
// pipe is fed in 1 MiB writes: bbolt writes 32 KiB at a time, and each
// pipe write is a hand-off between the two (locked, see inBackground)
// threads, which cost 16% of a backup's CPU in futex calls.
func readerOf(wt io.WriterTo) (pr *io.PipeReader, wait func()) {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go inBackground(func() {
		defer close(done)
		bw := bufio.NewWriterSize(pw, 1<<20)
		_, err := wt.WriteTo(bw)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	})
	return pr, func() { <-done }
}

// addSessions copies sessions.db through a temp file: its size must be
// known before it goes into the archive.
func (m *Manager) addSessions(aw *archiveWriter) error {
	f, err := os.CreateTemp(m.opts.Dir, target.TempPrefix+"sessions-*")
	if err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	defer func() { f.Close(); os.Remove(f.Name()) }()
	n, err := m.opts.Sessions(f)
	if err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	aw.meter.setSessions(n)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	return aw.AddFile(dataPrefix+SessionsFile, 0o600, n, time.Now(), f)
}

// skipped are the data dir entries that are not copied as files: the
// store and sessions (copied from consistent views above), the raft dir
// (rebuilt on restore from the backup's raft facts), the backup dir, and
// what belongs to the running process.
func skipped(name string) bool {
	switch name {
	case store.StateFile, store.RaftDir, SessionsFile, LockFile, SocketName, config.BackupDirName:
		return true
	}
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".restore")
}

// dataFileNames lists the other regular files of the data dir, copied
// as they are (node.json, cookie, initial-admin-password, …), in name
// order.
func (m *Manager) dataFileNames() ([]string, error) {
	ents, err := os.ReadDir(m.opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("read data dir: %w", err)
	}
	names := []string{}
	for _, e := range ents {
		if e.Type().IsRegular() && !skipped(e.Name()) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

func addFile(aw *archiveWriter, archivePath, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return aw.AddFile(archivePath, fi.Mode().Perm(), fi.Size(), fi.ModTime(), f)
}

// SeedHealth records the newest backup at the default target as the
// last success, so that the health (and the alerts on it) survive a
// restart: in the node's backup dir any backup; at a remote target,
// which other nodes may share, this node's (by their default names).
func (m *Manager) SeedHealth(ctx context.Context) {
	tg := m.opts.Target
	list, err := m.list(ctx, tg)
	if err != nil {
		m.log.Warn("cannot list the backups at the target for the last backup", "target", tg.String(), "err", err)
		return
	}
	local := m.label(tg) == backup.TargetLocal
	var newest *Info
	for i := range list {
		if !local && !m.ownName(list[i].Name) {
			continue
		}
		if newest == nil || list[i].ModifiedAt.After(newest.ModifiedAt) {
			newest = &list[i]
		}
	}
	if newest != nil {
		m.opts.Health.Seed(backup.KindNodeBackup, m.label(tg), newest.ModifiedAt, newest.Name, newest.Size)
	}
}

// List returns the backups of the node's backup dir, or (remote) of
// backup.target, oldest first by name (the default names sort by time).
// A shared bucket lists every node's backups.
func (m *Manager) List(ctx context.Context, remote bool) ([]Info, error) {
	tg, err := m.listed(remote)
	if err != nil {
		return nil, err
	}
	return m.list(ctx, tg)
}

func (m *Manager) list(ctx context.Context, tg target.Target) ([]Info, error) {
	objs, err := tg.List(ctx)
	if err != nil {
		return nil, err
	}
	out := []Info{}
	for _, o := range objs {
		if checkBackupName(o.Name) != nil {
			continue
		}
		out = append(out, Info{Name: o.Name, Path: backup.ObjectPath(tg, o.Name), Target: tg.String(), Remote: m.isRemote(tg), Size: o.Size, ModifiedAt: o.ModifiedAt,
			Scheduled: isScheduledName(o.Name), Encrypted: strings.HasSuffix(o.Name, agedExt)})
	}
	return out, nil
}

// Open opens a backup of the backup dir, or (remote) of backup.target,
// for download.
func (m *Manager) Open(ctx context.Context, name string, remote bool) (io.ReadCloser, Info, error) {
	if err := checkBackupName(name); err != nil {
		return nil, Info{}, err
	}
	tg, err := m.listed(remote)
	if err != nil {
		return nil, Info{}, err
	}
	rc, o, err := tg.Open(ctx, name)
	if err != nil {
		return nil, Info{}, backup.TargetError(err)
	}
	return rc, Info{Name: name, Path: backup.ObjectPath(tg, name), Target: tg.String(), Remote: remote, Size: o.Size, ModifiedAt: o.ModifiedAt,
		Scheduled: isScheduledName(name), Encrypted: strings.HasSuffix(name, agedExt)}, nil
}

// Delete removes a backup of the backup dir, or (remote) of
// backup.target.
func (m *Manager) Delete(ctx context.Context, name string, remote bool) error {
	if err := checkBackupName(name); err != nil {
		return err
	}
	tg, err := m.listed(remote)
	if err != nil {
		return err
	}
	return backup.TargetError(tg.Delete(ctx, name))
}

// yielder makes a backup step aside for the broker, before each chunk:
//   - when goroutines are ready to run and waiting for a processor, the
//     backup goroutine lets them run first (runtime.Gosched) instead of
//     holding its processor until the scheduler preempts it (10 ms);
//   - every paceWindow of backup work, if the rest of the process (the
//     broker) used more than a quarter of a core meanwhile, the backup
//     sleeps as long as it worked: on a busy node it runs at about half
//     its speed and leaves the cores to the broker; on an idle one it
//     runs flat out.
//
// It runs on the backup's own locked thread (inBackground), whose CPU
// time threadCPU measures.
type yielder struct {
	sample   []metrics.Sample
	start    time.Time     // of the current window
	selfCPU  time.Duration // this thread's CPU time at start
	totalCPU time.Duration // the process's CPU time at start
}

const paceWindow = 4 * time.Millisecond

func newYielder() *yielder {
	return &yielder{sample: []metrics.Sample{{Name: "/sched/goroutines/runnable:goroutines"}}}
}

func (y *yielder) yield() {
	if now := time.Now(); y.start.IsZero() {
		y.begin(now)
	} else if wall := now.Sub(y.start); wall >= paceWindow {
		self, total := cpuTimes()
		if others := (total - y.totalCPU) - (self - y.selfCPU); others > wall/4 {
			time.Sleep(wall)
		}
		y.begin(time.Now())
	}
	metrics.Read(y.sample)
	if v := y.sample[0].Value; v.Kind() == metrics.KindUint64 && v.Uint64() > 0 {
		runtime.Gosched()
	}
}

func (y *yielder) begin(now time.Time) {
	y.start = now
	y.selfCPU, y.totalCPU = cpuTimes()
}
