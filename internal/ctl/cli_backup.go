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
	var output, file, name, passFile, to string
	var recipients []string
	cmd := &cobra.Command{
		Use:   "create [-o FILE] [--to TARGET] [--encrypt-to RECIPIENT | --passphrase-file F]",
		Short: "Back up this node's data dir while it serves (tar + zstd, optionally age-encrypted)",
		Long: `Take a hot backup of the node while it serves clients. The node streams it to
backup.target — its backup dir (<data_dir>/backup) unless that is set to a
directory or an S3 bucket — as roost-backup-<node>-<UTC time>.tar.zst
(.tar.zst.age when encrypted), or --name NAME.

--to sends this one elsewhere: "local" (the backup dir), an absolute
directory path on the node, or s3://bucket/prefix (with the node's
backup.s3.* settings). An S3 object appears only once its upload is
complete; encryption happens on the node, before any byte leaves it.

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
	f.StringVar(&to, "to", "", `where the node writes it: "local", an absolute directory path or s3://bucket/prefix (default: backup.target)`)
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
		if file != "" && to != "" && to != "local" {
			return fmt.Errorf("-o/--file downloads from the backup dir or backup.target: not with --to %s", to)
		}
		req := nodebackup.CreateRequest{Name: name, Recipients: recipients, To: to}
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
				if err := cl.downloadFrom(ctx, "/api/v1/backups/"+PathEscape(res.Name)+remoteQuery(res.Remote), file, newProgressView(cmd.ErrOrStderr(), "download")); err != nil {
					return fmt.Errorf("download %s: %w (the backup is at %s)", res.Name, err, res.Path)
				}
				local, _ = filepath.Abs(file)
			}
			view := struct {
				nodebackup.Result
				LocalFile string `json:"local_file,omitempty"`
			}{res, local}
			return out.print(view, func(tw *tabwriter.Writer) {
				row(tw, "file:", res.Path)
				row(tw, "target:", res.Target)
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

// remoteQuery is the query of a route's remote variant.
func remoteQuery(remote bool) string {
	if remote {
		return "?remote=true"
	}
	return ""
}

func (c *cli) backupListCmd() *cobra.Command {
	var remote bool
	cmd := &cobra.Command{
		Use:   "list [--remote]",
		Short: "List the node backups in the backup dir (or, --remote, at backup.target), and the schedule's state",
		Long: `List the node backups in the node's backup dir, or with --remote those at
backup.target (a shared bucket lists every node's). Then the schedule's
state, and per target the last success and failure of this node's backups.`,
	}
	cmd.Flags().BoolVar(&remote, "remote", false, "list backup.target instead of the node's backup dir")
	cmd.RunE = c.run(func(ctx context.Context, cl *Client, out *printer, _ []string) error {
		var l struct {
			Location string                    `json:"location"`
			Remote   bool                      `json:"remote"`
			Backups  []nodebackup.Info         `json:"backups"`
			Schedule nodebackup.ScheduleStatus `json:"schedule"`
			Targets  []TargetStatus            `json:"targets"`
		}
		if err := cl.Do(ctx, http.MethodGet, "/api/v1/backups"+remoteQuery(remote), nil, &l); err != nil {
			return err
		}
		return out.print(l, func(tw *tabwriter.Writer) {
			if l.Location != "" {
				row(tw, "backups at:", l.Location)
				fmt.Fprintln(tw)
			}
			row(tw, "NAME", "SIZE", "MODIFIED", "SCHEDULED", "ENCRYPTED")
			for _, b := range l.Backups {
				row(tw, b.Name, fmt.Sprint(b.Size), b.ModifiedAt.Format(time.RFC3339), yesNo(b.Scheduled), yesNo(b.Encrypted))
			}
			fmt.Fprintln(tw)
			printSchedule(tw, l.Schedule)
			printTargets(tw, l.Targets)
		})
	})
	return cmd
}

// printSchedule writes the scheduled backups' state.
func printSchedule(tw *tabwriter.Writer, s nodebackup.ScheduleStatus) {
	if !s.Enabled {
		row(tw, "scheduled backups:", "off (backup.interval)")
		return
	}
	to := ""
	if s.Target != "" {
		to = ", to " + s.Target
	}
	row(tw, "scheduled backups:", fmt.Sprintf("every %s, keep %d%s", s.Interval, s.Keep, to))
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

// printTargets writes the record of each (kind, target).
func printTargets(tw *tabwriter.Writer, ts []TargetStatus) {
	if len(ts) == 0 {
		return
	}
	fmt.Fprintln(tw)
	row(tw, "KIND", "TARGET", "SCHEDULED", "LAST SUCCESS", "SIZE", "TOOK", "LAST FAILURE", "OK/FAILED")
	for _, t := range ts {
		size, took := "", ""
		if !t.LastSuccess.IsZero() {
			size, took = fmt.Sprint(t.LastSize), (time.Duration(t.LastDurationMS) * time.Millisecond).String()
		}
		every := "no"
		if t.Interval != "" {
			every = "every " + t.Interval
		}
		row(tw, t.Kind, t.Target, every, timeCell(t.LastSuccess), size, took, timeCell(t.LastFailure), fmt.Sprintf("%d/%d", t.Successes, t.Failures))
	}
	for _, t := range ts {
		if t.LastError != "" {
			fmt.Fprintf(tw, "last failure (%s to %s): %s\n", t.Kind, t.Target, t.LastError) // no tab: outside the columns
		}
	}
}

func (c *cli) backupDownloadCmd() *cobra.Command {
	var remote bool
	cmd := &cobra.Command{
		Use:   "download NAME FILE [--remote]",
		Short: "Copy a backup from the node's backup dir (or, --remote, backup.target) to FILE on this machine",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, args []string) error {
			if err := cl.downloadFrom(ctx, "/api/v1/backups/"+PathEscape(args[0])+remoteQuery(remote), args[1], newProgressView(os.Stderr, "download")); err != nil {
				return err
			}
			return out.done("downloaded %s to %s", args[0], args[1])
		}),
	}
	cmd.Flags().BoolVar(&remote, "remote", false, "from backup.target instead of the node's backup dir")
	return cmd
}

func (c *cli) backupDeleteCmd() *cobra.Command {
	var remote bool
	cmd := &cobra.Command{
		Use:   "delete NAME [--remote]",
		Short: "Delete a backup from the node's backup dir (or, --remote, at backup.target)",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, args []string) error {
			if err := cl.Do(ctx, http.MethodDelete, "/api/v1/backups/"+PathEscape(args[0])+remoteQuery(remote), nil, nil); err != nil {
				return err
			}
			return out.done("deleted %s", args[0])
		}),
	}
	cmd.Flags().BoolVar(&remote, "remote", false, "at backup.target instead of the node's backup dir")
	return cmd
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
