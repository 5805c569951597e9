package backup

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

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
	// Health records each export's outcome (kind data_export, target
	// local). Nil: not recorded.
	Health *Health

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
	return &Manager{opts: opts, st: opts.Store, log: opts.Logger.With("component", "backup")}
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
