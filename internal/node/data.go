package node

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/roostmq/roost/internal/backup"
	"github.com/roostmq/roost/internal/backup/foreign"
	"github.com/roostmq/roost/internal/config"
	"github.com/roostmq/roost/internal/store"
)

// dataOptions wires the data export/import manager: the backup dir, the
// node's config files, its sessions and the foreign-format readers.
func dataOptions(loaded *config.Loaded, st *store.Store, nodeName string, clusterID func() string,
	version string, sessions func(io.Writer) (int64, error), log *slog.Logger) backup.Options {
	return backup.Options{
		Store:         st,
		Dir:           filepath.Join(loaded.Paths.DataDir, config.BackupDirName),
		NodeName:      nodeName,
		ClusterID:     clusterID,
		Version:       version,
		ConfigFiles:   func() []string { return configFiles(loaded) },
		Sessions:      sessions,
		Foreign:       foreignReader,
		DetectForeign: foreign.Detect,
		Logger:        log,
	}
}

// foreignReader is the registry of foreign formats (internal/backup/foreign).
func foreignReader(name string) (backup.ForeignReader, bool) {
	switch name {
	case backup.FormatEMQX4:
		return func(r io.Reader, o backup.ForeignOptions) (*backup.Dataset, error) {
			return foreign.ReadEMQX4(r, foreign.EMQX4Options{AuthAs: o.EMQXAuthAs})
		}, true
	case backup.FormatMosquittoDynsec:
		return func(r io.Reader, _ backup.ForeignOptions) (*backup.Dataset, error) {
			return foreign.ReadMosquittoDynsec(r)
		}, true
	}
	return nil, false
}

// configFiles lists the node's config files as exports embed them: the
// config file and the TLS files it names (certificates and keys), each
// once, as absolute paths; files that do not exist are left out.
func configFiles(loaded *config.Loaded) []string {
	cfg := &loaded.Config
	var out []string
	add := func(p string) {
		if p == "" {
			return
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() || slices.Contains(out, p) {
			return
		}
		out = append(out, p)
	}
	add(loaded.Paths.ConfigFile)
	for _, l := range cfg.Listeners.Active() {
		add(l.CertFile)
		add(l.KeyFile)
		add(l.CACertFile)
	}
	if t := cfg.Cluster.TLS; t.Enable {
		add(t.CertFile)
		add(t.KeyFile)
		add(t.CACertFile)
	}
	return out
}
