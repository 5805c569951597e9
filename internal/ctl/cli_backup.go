package ctl

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/roostmq/roost/internal/backup/nodebackup"
)

// backupCmd is `roost ctl backup`: node backups made by the running node.
// Inspecting, verifying and restoring them are offline commands of the
// binary itself (`roost backup`, `roost restore`).
func (c *cli) backupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Make, list, download and delete hot backups of this node's data dir",
		Long: `Node backups (docs/backup-restore.md): a hot, consistent archive of one node's
data dir — the replicated store as of one raft index, the raft facts to rejoin,
persistent sessions, node.json, the cookie and the node's config files — with a
MANIFEST.json. Restore it with "roost restore FILE" on the stopped node; check
it offline with "roost backup verify|inspect FILE". A backup restores only the
node it was taken on: to move data elsewhere use "roost ctl data export/import".`,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(c.backupCreateCmd(), c.backupListCmd(), c.backupDownloadCmd(), c.backupDeleteCmd())
	return cmd
}

func (c *cli) backupCreateCmd() *cobra.Command {
	var output, file, name, passFile string
	var recipients []string
	cmd := &cobra.Command{
		Use:   "create [-o FILE] [--encrypt-to RECIPIENT | --passphrase-file F]",
		Short: "Back up this node's data dir while it serves (tar + zstd, optionally age-encrypted)",
		Long: `Take a hot backup of the node while it serves clients. The node writes it into
its backup dir (<data_dir>/backup) as roost-backup-<node>-<UTC time>.tar.zst
(.tar.zst.age when encrypted), or --name NAME.

With -o FILE (or --file FILE) it is also downloaded to FILE on this machine.
-o table and -o json keep their usual meaning (the summary format).

--encrypt-to takes an age X25519 recipient (age1...; repeat for several);
--passphrase-file reads a passphrase from a file (age scrypt). Without
either the backup is not encrypted: it holds the cluster cookie and every
credential hash, so keep it like the data dir.`,
	}
	f := cmd.Flags()
	f.StringVarP(&output, "output", "o", "table", "FILE to download the backup to, or the summary format (table or json)")
	f.StringVarP(&file, "file", "f", "", "download the backup to FILE on this machine")
	f.StringVar(&name, "name", "", "file name in the node's backup dir")
	f.StringArrayVar(&recipients, "encrypt-to", nil, "age X25519 recipient (age1...) to encrypt to; repeatable")
	f.StringVar(&passFile, "passphrase-file", "", "encrypt with the passphrase in this file (its first line)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		format := "table"
		switch output {
		case "table", "json":
			format = output
		default:
			if file != "" {
				return fmt.Errorf("give the file once: -o %s or --file %s", output, file)
			}
			file = output
		}
		req := nodebackup.CreateRequest{Name: name, Recipients: recipients}
		if passFile != "" {
			if len(recipients) > 0 {
				return fmt.Errorf("give --encrypt-to or --passphrase-file, not both")
			}
			p, err := ReadPassphrase(passFile)
			if err != nil {
				return err
			}
			req.Passphrase = p
		}
		return c.long(&format, func(ctx context.Context, cl *Client, out *printer, cmd *cobra.Command, _ []string) error {
			var res nodebackup.Result
			if err := cl.Do(ctx, http.MethodPost, "/api/v1/backups", req, &res); err != nil {
				return err
			}
			local := ""
			if file != "" {
				if err := cl.downloadFrom(ctx, "/api/v1/backups/"+PathEscape(res.Name), file, newProgressView(cmd.ErrOrStderr(), "download")); err != nil {
					return fmt.Errorf("download %s: %w (the backup is on the node as %s)", res.Name, err, res.Name)
				}
				local, _ = filepath.Abs(file)
			}
			view := struct {
				nodebackup.Result
				LocalFile string `json:"local_file,omitempty"`
			}{res, local}
			return out.print(view, func(tw *tabwriter.Writer) {
				row(tw, "file:", res.Path)
				if local != "" {
					row(tw, "downloaded to:", local)
				}
				row(tw, "size:", fmt.Sprintf("%d bytes", res.Size))
				row(tw, "encrypted:", yesNo(res.Encrypted))
				row(tw, "node:", fmt.Sprintf("%s (node id %s, cluster %s)", res.Node, res.NodeID, res.ClusterID))
				row(tw, "raft:", fmt.Sprintf("index %d, term %d", res.RaftIndex, res.RaftTerm))
				row(tw, "took:", fmt.Sprintf("%s (store read view open %s)", time.Duration(res.DurationMS)*time.Millisecond, time.Duration(res.ViewMS)*time.Millisecond))
				printTables(tw, res.Tables)
			})
		})(cmd, args)
	}
	return cmd
}

// printTables writes a TABLE/RECORDS block in name order.
func printTables(tw *tabwriter.Writer, tables map[string]int) {
	names := make([]string, 0, len(tables))
	for t := range tables {
		names = append(names, t)
	}
	slices.Sort(names)
	fmt.Fprintln(tw)
	row(tw, "TABLE", "RECORDS")
	for _, t := range names {
		row(tw, t, fmt.Sprint(tables[t]))
	}
}

func (c *cli) backupListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the node backups in the backup dir, and the schedule's state",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, _ []string) error {
			var l struct {
				Backups  []nodebackup.Info         `json:"backups"`
				Schedule nodebackup.ScheduleStatus `json:"schedule"`
			}
			if err := cl.Do(ctx, http.MethodGet, "/api/v1/backups", nil, &l); err != nil {
				return err
			}
			return out.print(l, func(tw *tabwriter.Writer) {
				row(tw, "NAME", "SIZE", "MODIFIED", "SCHEDULED", "ENCRYPTED")
				for _, b := range l.Backups {
					row(tw, b.Name, fmt.Sprint(b.Size), b.ModifiedAt.Format(time.RFC3339), yesNo(b.Scheduled), yesNo(b.Encrypted))
				}
				fmt.Fprintln(tw)
				printSchedule(tw, l.Schedule)
			})
		}),
	}
}

// printSchedule writes the scheduled backups' state.
func printSchedule(tw *tabwriter.Writer, s nodebackup.ScheduleStatus) {
	if !s.Enabled {
		row(tw, "scheduled backups:", "off (backup.interval)")
		return
	}
	row(tw, "scheduled backups:", fmt.Sprintf("every %s, keep %d", s.Interval, s.Keep))
	if !s.NextAt.IsZero() {
		row(tw, "next backup:", s.NextAt.Format(time.RFC3339))
	}
	last := "none yet"
	if !s.LastSuccess.IsZero() {
		last = s.LastSuccess.Format(time.RFC3339) + " (" + s.LastFile + ")"
	}
	row(tw, "last success:", last)
	if s.LastError != "" {
		row(tw, "last error:", s.LastErrorAt.Format(time.RFC3339)+": "+s.LastError)
	}
}

func (c *cli) backupDownloadCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "download NAME FILE",
		Short: "Copy a backup from the node's backup dir to FILE on this machine",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, args []string) error {
			if err := cl.downloadFrom(ctx, "/api/v1/backups/"+PathEscape(args[0]), args[1], newProgressView(os.Stderr, "download")); err != nil {
				return err
			}
			return out.done("downloaded %s to %s", args[0], args[1])
		}),
	}
}

func (c *cli) backupDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a backup from the node's backup dir",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, args []string) error {
			if err := cl.Do(ctx, http.MethodDelete, "/api/v1/backups/"+PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			return out.done("deleted %s", args[0])
		}),
	}
}

// ReadPassphrase reads a passphrase: the first line of a file.
func ReadPassphrase(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("passphrase file: %w", err)
	}
	p, _, _ := strings.Cut(string(b), "\n")
	p = strings.TrimRight(p, "\r")
	if p == "" {
		return "", fmt.Errorf("passphrase file %s: the first line is empty", path)
	}
	return p, nil
}
