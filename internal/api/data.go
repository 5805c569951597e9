package api

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/roostmq/roost/internal/backup"
	"github.com/roostmq/roost/internal/backup/target"
	"github.com/roostmq/roost/internal/store"
)

// Data export and import (docs/data-export-import.md):
//
//	POST   /api/v1/data/export          {filename?, tables?, include?: ["sessions"], to?} → the file written to backup.target (or to)
//	GET    /api/v1/data/files           files of the backup dir; ?remote=true: of backup.target
//	GET    /api/v1/data/files/{name}    download (administrators only: exports hold credential hashes); ?remote=true
//	POST   /api/v1/data/files           upload (multipart "file", or a raw body with ?name=); validated before it is kept
//	DELETE /api/v1/data/files/{name}    ?remote=true
//	POST   /api/v1/data/import          {filename, dry_run, replace, tables, format, restore_config_files, emqx_auth_as}
//	                                    or multipart: an "options" part (that JSON, filename optional), then the
//	                                    "file" part: imported (or dry-run) without keeping a copy;
//	                                    filename s3://bucket/prefix/name: read from there, no copy kept (administrators)
//
// Export and import answer one JSON document, or, when the request
// accepts application/x-ndjson, a stream of lines: {"progress":{...}}
// while they run, then {"result":{...}} or {"error":{...}}. An input
// with problems is 422 INVALID_FILE with every problem listed.

// CodeInvalidFile is the error code of an export or upload with problems.
const CodeInvalidFile = "INVALID_FILE"

// CodeTargetFailed is the error code of a backup target (a directory, an
// S3 service) that refused or failed an operation; the message names the
// target and, for S3, the service's error code.
const CodeTargetFailed = "TARGET_FAILED"

// CodeNoRemoteTarget is a ?remote=true request to a node whose
// backup.target is not set (its backups and exports are in its backup
// dir): 400, told from other bad requests by this code.
const CodeNoRemoteTarget = "NO_REMOTE_TARGET"

// ExportRequest is the body of POST /api/v1/data/export.
type ExportRequest struct {
	Filename string   `json:"filename,omitempty"`
	Tables   []string `json:"tables,omitempty"`
	Include  []string `json:"include,omitempty"` // "sessions"
	// To: "" backup.target, "local" the backup dir, an absolute
	// directory path or s3://bucket/prefix (administrators only).
	To string `json:"to,omitempty"`
}

// ImportRequest is the body of POST /api/v1/data/import.
type ImportRequest struct {
	Filename           string   `json:"filename"`
	DryRun             bool     `json:"dry_run,omitempty"`
	Replace            bool     `json:"replace,omitempty"`
	Tables             []string `json:"tables,omitempty"`
	Format             string   `json:"format,omitempty"` // auto | roost | emqx4 | mosquitto-dynsec
	RestoreConfigFiles bool     `json:"restore_config_files,omitempty"`
	EMQXAuthAs         string   `json:"emqx_auth_as,omitempty"` // username | clientid
}

// InvalidFileError is the body of a 422: every problem of the input.
type InvalidFileError struct {
	Code         string               `json:"code"`
	Message      string               `json:"message"`
	ProblemCount int                  `json:"problem_count"`
	Problems     []backup.Problem     `json:"problems"`
	Report       *backup.ImportReport `json:"report"`
}

// RegisterData serves the data export/import routes with d.
func (s *Server) RegisterData(d *backup.Manager) {
	h := &dataHandlers{s: s, d: d}
	s.Handle("POST /api/v1/data/export", h.export)
	s.Handle("GET /api/v1/data/files", h.list)
	s.Handle("GET /api/v1/data/files/{name}", h.download)
	s.Handle("POST /api/v1/data/files", h.upload)
	s.Handle("DELETE /api/v1/data/files/{name}", h.delete)
	s.Handle("POST /api/v1/data/import", h.importData)
}

type dataHandlers struct {
	s *Server
	d *backup.Manager
}

func isAdministrator(r *http.Request) bool {
	c := CallerFrom(r.Context())
	return c != nil && c.Role == RoleAdministrator
}

func forbidden(format string, args ...any) *Error {
	return errorf(http.StatusForbidden, CodeForbidden, format, args...)
}

// dataError maps the backup package's errors to API errors.
func dataError(err error) error {
	var e *Error
	switch {
	case err == nil || errors.As(err, &e):
		return err
	case errors.Is(err, backup.ErrNoRemote):
		return errorf(http.StatusBadRequest, CodeNoRemoteTarget, "%v", strings.TrimPrefix(err.Error(), backup.ErrBadRequest.Error()+": "))
	case errors.Is(err, backup.ErrBadRequest), errors.Is(err, backup.ErrFormatUnsupported):
		return badRequest("%v", strings.TrimPrefix(err.Error(), backup.ErrBadRequest.Error()+": "))
	case errors.Is(err, backup.ErrFileNotFound):
		return notFound("%v", err)
	case errors.Is(err, backup.ErrFileExists):
		return conflict("%v", strings.TrimPrefix(err.Error(), backup.ErrFileExists.Error()+": "))
	case errors.Is(err, backup.ErrImportInProgress):
		return errorf(http.StatusConflict, CodeConflict, "%v", err)
	}
	var te *target.Error
	if errors.As(err, &te) {
		return errorf(http.StatusBadGateway, CodeTargetFailed, "%v", err)
	}
	return err
}

func invalidFile(ve *backup.ValidationError) *InvalidFileError {
	return &InvalidFileError{Code: CodeInvalidFile, Message: ve.Error(), ProblemCount: ve.Report.ProblemCount,
		Problems: ve.Report.Problems, Report: ve.Report}
}

// respond writes a long operation's outcome: result, or its error; on
// the stream st when the request asked for one.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, st *streamer, status int, result any, err error) error {
	var ve *backup.ValidationError
	if st == nil {
		if errors.As(err, &ve) {
			writeJSON(w, http.StatusUnprocessableEntity, invalidFile(ve))
			return nil
		}
		if err != nil {
			return dataError(err)
		}
		writeJSON(w, status, result)
		return nil
	}
	switch {
	case errors.As(err, &ve):
		st.send(map[string]any{"error": invalidFile(ve)})
	case err != nil:
		var e *Error
		if !errors.As(dataError(err), &e) {
			s.log.Error("api: long operation failed", "path", r.URL.Path, "err", err)
			e = errorf(http.StatusInternalServerError, CodeInternal, "%v", err)
		}
		st.send(map[string]any{"error": e})
	default:
		st.send(map[string]any{"result": result})
	}
	return nil
}

// streamer writes NDJSON lines, flushing each.
type streamer struct {
	mu  sync.Mutex
	enc *json.Encoder
	rc  *http.ResponseController
}

// newStreamer starts a stream when the request asks for one.
func newStreamer(w http.ResponseWriter, r *http.Request) *streamer {
	if !strings.Contains(r.Header.Get("Accept"), "application/x-ndjson") {
		return nil
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	st := &streamer{enc: json.NewEncoder(w), rc: http.NewResponseController(w)}
	st.rc.Flush()
	return st
}

func (st *streamer) send(v any) {
	st.mu.Lock()
	defer st.mu.Unlock()
	_ = st.enc.Encode(v)
	_ = st.rc.Flush()
}

func (st *streamer) progress() func(backup.Progress) {
	if st == nil {
		return nil
	}
	return func(p backup.Progress) { st.send(map[string]any{"progress": p}) }
}

// decodeOptional decodes a JSON body into v; an empty body leaves v as is.
func decodeOptional(w http.ResponseWriter, r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return decodeError(err, "")
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	return decodeFrom(strings.NewReader(string(body)), "", v)
}

func (h *dataHandlers) export(w http.ResponseWriter, r *http.Request) error {
	var in ExportRequest
	if err := decodeOptional(w, r, &in); err != nil {
		return err
	}
	tables := in.Tables
	if !isAdministrator(r) {
		for _, t := range tables {
			if backup.PrivilegedTable(t) {
				return forbidden("only administrators may export the %s table", t)
			}
		}
		if tables == nil {
			for _, t := range store.Tables {
				if !backup.PrivilegedTable(t) {
					tables = append(tables, t)
				}
			}
		}
	}
	sessions := false
	for _, inc := range in.Include {
		if inc != "sessions" {
			return fieldError("include", "unknown %q (only \"sessions\")", inc)
		}
		sessions = true
	}
	if in.To != "" && !isAdministrator(r) {
		return forbidden("only administrators may choose where an export is written")
	}
	req := backup.ExportRequest{Filename: in.Filename, Tables: tables, IncludeSessions: sessions, To: in.To}
	if err := h.d.CheckExport(req); err != nil {
		return dataError(err)
	}
	st := newStreamer(w, r)
	req.Progress = st.progress()
	res, err := h.d.Export(r.Context(), req)
	return h.s.respond(w, r, st, http.StatusCreated, res, err)
}

func (h *dataHandlers) list(w http.ResponseWriter, r *http.Request) error {
	remote, err := remoteParam(r)
	if err != nil {
		return err
	}
	if remote {
		files, err := h.d.RemoteFiles(r.Context())
		if err != nil {
			return dataError(err)
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": files, "location": h.d.Target().String(), "remote": true,
			"schedule": h.d.ScheduleStatus()})
		return nil
	}
	files, err := h.d.Files()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": files, "dir": h.d.Dir(), "location": h.d.Dir(), "remote": false,
		"schedule": h.d.ScheduleStatus()})
	return nil
}

func (h *dataHandlers) download(w http.ResponseWriter, r *http.Request) error {
	if !isAdministrator(r) {
		return forbidden("only administrators may download data files (they hold credential hashes)")
	}
	remote, err := remoteParam(r)
	if err != nil {
		return err
	}
	var f io.ReadCloser
	var fi backup.FileInfo
	if remote {
		f, fi, err = h.d.OpenRemote(r.Context(), r.PathValue("name"))
	} else {
		f, fi, err = h.d.Open(r.PathValue("name"))
	}
	if err != nil {
		return dataError(err)
	}
	defer f.Close()
	ctype := "application/octet-stream"
	switch {
	case strings.HasSuffix(fi.Name, ".gz"):
		ctype = "application/gzip"
	case strings.HasSuffix(fi.Name, ".json"):
		ctype = "application/json"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": fi.Name}))
	serveObject(w, r, f, fi.Size, fi.ModifiedAt)
	return nil
}

// upload keeps a file in the backup dir once it validates. Multipart:
// an optional "name" field before the "file" part (else the part's file
// name); or a raw body with ?name=. ?on_conflict=rename numbers a taken
// name instead of failing; ?format= and ?emqx_auth_as= as for import.
func (h *dataHandlers) upload(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	opts := backup.UploadOptions{Format: q.Get("format"), Foreign: backup.ForeignOptions{EMQXAuthAs: q.Get("emqx_auth_as")}}
	switch c := q.Get("on_conflict"); c {
	case "", "error":
	case "rename":
		opts.Rename = true
	default:
		return badRequest("query parameter \"on_conflict\": want error or rename, got %q", c)
	}
	name := q.Get("name")
	var body io.Reader
	ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ctype == "multipart/form-data" {
		mr, err := r.MultipartReader()
		if err != nil {
			return badRequest("multipart body: %v", err)
		}
		for body == nil {
			part, err := mr.NextPart()
			if err == io.EOF {
				return badRequest("multipart body: no \"file\" part")
			}
			if err != nil {
				return badRequest("multipart body: %v", err)
			}
			switch part.FormName() {
			case "name":
				b, err := io.ReadAll(io.LimitReader(part, 1024))
				if err != nil {
					return badRequest("multipart body: %v", err)
				}
				name = strings.TrimSpace(string(b))
			case "file":
				if name == "" {
					name = part.FileName()
				}
				body = part
			}
		}
	} else {
		body = r.Body
	}
	if name == "" {
		return badRequest("a file name is required: a \"name\" field, the file part's file name, or ?name=")
	}
	res, err := h.d.Upload(r.Context(), name, body, opts)
	return h.s.respond(w, r, nil, http.StatusCreated, res, err)
}

// receive reads a multipart import: the "options" part (JSON, decoded
// into in) and the "file" part, received into the backup dir as a file
// that is not kept.
func (h *dataHandlers) receive(r *http.Request, in *ImportRequest) (*backup.ReceivedFile, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, badRequest("multipart body: %v", err)
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil, badRequest("multipart body: no \"file\" part")
		}
		if err != nil {
			return nil, badRequest("multipart body: %v", err)
		}
		switch part.FormName() {
		case "options":
			if err := decodeFrom(io.LimitReader(part, maxBody), "", in); err != nil {
				return nil, err
			}
		case "file":
			if in.Filename == "" {
				in.Filename = part.FileName()
			}
			if in.Filename == "" {
				return nil, fieldError("filename", "required: in the \"options\" part, or as the file part's file name")
			}
			rf, err := h.d.Receive(in.Filename, part)
			if err != nil {
				return nil, dataError(err)
			}
			return rf, nil
		}
	}
}

func (h *dataHandlers) delete(w http.ResponseWriter, r *http.Request) error {
	remote, err := remoteParam(r)
	if err != nil {
		return err
	}
	if remote {
		err = h.d.DeleteRemote(r.Context(), r.PathValue("name"))
	} else {
		err = h.d.Delete(r.PathValue("name"))
	}
	if err != nil {
		return dataError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *dataHandlers) importData(w http.ResponseWriter, r *http.Request) error {
	var in ImportRequest
	var received *backup.ReceivedFile
	if ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ctype == "multipart/form-data" {
		// The whole file is read before anything is answered: an HTTP/1
		// handler must not read the request after writing the response.
		rf, err := h.receive(r, &in)
		if err != nil {
			return err
		}
		received = rf
		defer h.removeReceived(&received)
	} else {
		if err := decode(w, r, maxBody, &in); err != nil {
			return err
		}
		if in.Filename == "" {
			return fieldError("filename", "required (a file of the backup dir: upload it with POST /api/v1/data/files, or send it as the \"file\" part of a multipart import)")
		}
	}
	admin := isAdministrator(r)
	if !admin {
		for _, t := range in.Tables {
			if backup.PrivilegedTable(t) {
				return forbidden("only administrators may import the %s table", t)
			}
		}
	}
	if target.IsURL(in.Filename) {
		// An export at a target: read into a file of this import only
		// (as a multipart import's), removed before the answer.
		if !admin {
			return forbidden("only administrators may import from a remote target (the node's credentials read it)")
		}
		rf, err := h.d.Fetch(r.Context(), in.Filename)
		if err != nil {
			return dataError(err)
		}
		received = rf
		defer h.removeReceived(&received)
	}
	req := backup.ImportRequest{Filename: in.Filename, Received: received, ImportOptions: backup.ImportOptions{
		Format: in.Format, DryRun: in.DryRun, Replace: in.Replace, Tables: in.Tables, Privileged: admin,
		RestoreConfigFiles: in.RestoreConfigFiles, Foreign: backup.ForeignOptions{EMQXAuthAs: in.EMQXAuthAs},
	}}
	if err := h.d.CheckImport(req); err != nil {
		return dataError(err)
	}
	st := newStreamer(w, r)
	req.Progress = st.progress()
	rep, err := h.d.Import(r.Context(), req)
	// Before the answer, which may be the caller's cue to look.
	h.removeReceived(&received)
	return h.s.respond(w, r, st, http.StatusOK, rep, err)
}

// removeReceived removes a received import file, once.
func (h *dataHandlers) removeReceived(rf **backup.ReceivedFile) {
	if *rf == nil {
		return
	}
	if err := (*rf).Remove(); err != nil {
		h.s.log.Warn("could not remove a received import file", "err", err)
	}
	*rf = nil
}
