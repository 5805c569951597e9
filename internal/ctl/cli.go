package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// APIKeyEnv is the environment variable holding NAME:SECRET for --host.
const APIKeyEnv = "ROOST_API_KEY"

// cli holds the `roost ctl` persistent flags; each command reads them
// when it runs.
type cli struct {
	resolve func() (string, error)
	output  string
	host    string
	apiKey  string
	timeout time.Duration
}

// NewCommand builds `roost ctl` and its subcommands. resolve finds the
// data dir (by the same rules as `roost start`) whose socket is used when
// --host is not given.
func NewCommand(resolve func() (dataDir string, err error)) *cobra.Command {
	c := &cli{resolve: resolve}
	cmd := &cobra.Command{
		Use:   "ctl",
		Short: "Manage a running node (the local one over its socket, or a remote one with --host)",
		Long: `Manage a running node.

Without --host, ctl talks to the node whose data dir is found by the same
rules as "roost start" (see "roost paths"), over the unix socket
<data_dir>/roost.sock; access to that socket is the credential.

With --host URL, it talks to that node's REST API (api.bind) and
authenticates with an API key: --api-key NAME:SECRET or $ROOST_API_KEY.`,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	pf := cmd.PersistentFlags()
	pf.StringVarP(&c.output, "output", "o", "table", "output format: table or json")
	pf.StringVar(&c.host, "host", "", "a remote node's API URL (http(s)://host:18083) instead of the local socket")
	pf.StringVar(&c.apiKey, "api-key", "", "API key NAME:SECRET for --host (default $"+APIKeyEnv+")")
	pf.DurationVar(&c.timeout, "timeout", 60*time.Second, "give up after this long")
	cmd.AddCommand(c.statusCmd(), c.metricsCmd(), c.usersCmd(), c.aclCmd(), c.bannedCmd(),
		c.retainedCmd(), c.apikeysCmd(), c.dataCmd(), c.backupCmd(), c.clusterCmd(), c.configCmd())
	ApplyUseLineArgs(cmd)
	return cmd
}

// run wraps a command body: it checks the flags, connects, and bounds the
// call by --timeout.
func (c *cli) run(fn func(ctx context.Context, cl *Client, out *printer, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if c.output != "table" && c.output != "json" {
			return fmt.Errorf("--output %q: want table or json", c.output)
		}
		cl, err := c.client()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		if c.timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, c.timeout)
			defer cancel()
		}
		err = fn(ctx, cl, &printer{w: cmd.OutOrStdout(), json: c.output == "json"}, args)
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("no answer within --timeout %s: %w", c.timeout, err)
		}
		return err
	}
}

func (c *cli) client() (*Client, error) {
	if c.host == "" {
		if c.apiKey != "" {
			return nil, errors.New("--api-key is for a remote node: give --host URL too (the local socket needs no key)")
		}
		dir, err := c.resolve()
		if err != nil {
			return nil, fmt.Errorf("find the data dir: %w", err)
		}
		path := filepath.Join(dir, SocketName)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, localDialError(path, err)
		}
		return NewLocal(path), nil
	}
	key := c.apiKey
	if key == "" {
		key = os.Getenv(APIKeyEnv)
	}
	if key == "" {
		return nil, fmt.Errorf("--host needs an API key: --api-key NAME:SECRET or $%s", APIKeyEnv)
	}
	return NewRemote(c.host, key)
}

// printer writes a result as JSON (--output json) or as aligned text.
type printer struct {
	w    io.Writer
	json bool
}

// print writes v as indented JSON, or calls table with an aligned writer.
func (p *printer) print(v any, table func(tw *tabwriter.Writer)) error {
	if p.json {
		enc := json.NewEncoder(p.w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// done reports a change that returns nothing: a line of text, or
// {"result":"ok","message":...} as JSON.
func (p *printer) done(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return p.print(map[string]string{"result": "ok", "message": msg}, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, msg)
	})
}

// row writes one tab-separated table row.
func row(tw io.Writer, cells ...string) {
	for i, c := range cells {
		cells[i] = cell(c)
	}
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
}

// cell makes a value safe for one table cell: control characters (tabs,
// newlines) quoted, empty shown as "-".
func cell(s string) string {
	if s == "" {
		return "-"
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		q := strconv.Quote(s)
		return q[1 : len(q)-1]
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func timeCell(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format(time.RFC3339)
}

func (c *cli) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the node's identity, uptime, raft state and listeners",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, _ []string) error {
			s, err := cl.Status(ctx)
			if err != nil {
				return err
			}
			return out.print(s, func(tw *tabwriter.Writer) {
				leader := s.Raft.LeaderID
				if s.Raft.Leader != "" {
					leader += " (" + s.Raft.Leader + ")"
				}
				for _, kv := range [][2]string{
					{"node", s.Node}, {"node id", s.NodeID}, {"cluster id", s.ClusterID}, {"version", s.Version},
					{"uptime", s.Uptime}, {"raft state", s.Raft.State}, {"raft leader", leader},
					{"raft term", fmt.Sprint(s.Raft.Term)}, {"applied index", fmt.Sprint(s.Raft.AppliedIndex)},
					{"voters", fmt.Sprint(s.Raft.Voters)},
				} {
					row(tw, kv[0]+":", kv[1])
				}
				if a := s.Authn; a != nil {
					row(tw, "authn:", authnLine(a))
				}
				if len(s.Listeners) > 0 {
					fmt.Fprintln(tw)
					row(tw, "LISTENER", "TYPE", "BIND", "RUNNING")
					for _, l := range s.Listeners {
						row(tw, l.Name, l.Type, l.Bind, yesNo(l.Running))
					}
				}
				if s.Backups != nil {
					fmt.Fprintln(tw)
					printSchedule(tw, *s.Backups)
				}
				if s.Exports != nil {
					printExportSchedule(tw, *s.Exports)
				}
				printTargets(tw, s.Targets)
			})
		}),
	}
}

func (c *cli) metricsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "metrics",
		Short: "Show the node's connections, subscriptions, message counts and retained count",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, _ []string) error {
			m, err := cl.Metrics(ctx)
			if err != nil {
				return err
			}
			return out.print(m, func(tw *tabwriter.Writer) {
				row(tw, "connections:", fmt.Sprint(m.Connections))
				row(tw, "subscriptions:", fmt.Sprint(m.Subscriptions))
				row(tw, "messages received:", fmt.Sprint(m.MessagesReceived))
				row(tw, "messages sent:", fmt.Sprint(m.MessagesSent))
				row(tw, "messages dropped:", fmt.Sprintf("%d (QoS 0: %d, QoS 1: %d, QoS 2: %d)", m.MessagesDropped,
					m.MessagesDroppedQoS0, m.MessagesDroppedQoS1, m.MessagesDroppedQoS2))
				row(tw, "inflight dropped:", fmt.Sprint(m.InflightDropped))
				row(tw, "queued bytes:", fmt.Sprint(m.QueuedBytes))
				row(tw, "retained messages:", fmt.Sprint(m.RetainedCount))
			})
		}),
	}
}

func (c *cli) dataCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "data",
		Short: "The replicated data as a whole: digest, export, import, backup dir files",
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "digest",
		Short: "Show each table's record count and sha256 (equal on nodes that hold the same data)",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, _ []string) error {
			d, err := cl.Digest(ctx)
			if err != nil {
				return err
			}
			return out.print(d, func(tw *tabwriter.Writer) {
				row(tw, "raft index:", fmt.Sprint(d.Index))
				fmt.Fprintln(tw)
				row(tw, "TABLE", "COUNT", "SHA256")
				for _, t := range d.Tables {
					row(tw, t.Table, fmt.Sprint(t.Count), t.SHA256)
				}
			})
		}),
	}, c.dataExportCmd(), c.dataImportCmd(), c.dataFilesCmd())
	return cmd
}
