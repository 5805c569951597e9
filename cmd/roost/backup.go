package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/roostmq/roost/internal/backup/archive"
	"github.com/roostmq/roost/internal/backup/nodebackup"
	"github.com/roostmq/roost/internal/backup/target"
	"github.com/roostmq/roost/internal/config"
	"github.com/roostmq/roost/internal/ctl"
	"github.com/roostmq/roost/internal/node"
)

// Offline commands on node backups (docs/backup-restore.md): they read
// the archive only and need no running node. FILE may be
// s3://bucket/prefix/NAME: the object is streamed with the backup.s3.*
// settings of the config (found as "roost start" finds it).

// keyFlags are the decryption flags of the offline backup commands, and
// how to load the config for an s3:// source.
type keyFlags struct {
	identity, passphraseFile string
	load                     func() (*config.Loaded, error)
}

func (k *keyFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&k.identity, "identity", "i", "", "age identity file (AGE-SECRET-KEY-1...) for an encrypted backup")
	cmd.Flags().StringVar(&k.passphraseFile, "passphrase-file", "", "file whose first line is the passphrase of an encrypted backup")
}

func (k *keyFlags) options() (archive.ReadOptions, error) {
	var ro archive.ReadOptions
	if k.identity != "" {
		f, err := os.Open(k.identity)
		if err != nil {
			return ro, fmt.Errorf("identity file: %w", err)
		}
		defer f.Close()
		if ro.Identities, err = archive.ParseIdentities(f); err != nil {
			return ro, fmt.Errorf("identity file %s: %w", k.identity, err)
		}
	}
	if k.passphraseFile != "" {
		p, err := ctl.ReadPassphrase(k.passphraseFile)
		if err != nil {
			return ro, err
		}
		ro.Passphrase = []byte(p)
	}
	return ro, nil
}

// open checks the output format and the key flags, then opens the
// backup: a file, or an object of an S3 target.
func (k *keyFlags) open(ctx context.Context, path, output string) (io.ReadCloser, archive.ReadOptions, error) {
	if err := checkOutput(output); err != nil {
		return nil, archive.ReadOptions{}, err
	}
	ro, err := k.options()
	if err != nil {
		return nil, ro, err
	}
	if target.IsURL(path) {
		rc, err := k.openRemote(ctx, path)
		return rc, ro, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, ro, fmt.Errorf("backup: %w", err)
	}
	return f, ro, nil
}

func (k *keyFlags) openRemote(ctx context.Context, url string) (io.ReadCloser, error) {
	spec, name, err := target.SplitObject(url)
	if err != nil {
		return nil, err
	}
	if k.load == nil {
		return nil, fmt.Errorf("%s: remote backups need the config's backup.s3.* settings", url)
	}
	l, err := k.load()
	if err != nil {
		return nil, fmt.Errorf("%s: load the config for its backup.s3.* settings: %w", url, err)
	}
	tg, err := node.Targets(&l.Config)(spec)
	if err != nil {
		return nil, err
	}
	rc, _, err := tg.Open(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return rc, nil
}

func checkOutput(o string) error {
	if o != "table" && o != "json" {
		return fmt.Errorf("--output %q: want table or json", o)
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newBackupCmd(load func() (*config.Loaded, error)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Inspect, verify or extract a node backup file (offline)",
		Long: `Offline commands on a node backup (made by "roost ctl backup create"); no node
needs to run. Restore one with "roost restore FILE". FILE may be
s3://bucket/prefix/NAME, read with the config's backup.s3.* settings.`,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newBackupInspectCmd(load), newBackupVerifyCmd(load), newBackupExtractCmd(load))
	return cmd
}

func printManifest(w io.Writer, m archive.Manifest) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "node:\t%s (node id %s)\n", m.Node, m.NodeID)
	fmt.Fprintf(tw, "cluster id:\t%s\n", m.ClusterID)
	fmt.Fprintf(tw, "raft:\tindex %d, term %d\n", m.Raft.Index, m.Raft.Term)
	var members []string
	for _, s := range m.Raft.Servers {
		members = append(members, s.ID+"@"+s.Address+" ("+s.Suffrage+")")
	}
	fmt.Fprintf(tw, "raft members:\t%v\n", members)
	fmt.Fprintf(tw, "created:\t%s\n", m.CreatedAt.Format(time.RFC3339))
	fmt.Fprintf(tw, "roost version:\t%s\n", m.RoostVersion)
	fmt.Fprintf(tw, "format:\t%s v%d\n", m.Format, m.FormatVersion)
	tables := make([]string, 0, len(m.Tables))
	for t := range m.Tables {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	fmt.Fprintln(tw, "\nTABLE\tRECORDS")
	for _, t := range tables {
		fmt.Fprintf(tw, "%s\t%d\n", t, m.Tables[t])
	}
	var total int64
	fmt.Fprintln(tw, "\nFILE\tSIZE\tSHA256")
	for _, f := range m.Files {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", f.Path, f.Size, f.SHA256)
		total += f.Size
	}
	fmt.Fprintf(tw, "total\t%d\t\n", total)
	return tw.Flush()
}

func newBackupInspectCmd(load func() (*config.Loaded, error)) *cobra.Command {
	keys := keyFlags{load: load}
	var output string
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Print a backup's manifest: node, cluster, raft index, time, table counts, files",
		Long: `Print the manifest of a node backup. The manifest is the archive's last entry,
so the whole file is read (and every file's sha256 checked on the way).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, ro, err := keys.open(cmd.Context(), args[0], output)
			if err != nil {
				return err
			}
			defer f.Close()
			m, err := archive.ReadManifest(f, ro)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), m)
			}
			return printManifest(cmd.OutOrStdout(), m)
		},
	}
	keys.add(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

func newBackupVerifyCmd(load func() (*config.Loaded, error)) *cobra.Command {
	keys := keyFlags{load: load}
	var output, tmp string
	cmd := &cobra.Command{
		Use:   "verify FILE",
		Short: "Check every file of a backup and that its store snapshot opens; non-zero exit names the first bad file",
		RunE: func(cmd *cobra.Command, args []string) error {
			f, ro, err := keys.open(cmd.Context(), args[0], output)
			if err != nil {
				return err
			}
			defer f.Close()
			start := time.Now()
			v, err := nodebackup.Verify(f, ro, tmp)
			if err != nil {
				return fmt.Errorf("%s: verify failed: %w", args[0], err)
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), map[string]any{"ok": true, "file": args[0], "verified": v,
					"duration_ms": time.Since(start).Milliseconds()})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: OK: %d files, store at raft index %d opens and matches the manifest (node %s, %s)\n",
				args[0], len(v.Manifest.Files), v.StateIndex, v.Manifest.Node, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	keys.add(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	cmd.Flags().StringVar(&tmp, "tmp-dir", "", "where to unpack the backup to check it (default: the system's temp dir)")
	return cmd
}

func newBackupExtractCmd(load func() (*config.Loaded, error)) *cobra.Command {
	keys := keyFlags{load: load}
	cmd := &cobra.Command{
		Use:   "extract FILE DIR",
		Short: "Unpack a backup into a new directory DIR (data/, config/, MANIFEST checked)",
		Long: `Unpack a node backup into DIR (which must not exist or be empty), checking every
file against the manifest. data/ holds the data dir files, config/ the node's
config files under their absolute paths. Use it to look at or recover single
files (a config file, say); "roost restore" is the way to restore a node.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, ro, err := keys.open(cmd.Context(), args[0], "table")
			if err != nil {
				return err
			}
			defer f.Close()
			m, err := archive.Extract(f, ro, args[1])
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "extracted %d files of node %s's backup (raft index %d) into %s\n",
				len(m.Files), m.Node, m.Raft.Index, args[1])
			return nil
		},
	}
	keys.add(cmd)
	return cmd
}

func newRestoreCmd(load func() (*config.Loaded, error), resolveDataDir func() (string, error)) *cobra.Command {
	keys := keyFlags{load: load}
	var output, dataDir string
	var force bool
	cmd := &cobra.Command{
		Use:   "restore FILE [--data-dir DIR] [--force-new-cluster]",
		Short: "Restore a stopped node's data dir from one of its backups",
		Long: `Restore a node from a backup made by "roost ctl backup create" on that node.
Run it with the node stopped. It verifies the whole backup first, refuses a
backup of another node, then swaps the restored data dir in atomically and
keeps the previous one as <data_dir>.pre-restore-<time>. Started, the node
rejoins its cluster and catches up from the backup's raft index.

The data dir is found as "roost start" finds it (see "roost paths"), or
--data-dir. FILE may be s3://bucket/prefix/NAME: the object is streamed
with the config's backup.s3.* settings (nothing is spooled first; a read
that fails part-way leaves the data dir as it was). With
--force-new-cluster, for when every other node is lost, the node comes back as a new one-voter cluster (new cluster id) holding the
backup's data; empty nodes can then join it.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, ro, err := keys.open(cmd.Context(), args[0], output)
			if err != nil {
				return err
			}
			defer f.Close()
			if dataDir == "" {
				if dataDir, err = resolveDataDir(); err != nil {
					return err
				}
			}
			rep, err := nodebackup.Restore(f, nodebackup.RestoreOptions{DataDir: dataDir, Read: ro, ForceNewCluster: force})
			var after *nodebackup.AfterSwapError
			if errors.As(err, &after) {
				return fmt.Errorf("restore of %s into %s: %w", args[0], dataDir, err)
			}
			if err != nil {
				return fmt.Errorf("restore of %s refused or failed, data dir %s unchanged: %w", args[0], dataDir, err)
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), rep)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "restored node %s (node id %s) into %s: raft index %d of %s\n", rep.Node, rep.NodeID, rep.DataDir,
				rep.RaftIndex, rep.BackupCreatedAt.Format(time.RFC3339))
			if rep.MovedAside != "" {
				fmt.Fprintf(w, "the previous data dir is kept as %s (delete it once the node runs well)\n", rep.MovedAside)
			}
			if rep.ForceNewCluster {
				fmt.Fprintf(w, "new one-voter cluster %s: start the node, then join the others to it (roost ctl cluster join)\n", rep.ClusterID)
			} else {
				fmt.Fprintf(w, "start the node: it rejoins cluster %s (members %v) and catches up\n", rep.ClusterID, rep.Members)
			}
			if len(rep.ConfigFiles) > 0 {
				fmt.Fprintf(w, "config files are not touched; the backup's copies (roost backup extract): %v\n", rep.ConfigFiles)
			}
			return nil
		},
	}
	keys.add(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the data dir to restore (default: found as roost start finds it)")
	cmd.Flags().BoolVar(&force, "force-new-cluster", false, "bring the node back as a new one-voter cluster (every other node is lost)")
	return cmd
}
