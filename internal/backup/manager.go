package backup

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/roostmq/roost/internal/backup/target"
	"github.com/roostmq/roost/internal/store"
)

// Errors of the Manager that callers (the REST API) tell apart.
var (
	ErrBadRequest        = errors.New("bad request")
	ErrFileNotFound      = errors.New("no such file")
	ErrFileExists        = errors.New("file exists")
	ErrImportInProgress  = errors.New("an import is in progress")
	ErrFormatUnsupported = errors.New("format not supported by this build")
)

// Options configure a Manager.
type Options struct {
	Store *store.Store
	// Dir is the backup dir (<data_dir>/backup): exports are written
	// there, uploads kept there, imports read from there.
	Dir       string
	NodeName  string
	ClusterID func() string
	Version   string // roost version, recorded in exports
	// ConfigFiles lists the node's config files: embedded in exports,
	// and the only files (with those in their directories) an import
	// may restore.
	ConfigFiles func() []string
	// Sessions writes the node's session database (--include sessions).
	// Nil: exports cannot include sessions.
	Sessions func(w io.Writer) (int64, error)
	// Foreign returns the reader of a foreign format (emqx4,
	// mosquitto-dynsec). Nil, or false: that format cannot be imported.
	Foreign func(name string) (ForeignReader, bool)
	// DetectForeign names the foreign format of a file from its first
	// bytes ("" when it knows none) for --format auto. Nil: a built-in
	// guess by characteristic member names.
	DetectForeign func(head []byte) string
	Logger        *slog.Logger
	// Target is where exports go by default (backup.target); nil: Dir.
	Target target.Target
	// Resolve returns the target of an s3://bucket/prefix or a
	// directory path (an export's "to", an import's s3:// source). Nil:
	// only the defaults.
	Resolve func(spec string) (target.Target, error)
	// Health records every export's outcome (kind data_export) under its
	// target (TargetLabel). Nil: not recorded.
	Health *Health
	// ExportInterval schedules exports to Target (0: none), made only
	// while IsLeader says this node leads, keeping ExportKeep of them.
	ExportInterval time.Duration
	ExportKeep     int
	IsLeader       func() bool

	// StageBytes bounds the records of one staging op (default 1 MiB);
	// StageWindow is how many are in flight at once (default 4).
	StageBytes  int
	StageWindow int
	// StaleAfter is how long a stage of another node may be idle before
	// an import removes it as abandoned (default 30s: an import touches its
	// stage many times a second while staging). Stages of this node
	// are abandoned as soon as no import runs here.
	StaleAfter time.Duration
}

// Manager runs exports and imports of one node and keeps its backup dir.
type Manager struct {
	opts     Options
	st       *store.Store
	log      *slog.Logger
	importMu sync.Mutex // one import at a time on this node
	smu      sync.Mutex
	sch      ExportSchedule
}

// New returns a Manager.
func New(opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.StageBytes <= 0 {
		opts.StageBytes = 1 << 20
	}
	if opts.StageWindow <= 0 {
		opts.StageWindow = 4
	}
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = 30 * time.Second
	}
	if opts.ClusterID == nil {
		opts.ClusterID = func() string { return "" }
	}
	if opts.ConfigFiles == nil {
		opts.ConfigFiles = func() []string { return nil }
	}
	if opts.Target == nil {
		opts.Target = target.NewDir(opts.Dir)
	}
	if opts.IsLeader == nil {
		opts.IsLeader = func() bool { return true }
	}
	opts.Health.Declare(KindDataExport, TargetLabel(opts.Target, opts.Dir), max(opts.ExportInterval, 0))
	m := &Manager{opts: opts, st: opts.Store, log: opts.Logger.With("component", "backup")}
	m.sch = ExportSchedule{Enabled: opts.ExportInterval > 0, Interval: opts.ExportInterval.String(), Keep: opts.ExportKeep,
		Target: opts.Target.String()}
	return m
}

// Dir is the backup dir.
func (m *Manager) Dir() string { return m.opts.Dir }

func (m *Manager) foreign(name string) (ForeignReader, error) {
	if m.opts.Foreign != nil {
		if r, ok := m.opts.Foreign(name); ok && r != nil {
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w: %s files cannot be imported by this roost", ErrFormatUnsupported, name)
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
