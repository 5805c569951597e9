// Command roost is the Roost MQTT broker: `roost start` runs a node,
// `roost ctl …` manages a running one, `roost paths` shows where its files are.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/roostmq/roost/internal/config"
	"github.com/roostmq/roost/internal/ctl"
	"github.com/roostmq/roost/internal/node"
	"github.com/spf13/cobra"
)

// Set at build time with -ldflags "-X main.version=… -X main.commit=… -X main.date=…".
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

const rootLong = `Roost is a clustered MQTT broker (MQTT 3.1, 3.1.1 and 5.0) with a replicated built-in
database, logical data export/import and hot node backups.

Where Roost finds its files (first rule that applies; see "roost paths"):
  config file  --config FILE, $ROOST_CONFIG, <install dir>/etc/roost.conf
               (tarball: roost/etc, container: /opt/roost/etc),
               /etc/roost/roost.conf (deb/rpm package), else built-in defaults
  data dir     $ROOST_NODE__DATA_DIR, node.data_dir in the config,
               <install dir>/data (tarball; container: /opt/roost/data),
               /var/lib/roost (package), else ./data
Any config key can be set from the environment: node.data_dir is
ROOST_NODE__DATA_DIR, listeners.tcp.default.bind is ROOST_LISTENERS__TCP__DEFAULT__BIND.`

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "roost:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	var configFlag string
	root := &cobra.Command{
		Use:           "roost",
		Short:         "Roost MQTT broker",
		Long:          rootLong,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&configFlag, "config", "", "config file (default: found by the install-layout rules)")
	load := func() (*config.Loaded, error) { return config.Load(config.LoadOptions{ConfigFlag: configFlag}) }
	resolveDataDir := func() (string, error) {
		l, err := load()
		if err != nil {
			return "", err
		}
		return l.Paths.DataDir, nil
	}
	root.AddCommand(newStartCmd(load), newPathsCmd(load), newConfigCmd(load), newVersionCmd(), newCtlCmd(resolveDataDir),
		newBackupCmd(load), newRestoreCmd(load, resolveDataDir))
	// Every command's arguments are checked against its Use line; typos
	// of a subcommand get close matches, at any depth.
	ctl.ApplyUseLineArgs(root)
	return root
}

func buildInfo() node.BuildInfo { return node.BuildInfo{Version: version, Commit: commit, Date: date} }

func newStartCmd(load func() (*config.Loaded, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "start",
		Short: "Run a node in the foreground (SIGTERM or Ctrl-C stops it cleanly)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			loaded, err := load()
			if err != nil {
				return err
			}
			log, closeLog, err := newLogger(loaded.Config.Log)
			if err != nil {
				return err
			}
			defer closeLog()
			slog.SetDefault(log)
			tuneGC()
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if err := node.Run(ctx, loaded, buildInfo(), log); err != nil {
				return err
			}
			log.Info("node stopped cleanly")
			return nil
		},
	}
}

// tuneGC trades memory for CPU: a broker allocates per message, and with
// Go's default GOGC=100 the collector costs about a quarter of the CPU
// per message (measured in bench/). GOGC set in the environment wins.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}

func newLogger(c config.LogConfig) (*slog.Logger, func(), error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, nil, fmt.Errorf("log.level: %w", err)
	}
	var w io.Writer = os.Stderr
	closeFn := func() {}
	if c.File != "" {
		f, err := os.OpenFile(c.File, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("log.file: %w", err)
		}
		w, closeFn = f, func() { f.Close() }
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})), closeFn, nil
}

func newPathsCmd(load func() (*config.Loaded, error)) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "paths",
		Short: "Show the config file, data dir, backup dir and log in use, and which rule chose each",
		RunE: func(cmd *cobra.Command, _ []string) error {
			loaded, err := load()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, w := range loaded.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			switch output {
			case "json":
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(loaded.Paths)
			case "table", "":
				fmt.Fprint(out, config.FormatPaths(loaded.PathsReport()))
				return nil
			}
			return fmt.Errorf("--output %q: want table or json", output)
		},
	}
	cmd.Flags().StringVar(&output, "output", "table", "table or json")
	return cmd
}

func newVersionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print version, commit and build date",
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch strings.ToLower(output) {
			case "json":
				return json.NewEncoder(cmd.OutOrStdout()).Encode(buildInfo())
			case "text", "table", "":
				fmt.Fprintf(cmd.OutOrStdout(), "roost %s (commit %s, built %s)\n", version, commit, date)
				return nil
			}
			return fmt.Errorf("--output %q: want text or json", output)
		},
	}
	cmd.Flags().StringVar(&output, "output", "text", "text or json")
	return cmd
}
