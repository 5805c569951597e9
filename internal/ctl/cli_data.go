package ctl

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/roostmq/roost/internal/backup"
	"github.com/spf13/cobra"
)

// `roost ctl data export|import|files`: the client side of the data
// routes (internal/api/data.go). The node does the work; the CLI uploads
// a local file to import, downloads an export written with -o, and
// shows progress while the node reports it.

// InvalidFileError is an input the node refused (422 INVALID_FILE),
// with every problem found.
type InvalidFileError struct {
	Code         string               `json:"code"`
	Message      string               `json:"message"`
	ProblemCount int                  `json:"problem_count"`
	Problems     []backup.Problem     `json:"problems"`
	Report       *backup.ImportReport `json:"report"`
}

func (e *InvalidFileError) Error() string { return e.Message }

// long wraps a command body like run, but without the --timeout default:
// exports and imports of large data sets take longer than a minute. An
// explicit --timeout still applies. format is the summary format flag.
func (c *cli) long(format *string, fn func(ctx context.Context, cl *Client, out *printer, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if *format != "table" && *format != "json" {
			return fmt.Errorf("--output %q: want table or json", *format)
		}
		cl, err := c.client()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		if f := cmd.Flag("timeout"); f != nil && f.Changed && c.timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, c.timeout)
			defer cancel()
		}
		err = fn(ctx, cl, &printer{w: cmd.OutOrStdout(), json: *format == "json"}, cmd, args)
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("no answer within --timeout %s: %w", c.timeout, err)
		}
		return err
	}
}

func splitList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (c *cli) dataExportCmd() *cobra.Command {
	var output, file, name, tables, include, to string
	cmd := &cobra.Command{
		Use:   "export [-o FILE] [--to TARGET]",
		Short: "Export every replicated table (and the node's config files) to one JSON file",
		Long: `Export the replicated tables — users, ACL rules, bans, retained messages,
API keys, admins, cluster config overrides — from one consistent read point,
with this node's config files, to one roost-export JSON document
(docs/data-export-import.md). The node streams it to backup.target — its
backup dir (<data_dir>/backup) unless that is set to a directory or an S3
bucket — gzip-compressed when the name ends in .gz; by default
roost-export-<UTC time>.json.gz. --to sends this one elsewhere: "local"
(the backup dir), an absolute directory path on the node, or
s3://bucket/prefix.

With -o FILE (or --file FILE) the export is also downloaded to FILE on this
machine: .json.gz for gzip, .json for plain JSON. -o table and -o json keep
their usual meaning (the summary format); write -o ./json for a file named json.

The file holds password hashes and API key hashes, and the config files may
hold secrets: keep exports like the config dir.`,
	}
	format := "table"
	cmd.Flags().StringVarP(&output, "output", "o", "table", "FILE to download the export to, or the summary format (table or json)")
	cmd.Flags().StringVarP(&file, "file", "f", "", "download the export to FILE on this machine (.json or .json.gz)")
	cmd.Flags().StringVar(&name, "name", "", "file name in the node's backup dir (default roost-export-<UTC time>.json.gz)")
	cmd.Flags().StringVar(&tables, "tables", "", "comma-separated tables to export (default: all)")
	cmd.Flags().StringVar(&include, "include", "", "also export: sessions (this node's persistent sessions, opaque)")
	cmd.Flags().StringVar(&to, "to", "", `where the node writes it: "local", an absolute directory path or s3://bucket/prefix (default: backup.target)`)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		switch output {
		case "table", "json":
			format = output
		default:
			if file != "" {
				return fmt.Errorf("give the file once: -o %s or --file %s", output, file)
			}
			file = output
		}
		return c.long(&format, func(ctx context.Context, cl *Client, out *printer, cmd *cobra.Command, _ []string) error {
			return c.export(ctx, cl, out, cmd.ErrOrStderr(), file, name, tables, include, to)
		})(cmd, args)
	}
	return cmd
}

func (c *cli) export(ctx context.Context, cl *Client, out *printer, errw io.Writer, file, name, tables, include, to string) error {
	req := map[string]any{}
	if file != "" && to != "" && to != "local" {
		return fmt.Errorf("-o/--file downloads from the backup dir or backup.target: not with --to %s", to)
	}
	if to != "" {
		req["to"] = to
	}
	if file != "" && name != "" && strings.HasSuffix(file, ".gz") != strings.HasSuffix(name, ".gz") {
		return fmt.Errorf("--name %s and the file %s disagree on gzip: give both the same ending (.json.gz or .json)", name, file)
	}
	if file != "" && name == "" {
		switch {
		case strings.HasSuffix(file, ".json.gz") || strings.HasSuffix(file, ".gz"):
		case strings.HasSuffix(file, ".json"):
			name = "roost-export-" + time.Now().UTC().Format("20060102T150405Z") + ".json"
		default:
			return fmt.Errorf("export file %s: the name must end in .json.gz (gzip) or .json", file)
		}
	}
	if name != "" {
		req["filename"] = name
	}
	if t := splitList(tables); t != nil {
		req["tables"] = t
	}
	if inc := splitList(include); inc != nil {
		req["include"] = inc
	}
	pv := newProgressView(errw, "export")
	var res backup.ExportFile
	if err := cl.stream(ctx, "/api/v1/data/export", req, pv.update, &res); err != nil {
		pv.finish()
		return err
	}
	pv.finish()
	local := ""
	if file != "" {
		if err := cl.downloadFrom(ctx, "/api/v1/data/files/"+PathEscape(res.Filename)+remoteQuery(res.Remote), file, newProgressView(errw, "download")); err != nil {
			return fmt.Errorf("download %s: %w (the export is at %s)", res.Filename, err, res.Path)
		}
		local, _ = filepath.Abs(file)
	}
	view := struct {
		backup.ExportFile
		LocalFile string `json:"local_file,omitempty"`
	}{res, local}
	return out.print(view, func(tw *tabwriter.Writer) {
		row(tw, "file:", res.Path)
		row(tw, "target:", res.Target)
		if local != "" {
			row(tw, "downloaded to:", local)
		}
		row(tw, "size:", fmt.Sprintf("%d bytes", res.Size))
		row(tw, "source:", fmt.Sprintf("node %s of cluster %s, raft index %d", res.SourceNode, res.ClusterID, res.RaftIndex))
		row(tw, "records:", fmt.Sprintf("%d in %s (%.0f records/s)", res.Records, time.Duration(res.DurationMS)*time.Millisecond, res.RecordsPerSec))
		row(tw, "checksum:", res.Checksum)
		fmt.Fprintln(tw)
		row(tw, "TABLE", "RECORDS")
		for _, t := range res.Tables {
			row(tw, t, fmt.Sprint(res.Counts[t]))
		}
	})
}

func (c *cli) dataImportCmd() *cobra.Command {
	var opts struct {
		dryRun, replace, restore bool
		tables, format, authAs   string
	}
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Import a roost-export (or EMQX 4.x / Mosquitto dynsec) file into the cluster",
		Long: `Import FILE into the cluster through this node: every node gets the data.

FILE is a file on this machine (uploaded to the node's backup dir first;
with --dry-run it is sent with the request and the node keeps no copy), the
name of a file already in the node's backup dir (see "data files"), or
s3://bucket/prefix/NAME: the node reads it with its backup.s3.* settings and
keeps no copy.

The node validates the whole file first — checksum, format and version, every
record — and reports every problem with its table, record number and field;
with any problem nothing changes and the command fails. Then the records are
staged and committed in one raft step: all nodes change at once, or none.

By default records are merged: inserted or updated by key, nothing deleted
(ACL rules match on kind, value, topic and action; new ones are appended).
--replace makes each imported table equal to the file's. --dry-run shows per
table what would be added, changed, unchanged and removed, and changes
nothing. The node's config files are only compared, unless
--restore-config-files is given (the old file is kept as FILE.bak).`,
	}
	f := cmd.Flags()
	f.BoolVar(&opts.dryRun, "dry-run", false, "show what would change; change nothing")
	f.BoolVar(&opts.replace, "replace", false, "make each imported table equal to the file's (records not in the file are removed)")
	f.StringVar(&opts.tables, "tables", "", "comma-separated tables to import (default: all in the file)")
	f.StringVar(&opts.format, "format", "auto", "file format: auto, roost, emqx4 or mosquitto-dynsec")
	f.BoolVar(&opts.restore, "restore-config-files", false, "write the file's config files over this node's (keeping .bak copies)")
	f.StringVar(&opts.authAs, "emqx-auth-as", "", "EMQX before 4.3: the auth_mnesia logins are username or clientid (auth.mnesia.as)")
	cmd.RunE = c.long(&c.output, func(ctx context.Context, cl *Client, out *printer, cmd *cobra.Command, args []string) error {
		if err := oneOf("format", opts.format, backup.Formats()...); err != nil {
			return err
		}
		name, local, err := c.importInput(args[0])
		if err != nil {
			return err
		}
		req := map[string]any{"filename": name, "dry_run": opts.dryRun, "replace": opts.replace,
			"format": opts.format, "restore_config_files": opts.restore}
		if t := splitList(opts.tables); t != nil {
			req["tables"] = t
		}
		if opts.authAs != "" {
			req["emqx_auth_as"] = opts.authAs
		}
		uploaded := false
		var rep backup.ImportReport
		pv := newProgressView(cmd.ErrOrStderr(), "import")
		switch {
		case local != "" && opts.dryRun:
			// Sent with the import itself: the node does not keep it.
			err = cl.streamFile(ctx, "/api/v1/data/import", req, local, newProgressView(cmd.ErrOrStderr(), "upload"), pv.update, &rep)
		case local != "":
			res, uerr := cl.upload(ctx, local, name, opts.format, opts.authAs, newProgressView(cmd.ErrOrStderr(), "upload"))
			if uerr != nil {
				return reportInvalid(out, uerr)
			}
			req["filename"], uploaded = res.Name, true
			fallthrough
		default:
			err = cl.stream(ctx, "/api/v1/data/import", req, pv.update, &rep)
		}
		pv.finish()
		if err != nil {
			return reportInvalid(out, err)
		}
		name, _ = req["filename"].(string)
		if uploaded {
			rep.Notes = append(rep.Notes, fmt.Sprintf("uploaded to the node's backup dir as %s", name))
		}
		return out.print(&rep, importTable(&rep))
	})
	return cmd
}

// reportInvalid prints the problems of a refused file as JSON (with
// --output json; the message lists them otherwise) and returns the error.
func reportInvalid(out *printer, err error) error {
	var ie *InvalidFileError
	if errors.As(err, &ie) && out.json {
		_ = out.print(ie, nil)
	}
	return err
}

// importInput resolves the file to import: its name, and the path of a
// file on this machine to send to the node (empty for a file already in
// the node's backup dir, or an s3:// URL, which the node reads itself).
func (c *cli) importInput(arg string) (name, local string, err error) {
	if strings.HasPrefix(arg, "s3://") {
		return arg, "", nil
	}
	fi, err := os.Stat(arg)
	switch {
	case err == nil && fi.Mode().IsRegular():
		if c.host == "" {
			if dir, err := c.resolve(); err == nil {
				abs, _ := filepath.Abs(arg)
				if filepath.Dir(abs) == filepath.Join(dir, "backup") {
					return filepath.Base(abs), "", nil
				}
			}
		}
		return filepath.Base(arg), arg, nil
	case err == nil:
		return "", "", fmt.Errorf("%s is not a regular file", arg)
	case strings.ContainsAny(arg, `/\`):
		return "", "", fmt.Errorf("no such file: %s", arg)
	}
	return arg, "", nil // a name in the node's backup dir
}

func importTable(rep *backup.ImportReport) func(*tabwriter.Writer) {
	return func(tw *tabwriter.Writer) {
		src := rep.Format
		if rep.Version > 0 {
			src += fmt.Sprintf(" format %d", rep.Version)
		}
		if h := rep.Source; h != nil {
			src += fmt.Sprintf(", from node %s of cluster %s at raft index %d, %s", h.SourceNode, h.ClusterID, h.RaftIndex, timeCell(h.CreatedAt))
		}
		row(tw, "file:", rep.File+" ("+src+")")
		state := "committed at raft index " + fmt.Sprint(rep.RaftIndex)
		switch {
		case rep.DryRun:
			state = "dry run: nothing was changed"
		case !rep.Committed:
			state = "nothing to commit"
		}
		row(tw, "mode:", rep.Mode+", "+state)
		fmt.Fprintln(tw)
		row(tw, "TABLE", "RECORDS", "ADDED", "CHANGED", "UNCHANGED", "REMOVED", "NOTE")
		for _, t := range rep.Tables {
			removed := fmt.Sprint(t.Removed)
			if rep.Mode != "replace" {
				removed = "-"
			}
			if t.Skipped != "" {
				row(tw, t.Table, fmt.Sprint(t.Records), "", "", "", "", "skipped: "+t.Skipped)
				continue
			}
			row(tw, t.Table, fmt.Sprint(t.Records), fmt.Sprint(t.Added), fmt.Sprint(t.Changed), fmt.Sprint(t.Unchanged), removed, "")
		}
		if len(rep.ConfigFiles) > 0 {
			fmt.Fprintln(tw)
			fmt.Fprintln(tw, "config files:")
			for _, f := range rep.ConfigFiles {
				line := "  " + f.Path + ": " + f.Status
				switch f.Status {
				case backup.ConfigDiffers, backup.ConfigMissing:
					line += " (not restored: --restore-config-files restores it)"
				case backup.ConfigRestored:
					if f.Backup != "" {
						line += " (the old file is kept as " + f.Backup + "; restart to apply)"
					}
				}
				if f.Error != "" {
					line += ": " + f.Error
				}
				fmt.Fprintln(tw, line)
				for _, d := range f.Diff {
					fmt.Fprintln(tw, "      "+cell(d))
				}
			}
		}
		for _, s := range rep.Skipped {
			fmt.Fprintln(tw, "skipped: "+s)
		}
		for _, n := range rep.Notes {
			fmt.Fprintln(tw, "note: "+n)
		}
		verb := "imported"
		if rep.DryRun {
			verb = "validated"
		}
		fmt.Fprintf(tw, "%s %d records in %s (%.0f records/s)\n", verb, rep.Records,
			(time.Duration(rep.DurationMS) * time.Millisecond).String(), rep.RecordsPerSec)
	}
}

func (c *cli) dataFilesCmd() *cobra.Command {
	var remote bool
	cmd := &cobra.Command{
		Use:   "files [--remote]",
		Short: "List the files in the node's backup dir (exports, uploads), or --remote at backup.target",
	}
	// Not a persistent flag: upload writes only to the backup dir, and
	// must refuse --remote rather than ignore it.
	cmd.Flags().BoolVar(&remote, "remote", false, "list backup.target instead of the node's backup dir")
	cmd.RunE = c.run(func(ctx context.Context, cl *Client, out *printer, _ []string) error {
		var res struct {
			Data     []backup.FileInfo `json:"data"`
			Dir      string            `json:"dir,omitempty"`
			Location string            `json:"location"`
			Remote   bool              `json:"remote"`
			Schedule *ExportSchedule   `json:"schedule,omitempty"`
		}
		if err := cl.Do(ctx, http.MethodGet, "/api/v1/data/files"+remoteQuery(remote), nil, &res); err != nil {
			return err
		}
		return out.print(res, func(tw *tabwriter.Writer) {
			if res.Location != "" {
				row(tw, "files at:", res.Location)
				fmt.Fprintln(tw)
			}
			row(tw, "NAME", "SIZE", "MODIFIED")
			for _, f := range res.Data {
				row(tw, f.Name, fmt.Sprint(f.Size), timeCell(f.ModifiedAt))
			}
			if res.Schedule != nil {
				fmt.Fprintln(tw)
				printExportSchedule(tw, *res.Schedule)
			}
		})
	})
	var uploadName, uploadFormat string
	upload := &cobra.Command{
		Use:   "upload FILE",
		Short: "Upload FILE to the node's backup dir (validated first: a file with problems is not kept)",
	}
	upload.RunE = c.long(&c.output, func(ctx context.Context, cl *Client, out *printer, cmd *cobra.Command, args []string) error {
		name := uploadName
		if name == "" {
			name = filepath.Base(args[0])
		}
		res, err := cl.upload(ctx, args[0], name, uploadFormat, "", newProgressView(cmd.ErrOrStderr(), "upload"))
		if err != nil {
			return reportInvalid(out, err)
		}
		return out.print(res, func(tw *tabwriter.Writer) {
			fmt.Fprintf(tw, "uploaded %s (%d bytes, %s, %d records)\n", res.Name, res.Size, res.Report.Format, res.Report.Records)
		})
	})
	upload.Flags().StringVar(&uploadName, "name", "", "name in the backup dir (default: FILE's; a taken name gets a number)")
	upload.Flags().StringVar(&uploadFormat, "format", "auto", "file format: auto, roost, emqx4 or mosquitto-dynsec")
	download := &cobra.Command{
		Use:   "download NAME [FILE]",
		Short: "Download a file of the node's backup dir (to ./NAME by default)",
	}
	download.RunE = c.long(&c.output, func(ctx context.Context, cl *Client, out *printer, cmd *cobra.Command, args []string) error {
		dst := args[0]
		if len(args) == 2 {
			dst = args[1]
		}
		if err := cl.downloadFrom(ctx, "/api/v1/data/files/"+PathEscape(args[0])+remoteQuery(remote), dst, newProgressView(cmd.ErrOrStderr(), "download")); err != nil {
			return err
		}
		return out.done("downloaded %s to %s", args[0], dst)
	})
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a file of the node's backup dir",
		RunE: c.run(func(ctx context.Context, cl *Client, out *printer, args []string) error {
			if err := cl.Do(ctx, http.MethodDelete, "/api/v1/data/files/"+PathEscape(args[0])+remoteQuery(remote), nil, nil); err != nil {
				return err
			}
			return out.done("deleted %s", args[0])
		}),
	}
	download.Flags().BoolVar(&remote, "remote", false, "from backup.target instead of the node's backup dir")
	del.Flags().BoolVar(&remote, "remote", false, "at backup.target instead of the node's backup dir")
	cmd.AddCommand(upload, download, del)
	return cmd
}

// ---- client side of the data routes ----

// send is Request with a given content type and Accept header.
func (c *Client) send(ctx context.Context, method, path, ctype, accept string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("build request %s %s: %w", method, path, err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", accept)
	if c.apiKey != "" {
		name, secret, _ := strings.Cut(c.apiKey, ":")
		req.SetBasicAuth(name, secret)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		var ue *UnreachableError
		if errors.As(err, &ue) {
			return nil, ue
		}
		if c.socket == "" {
			return nil, &UnreachableError{Msg: fmt.Sprintf("cannot reach the node at %s: %v", c.base, unwrapURLError(err)), Err: err}
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, unwrapURLError(err))
	}
	if res.StatusCode >= 300 {
		defer res.Body.Close()
		if res.StatusCode == http.StatusUnprocessableEntity {
			b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<20))
			var ie InvalidFileError
			if json.Unmarshal(b, &ie) == nil && ie.Code != "" {
				return nil, &ie
			}
			res.Body = io.NopCloser(strings.NewReader(string(b)))
		}
		return nil, readError(res)
	}
	return res, nil
}

// stream POSTs body and reads the NDJSON answer of a long operation:
// progress lines to onProgress, then the result into out or an error.
func (c *Client) stream(ctx context.Context, path string, body any, onProgress func(backup.Progress), out any) error {
	j, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return c.streamBody(ctx, path, "application/json", strings.NewReader(string(j)), nil, onProgress, out)
}

// streamFile is stream with a local file sent along: a multipart body of
// the options (JSON) and the file.
func (c *Client) streamFile(ctx context.Context, path string, options any, file string, upv *progressView,
	onProgress func(backup.Progress), out any) error {
	j, err := json.Marshal(options)
	if err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := mw.WriteField("options", string(j))
		var part io.Writer
		if err == nil {
			part, err = mw.CreateFormFile("file", filepath.Base(file))
		}
		if err == nil {
			_, err = io.Copy(part, &progressReader{r: f, total: fi.Size(), pv: upv})
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	defer pr.CloseWithError(errors.New("request done"))
	return c.streamBody(ctx, path, mw.FormDataContentType(), pr, upv.finish, onProgress, out)
}

// streamBody posts body and reads a streamed answer; sent, if set, is
// called once the node has answered (it has read the whole body then).
func (c *Client) streamBody(ctx context.Context, path, ctype string, body io.Reader, sent func(),
	onProgress func(backup.Progress), out any) error {
	res, err := c.send(ctx, http.MethodPost, path, ctype, "application/x-ndjson", body)
	if sent != nil {
		sent()
	}
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "application/x-ndjson") {
		return json.NewDecoder(res.Body).Decode(out) // a node that does not stream
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	for sc.Scan() {
		var line struct {
			Progress *backup.Progress `json:"progress"`
			Result   json.RawMessage  `json:"result"`
			Error    json.RawMessage  `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return fmt.Errorf("%s: unreadable answer line: %w", path, err)
		}
		switch {
		case line.Progress != nil:
			if onProgress != nil {
				onProgress(*line.Progress)
			}
		case line.Result != nil:
			return json.Unmarshal(line.Result, out)
		case line.Error != nil:
			var ie InvalidFileError
			if json.Unmarshal(line.Error, &ie) == nil && ie.Code == "INVALID_FILE" {
				return &ie
			}
			e := &Error{}
			if json.Unmarshal(line.Error, e) != nil || e.Message == "" {
				return fmt.Errorf("%s: %s", path, line.Error)
			}
			return e
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: the answer broke off: %w", path, err)
	}
	return fmt.Errorf("%s: the node closed the connection before answering (did it stop?)", path)
}

// upload sends a local file to the node's backup dir (multipart); a
// taken name gets a number.
func (c *Client) upload(ctx context.Context, path, name, format, authAs string, pv *progressView) (*backup.UploadResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		part, err := mw.CreateFormFile("file", name)
		if err == nil {
			_, err = io.Copy(part, &progressReader{r: f, total: fi.Size(), pv: pv})
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	q := url.Values{"name": {name}, "on_conflict": {"rename"}}
	if format != "" {
		q.Set("format", format)
	}
	if authAs != "" {
		q.Set("emqx_auth_as", authAs)
	}
	res, err := c.send(ctx, http.MethodPost, "/api/v1/data/files?"+q.Encode(), mw.FormDataContentType(), "application/json", pr)
	pr.CloseWithError(errors.New("request done"))
	pv.finish()
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var out backup.UploadResult
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("upload: decode answer: %w", err)
	}
	return &out, nil
}

// downloadFrom copies what GET path answers to dst.
func (c *Client) downloadFrom(ctx context.Context, path, dst string, pv *progressView) error {
	res, err := c.send(ctx, http.MethodGet, path, "", "*/*", nil)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	dir := filepath.Dir(dst)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dst)+".part*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	n, err := io.Copy(tmp, &progressReader{r: res.Body, total: res.ContentLength, pv: pv})
	pv.finish()
	if err == nil && res.ContentLength >= 0 && n != res.ContentLength {
		err = fmt.Errorf("got %d of %d bytes", n, res.ContentLength)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// ---- progress ----

// progressView shows progress on stderr: one rewritten line on a
// terminal, a plain line every few seconds (and per phase) otherwise.
// An upload's bytes are counted on the goroutine that sends the body,
// which may still run when the answer has come: mu orders the two.
type progressView struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	label string
	phase string
	last  time.Time
	shown bool
}

func newProgressView(w io.Writer, label string) *progressView {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progressView{w: w, tty: tty, label: label}
}

func (v *progressView) update(p backup.Progress) {
	if v == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	now := time.Now()
	newPhase := p.Phase != v.phase
	interval := 3 * time.Second
	if v.tty {
		interval = 100 * time.Millisecond
	}
	if !newPhase && now.Sub(v.last) < interval && !(p.Total > 0 && p.Done == p.Total) {
		return
	}
	v.phase, v.last = p.Phase, now
	if p.Phase == "commit" {
		if p.Done == 0 {
			v.print(v.label + ": committing (one raft entry)")
		} else {
			v.print(v.label + ": committed")
		}
		return
	}
	line := fmt.Sprintf("%s: %s %d", v.label, p.Phase, p.Done)
	switch {
	case p.Total > 0:
		line += fmt.Sprintf("/%d records (%d%%)", p.Total, p.Done*100/p.Total)
	case p.BytesTotal > 0:
		line += fmt.Sprintf(" records (%d%% of the file)", p.Bytes*100/p.BytesTotal)
	default:
		line += " records"
	}
	if p.Rate > 0 {
		line += fmt.Sprintf(", %.0f records/s", p.Rate)
	}
	v.print(line)
}

func (v *progressView) bytes(done, total int64) {
	if v == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	now := time.Now()
	interval := 3 * time.Second
	if v.tty {
		interval = 100 * time.Millisecond
	}
	if now.Sub(v.last) < interval && done != total {
		return
	}
	v.last = now
	line := fmt.Sprintf("%s: %d bytes", v.label, done)
	if total > 0 {
		line = fmt.Sprintf("%s: %d/%d bytes (%d%%)", v.label, done, total, done*100/total)
	}
	v.print(line)
}

func (v *progressView) print(line string) {
	v.shown = true
	if v.tty {
		fmt.Fprintf(v.w, "\r%s\033[K", line)
		return
	}
	fmt.Fprintln(v.w, line)
}

// finish ends the progress line on a terminal.
func (v *progressView) finish() {
	if v == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.tty && v.shown {
		fmt.Fprint(v.w, "\r\033[K")
		v.shown = false
	}
}

type progressReader struct {
	r     io.Reader
	n     int64
	total int64
	pv    *progressView
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.total > 1<<20 { // small files go by too fast to show
		p.pv.bytes(p.n, p.total)
	}
	return n, err
}

// printExportSchedule writes the scheduled exports' state.
func printExportSchedule(tw *tabwriter.Writer, s ExportSchedule) {
	if !s.Enabled {
		row(tw, "scheduled exports:", "off (export.interval)")
		return
	}
	row(tw, "scheduled exports:", fmt.Sprintf("every %s by the raft leader, keep %d, to %s", s.Interval, s.Keep, s.Target))
	if !s.NextAt.IsZero() {
		row(tw, "next export:", s.NextAt.Format(time.RFC3339))
	}
	last := "none yet (from this node)"
	if !s.LastSuccess.IsZero() {
		last = s.LastSuccess.Format(time.RFC3339) + " (" + s.LastFile + ")"
	}
	row(tw, "last export:", last)
	if s.LastError != "" {
		row(tw, "last export error:", s.LastErrorAt.Format(time.RFC3339)+": "+s.LastError)
	}
}
