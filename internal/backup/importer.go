package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/roostmq/roost/internal/store"
)

// ImportOptions say how to import.
type ImportOptions struct {
	Format  string // auto (default) | roost | emqx4 | mosquitto-dynsec
	DryRun  bool   // report what would change; change nothing
	Replace bool   // each imported table becomes equal to the input's (default: merge)
	// Tables limits the import to these tables; nil: every table the
	// input holds. Records of other tables are still validated.
	Tables []string
	// Privileged callers (administrators) may import admins and
	// api_keys; for others those tables are left out.
	Privileged bool
	// RestoreConfigFiles writes the input's config files over this
	// node's (keeping each old one as .bak).
	RestoreConfigFiles bool
	Foreign            ForeignOptions
	Progress           func(Progress)
}

// ImportRequest names the input: a file of the backup dir, a file
// received for this import only (Received; Filename is then only its
// name in the report), or a Dataset read by a foreign reader.
type ImportRequest struct {
	Filename string
	Received *ReceivedFile
	Dataset  *Dataset
	ImportOptions
}

// TableReport is what an import does (or would do) to one table.
type TableReport struct {
	Table     string `json:"table"`
	Records   int    `json:"records"` // in the input
	Added     int    `json:"added"`
	Changed   int    `json:"changed"`
	Unchanged int    `json:"unchanged"`
	Removed   int    `json:"removed"` // --replace only
	// Skipped says why a table of the input is not imported.
	Skipped string `json:"skipped,omitempty"`

	existing int
}

// ImportReport describes an import: what the input is, what changed (or
// would change), and every problem found.
type ImportReport struct {
	File          string             `json:"file,omitempty"`
	Format        string             `json:"format"`
	Version       int                `json:"version,omitempty"`
	Source        *Header            `json:"source,omitempty"`
	Mode          string             `json:"mode"` // merge | replace
	DryRun        bool               `json:"dry_run"`
	Committed     bool               `json:"committed"`
	RaftIndex     uint64             `json:"raft_index,omitempty"` // of the commit
	Records       int64              `json:"records"`              // imported (staged) records
	Tables        []TableReport      `json:"tables"`
	ConfigFiles   []ConfigFileReport `json:"config_files,omitempty"`
	Skipped       []string           `json:"skipped,omitempty"`
	Notes         []string           `json:"notes,omitempty"`
	ProblemCount  int                `json:"problem_count"`
	Problems      []Problem          `json:"problems,omitempty"` // the first 1000
	DurationMS    int64              `json:"duration_ms"`
	RecordsPerSec float64            `json:"records_per_sec"`
}

// ValidationError is an input with problems: nothing was changed.
type ValidationError struct{ Report *ImportReport }

func (e *ValidationError) Error() string {
	r := e.Report
	what := r.File
	if what == "" {
		what = "the input"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problem", what, r.ProblemCount)
	if r.ProblemCount != 1 {
		b.WriteString("s")
	}
	b.WriteString(", nothing was imported")
	for i, p := range r.Problems {
		if i == 10 {
			fmt.Fprintf(&b, "\n  ... and %d more", r.ProblemCount-10)
			break
		}
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

func storeTables() []string { return store.Tables }

func inStoreOrder(tables []string) []string {
	var out []string
	for _, t := range store.Tables {
		if slices.Contains(tables, t) {
			out = append(out, t)
		}
	}
	return out
}

// PrivilegedTable reports whether only administrators may export or
// import table t: admins and api_keys, which hold credentials of the API.
func PrivilegedTable(t string) bool { return t == store.TableAdmins || t == store.TableAPIKeys }

func (o *ImportOptions) check() error {
	if o.Format == "" {
		o.Format = FormatAuto
	}
	if !slices.Contains(Formats(), o.Format) {
		return fmt.Errorf("%w: unknown format %q (one of %s)", ErrBadRequest, o.Format, strings.Join(Formats(), ", "))
	}
	for _, t := range o.Tables {
		if !slices.Contains(store.Tables, t) {
			return fmt.Errorf("%w: unknown table %q (tables: %s)", ErrBadRequest, t, strings.Join(store.Tables, ", "))
		}
		if PrivilegedTable(t) && !o.Privileged {
			return fmt.Errorf("%w: only administrators may import the %s table", ErrBadRequest, t)
		}
	}
	if a := o.Foreign.EMQXAuthAs; a != "" && a != store.KindUsername && a != store.KindClientID {
		return fmt.Errorf("%w: emqx auth-as %q: want username or clientid", ErrBadRequest, a)
	}
	return nil
}

// CheckImport refuses, before any work, a request Import would refuse at
// once: bad options, a bad or missing file name. (Callers that stream a
// response check first, so that these get an ordinary error status.)
func (m *Manager) CheckImport(req ImportRequest) error {
	if err := req.check(); err != nil {
		return err
	}
	if req.Dataset != nil || req.Received != nil {
		return nil
	}
	p, err := m.path(req.Filename)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s in the backup dir %s (upload it first)", ErrFileNotFound, req.Filename, m.opts.Dir)
	}
	return nil
}

// openSource resolves the input of an import.
func (m *Manager) openSource(req *ImportRequest, rep *ImportReport) (source, error) {
	if req.Dataset != nil {
		f := req.Format
		if f == FormatAuto {
			f = "dataset"
		}
		rep.Format = f
		return &datasetSource{ds: req.Dataset, format: f, settlers: settlersOf(req.Dataset)}, nil
	}
	if req.Received != nil {
		return m.fileSource(req.Received.path, req.ImportOptions, rep)
	}
	p, err := m.path(req.Filename)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s in the backup dir %s (upload it first)", ErrFileNotFound, req.Filename, m.opts.Dir)
	}
	return m.fileSource(p, req.ImportOptions, rep)
}

func (m *Manager) fileSource(path string, opts ImportOptions, rep *ImportReport) (source, error) {
	format := opts.Format
	if format == FormatAuto {
		f, err := detectFormat(path, m.opts.DetectForeign)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				return nil, err
			}
			rep.Format = FormatAuto
			p := &problems{}
			p.stop("%v", err)
			return nil, m.invalid(rep, p)
		}
		format = f
	}
	rep.Format = format
	src := &fileSource{path: path, format: format, fopts: opts.Foreign}
	if format != FormatRoost {
		r, err := m.foreign(format)
		if err != nil {
			return nil, err
		}
		src.foreign = r
	}
	return src, nil
}

func (m *Manager) invalid(rep *ImportReport, p *problems) error {
	rep.Problems, rep.ProblemCount = p.list, p.total
	return &ValidationError{Report: rep}
}

// validateFile validates a file as an import would, without a store.
func (m *Manager) validateFile(ctx context.Context, path, name string, opts ImportOptions) (*ImportReport, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	rep := &ImportReport{File: name, Mode: store.MergeMode, DryRun: true}
	src, err := m.fileSource(path, opts, rep)
	if err != nil {
		return nil, err
	}
	p := &problems{}
	pipe := newPipeline(p)
	counts := map[string]int{}
	info, err := scanChecked(ctx, src, p, func(table string, num int, raw []byte, c checked) error {
		if _, _, _, ok := pipe.accept(table, num, raw, c); ok {
			counts[table]++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	fillSource(rep, info)
	if !p.empty() {
		return nil, m.invalid(rep, p)
	}
	for _, t := range info.Sections {
		rep.Tables = append(rep.Tables, TableReport{Table: t, Records: counts[t]})
		rep.Records += int64(counts[t])
	}
	return rep, nil
}

func fillSource(rep *ImportReport, info *sourceInfo) {
	if info == nil {
		return
	}
	rep.Version = info.Version
	if h := info.Header; h != nil && (h.SourceNode != "" || !h.CreatedAt.IsZero()) {
		rep.Source = h
	}
	rep.Skipped = append(rep.Skipped, info.Skipped...)
	rep.Notes = append(rep.Notes, info.Notes...)
}

// Import validates the whole input, then (unless a dry run) stages its
// records in the replicated store and commits them in one raft entry:
// every node changes at once, or none does. An input with any problem
// changes nothing and returns a *ValidationError listing the problems.
func (m *Manager) Import(ctx context.Context, req ImportRequest) (*ImportReport, error) {
	start := time.Now()
	if err := req.check(); err != nil {
		return nil, err
	}
	mode := store.MergeMode
	if req.Replace {
		mode = store.ReplaceMode
	}
	if req.Received != nil {
		req.Filename = req.Received.Name
	}
	rep := &ImportReport{File: req.Filename, Mode: mode, DryRun: req.DryRun}
	src, err := m.openSource(&req, rep)
	if err != nil {
		return nil, err
	}
	if !req.DryRun {
		if !m.importMu.TryLock() {
			return nil, fmt.Errorf("%w: another import is running on this node", ErrImportInProgress)
		}
		defer m.importMu.Unlock()
	}
	selected := func(t string) bool {
		return (req.Tables == nil || slices.Contains(req.Tables, t)) && (req.Privileged || !PrivilegedTable(t))
	}
	var candidates []string
	for _, t := range store.Tables {
		if selected(t) {
			candidates = append(candidates, t)
		}
	}

	// Pass 1: validate everything, and plan against a linearizable read
	// point (the dry-run report, and the counts of the real one).
	if _, err := m.st.SyncPoint(ctx); err != nil {
		return nil, fmt.Errorf("import: reach a consistent read point: %w", err)
	}
	plan, err := newPlanner(m.st, req.Replace, candidates)
	if err != nil {
		return nil, err
	}
	var sp *spool
	if !req.DryRun {
		if sp, err = m.newSpool(); err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		defer sp.remove()
	}
	p := &problems{}
	pipe := newPipeline(p)
	prog := newProgress(req.Progress, "validate")
	var seen int64
	admins := &adminChanges{}
	info, err := scanChecked(ctx, src, p, func(table string, num int, raw []byte, c checked) error {
		key, val, rule, ok := pipe.accept(table, num, raw, c)
		seen++
		if seen%1024 == 0 {
			b, bt := src.position()
			prog.report(seen, 0, b, bt, false)
		}
		if !ok || !p.empty() || !selected(table) {
			return nil // after a problem, only validation goes on
		}
		var cur []byte
		if settle := src.settle(table, key); settle != nil || table == store.TableAdmins {
			var err error
			if cur, err = m.current(table, key); err != nil {
				return err
			}
			if v := settleValue(settle, cur); v != nil {
				if val, err = marshalRecord(v); err != nil {
					return fmt.Errorf("%s %q: %w", table, key, err)
				}
			}
		}
		if table == store.TableAdmins {
			admins.add(key, cur, val)
		}
		if sp != nil {
			if err := sp.add(table, key, val); err != nil {
				return err
			}
		}
		return plan.add(table, key, val, rule)
	})
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	b, bt := src.position()
	prog.report(seen, seen, b, bt, true)
	fillSource(rep, info)
	if !p.empty() {
		m.log.Warn("import refused: the input has problems", "file", req.Filename, "format", rep.Format, "problems", p.total)
		return nil, m.invalid(rep, p)
	}
	if err := plan.finish(); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if selected(store.TableAdmins) && slices.Contains(info.Sections, store.TableAdmins) {
		note, err := admins.note(m.st, req.Replace, req.DryRun)
		if err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		if note != "" {
			rep.Notes = append(rep.Notes, note)
		}
	}

	// What is imported: the tables the input holds, as selected.
	counts := map[string]int{}
	for _, t := range info.Sections {
		tr := plan.reports[t]
		if tr == nil {
			tr = &TableReport{Table: t, Skipped: "not selected"}
			if !req.Privileged && PrivilegedTable(t) {
				tr.Skipped = "only administrators may import this table"
			}
			rep.Tables = append(rep.Tables, *tr)
			continue
		}
		counts[t] = tr.Records
		rep.Records += int64(tr.Records)
		rep.Tables = append(rep.Tables, *tr)
	}
	for _, t := range req.Tables {
		if !slices.Contains(info.Sections, t) {
			rep.Tables = append(rep.Tables, TableReport{Table: t, Skipped: "not in the input"})
		}
	}
	rep.ConfigFiles = m.configFiles(info.ConfigFiles, req.RestoreConfigFiles, false)
	if req.DryRun {
		d := time.Since(start)
		rep.DurationMS, rep.RecordsPerSec = d.Milliseconds(), rate(seen, d)
		return rep, nil
	}
	if len(counts) == 0 {
		rep.Notes = append(rep.Notes, "nothing to import: no selected table in the input")
		return rep, nil
	}

	// Pass 2: stage, then commit in one raft entry.
	if err := m.clearStale(ctx); err != nil {
		return nil, err
	}
	id := newStageID(start)
	begin, err := store.StageBegin(store.StageInfo{ID: id, Node: m.opts.NodeName, Source: rep.File + " (" + rep.Format + ")", StartedAt: start.UTC()})
	if err != nil {
		return nil, err
	}
	if _, err := applyRetry(ctx, m.st, begin); err != nil {
		return nil, fmt.Errorf("import: begin staging: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			m.abort(id)
		}
	}()
	m.log.Info("import: staging", "stage", id, "file", rep.File, "format", rep.Format, "mode", mode, "records", rep.Records)
	stg := newStager(m.st, id, m.opts.StageBytes, m.opts.StageWindow)
	sprog := newProgress(req.Progress, "stage")
	var staged int64
	err = sp.each(ctx, func(table, key string, val []byte) error {
		if _, imported := counts[table]; !imported {
			return nil
		}
		staged++
		sprog.report(staged, rep.Records, 0, 0, false)
		return stg.add(ctx, table, key, val)
	})
	if werr := stg.wait(ctx); err == nil {
		err = werr
	}
	if err != nil {
		return nil, fmt.Errorf("import: %w (nothing was changed)", err)
	}
	for t, n := range counts {
		if stg.counts[t] != n {
			return nil, fmt.Errorf("import: staged %d records of %s, validated %d; nothing was changed", stg.counts[t], t, n)
		}
	}
	sprog.report(staged, rep.Records, 0, 0, true)

	if req.Progress != nil {
		req.Progress(Progress{Phase: "commit", Done: 0, Total: 1})
	}
	commit, err := store.StageCommit(id, store.CommitSpec{Mode: mode, Counts: counts})
	if err != nil {
		return nil, err
	}
	// Once the commit entry is submitted it may commit whatever happens
	// to this request: it is not cancelled with it.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	res, err := applyRetry(cctx, m.st, commit)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("import: commit: %w (the import may or may not have been committed: compare `roost ctl data digest` with the file)", err)
	}
	cr := store.CommitResult{Reason: "no result"}
	if len(res.Keys) == 1 {
		cr = store.ParseCommitResult(res.Keys[0])
	}
	if !cr.Committed {
		return nil, fmt.Errorf("import: not committed: %s; nothing was changed", cr.Reason)
	}
	committed = true
	rep.Committed, rep.RaftIndex = true, cr.Index
	if req.Progress != nil {
		req.Progress(Progress{Phase: "commit", Done: 1, Total: 1})
	}
	rep.ConfigFiles = m.configFiles(info.ConfigFiles, req.RestoreConfigFiles, true)
	d := time.Since(start)
	rep.DurationMS, rep.RecordsPerSec = d.Milliseconds(), rate(rep.Records, d)
	m.log.Info("import: committed", "stage", id, "file", rep.File, "format", rep.Format, "mode", mode,
		"records", rep.Records, "raft_index", cr.Index, "duration", d.Round(time.Millisecond))
	return rep, nil
}

func settleValue(settle func([]byte) any, cur []byte) any {
	if settle == nil || cur == nil {
		return nil
	}
	return settle(cur)
}

// adminChanges collects the existing admins an import changes, to say in
// the report that their old passwords stop working (the initial admin's,
// in <data_dir>/initial-admin-password, most of all).
type adminChanges struct {
	seen    map[string]bool
	changed []string
}

func (a *adminChanges) add(key string, cur, val []byte) {
	if a.seen == nil {
		a.seen = map[string]bool{}
	}
	a.seen[key] = true
	if cur != nil && !bytes.Equal(cur, val) {
		a.changed = append(a.changed, key)
	}
}

// note is the report's note on the admins the import replaces or (with
// replace) removes; "" when it leaves every existing admin as it is.
func (a *adminChanges) note(st *store.Store, replace, dryRun bool) (string, error) {
	var removed []string
	if replace {
		err := st.View(func(tx *store.Tx) error {
			return tx.ForEach(store.TableAdmins, func(k string, _ []byte) error {
				if !a.seen[k] {
					removed = append(removed, k)
				}
				return nil
			})
		})
		if err != nil {
			return "", fmt.Errorf("read admins: %w", err)
		}
	}
	if len(a.changed) == 0 && len(removed) == 0 {
		return "", nil
	}
	verb := func(past, future string) string {
		if dryRun {
			return future
		}
		return past
	}
	var parts []string
	if len(a.changed) > 0 {
		parts = append(parts, verb("replaced", "would replace")+" "+plural(len(a.changed), "existing admin")+" ("+quoted(a.changed)+")")
	}
	if len(removed) > 0 {
		parts = append(parts, verb("removed", "would remove")+" "+plural(len(removed), "admin")+" ("+quoted(removed)+")")
	}
	return fmt.Sprintf("admins: the import %s: their old passwords %s, including the initial admin's in "+
		"<data_dir>/%s of the node that created the cluster (that node removes the file once it no longer works); "+
		"log in with the imported admins' own passwords",
		strings.Join(parts, " and "), verb("no longer work", "would no longer work"),
		"initial-admin-password"), nil // api.InitialAdminPasswordFile (api imports this package)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func quoted(names []string) string {
	q := make([]string, 0, min(len(names), 11))
	for i, n := range names {
		if i == 10 {
			q = append(q, fmt.Sprintf("and %d more", len(names)-10))
			break
		}
		q = append(q, fmt.Sprintf("%q", n))
	}
	return strings.Join(q, ", ")
}

// current returns the stored value of table's record under key, nil when
// there is none.
func (m *Manager) current(table, key string) ([]byte, error) {
	var cur []byte
	err := m.st.View(func(tx *store.Tx) error {
		if v := tx.Get(table, key); v != nil {
			cur = bytes.Clone(v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("import: read %s %q: %w", table, key, err)
	}
	return cur, nil
}

func newStageID(t time.Time) string {
	b := make([]byte, 4)
	rand.Read(b)
	return t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// abort removes a stage, best effort: an abandoned stage is invisible
// and the next import removes it anyway.
func (m *Manager) abort(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := m.st.Apply(ctx, store.StageAbort(id)); err != nil {
		m.log.Warn("import: could not remove the stage of a failed import; the next import will", "stage", id, "err", err)
	}
}

// AbortOwnStages removes the stages this node left behind (it stopped or
// died during an import), so that imports on other nodes need not wait
// for them to go stale. Call it once the store has a leader, at start.
func (m *Manager) AbortOwnStages(ctx context.Context) error {
	if !m.importMu.TryLock() {
		return nil // an import runs here: its stage is not left behind
	}
	defer m.importMu.Unlock()
	stages, err := m.st.Stages()
	if err != nil {
		return fmt.Errorf("list stages: %w", err)
	}
	for _, s := range stages {
		if s.Node != m.opts.NodeName {
			continue
		}
		m.log.Info("import: removing the stage of an import this node did not finish", "stage", s.ID, "source", s.Source, "records", s.Records)
		if _, err := m.st.Apply(ctx, store.StageAbort(s.ID)); err != nil {
			return fmt.Errorf("remove stage %s: %w", s.ID, err)
		}
	}
	return nil
}

// clearStale removes the stages of imports that no longer run: this
// node's (none runs here: the caller holds importMu) and other nodes'
// idle for StaleAfter. A recently active stage of another node means an
// import runs there: this one waits its turn.
func (m *Manager) clearStale(ctx context.Context) error {
	stages, err := m.st.Stages()
	if err != nil {
		return fmt.Errorf("import: list stages: %w", err)
	}
	for _, s := range stages {
		last := s.StartedAt
		if s.Touched.After(last) {
			last = s.Touched
		}
		if s.Node != m.opts.NodeName && time.Since(last) < m.opts.StaleAfter {
			return fmt.Errorf("%w: node %s is importing %s (stage %s, last activity %s ago); try again when it is done",
				ErrImportInProgress, s.Node, s.Source, s.ID, time.Since(last).Round(time.Second))
		}
		m.log.Info("import: removing an abandoned stage", "stage", s.ID, "stage_node", s.Node, "source", s.Source, "records", s.Records)
		if _, err := m.st.Apply(ctx, store.StageAbort(s.ID)); err != nil {
			return fmt.Errorf("import: remove abandoned stage %s: %w", s.ID, err)
		}
	}
	return nil
}
