package api

import (
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/roostmq/roost/internal/backup"
	"github.com/roostmq/roost/internal/backup/nodebackup"
)

// Node backups (docs/backup-restore.md), administrators only: a backup
// holds the node's cookie and every credential hash.
//
//	POST   /api/v1/backups          {name?, recipients?: ["age1…"], passphrase?, to?} → the backup written to backup.target (or to)
//	                                (Accept: application/x-ndjson: progress lines in bytes, then the result, as data export)
//	GET    /api/v1/backups          {location, remote, backups: [...], schedule: {...}, targets: [...]}; ?remote=true: at backup.target
//	GET    /api/v1/backups/{name}   download; ?remote=true: from backup.target
//	DELETE /api/v1/backups/{name}   ?remote=true: at backup.target

// BackupList is the body of GET /api/v1/backups.
type BackupList struct {
	// Location is what is listed: the backup dir's path, or (remote)
	// backup.target.
	Location string                    `json:"location"`
	Remote   bool                      `json:"remote"`
	Backups  []nodebackup.Info         `json:"backups"`
	Schedule nodebackup.ScheduleStatus `json:"schedule"`
	// Targets: the health of the node backups written to each target.
	Targets []backup.TargetStatus `json:"targets"`
}

// remoteParam reads ?remote=true|false.
func remoteParam(r *http.Request) (bool, error) {
	v := r.URL.Query().Get("remote")
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("query parameter \"remote\": want true or false, got %q", v)
	}
	return b, nil
}

// RegisterBackups serves the node backup routes with m.
func (s *Server) RegisterBackups(m *nodebackup.Manager, health *backup.Health) {
	admin := func(h func(w http.ResponseWriter, r *http.Request) error) func(w http.ResponseWriter, r *http.Request) error {
		return func(w http.ResponseWriter, r *http.Request) error {
			if !isAdministrator(r) {
				return forbidden("only administrators may manage node backups (they hold the cluster cookie and credential hashes)")
			}
			return h(w, r)
		}
	}
	s.Handle("POST /api/v1/backups", admin(func(w http.ResponseWriter, r *http.Request) error {
		var in nodebackup.CreateRequest
		if err := decodeOptional(w, r, &in); err != nil {
			return err
		}
		// Refusals come before a stream starts, with their own status.
		if err := m.CheckCreate(r.Context(), in); err != nil {
			return dataError(err)
		}
		st := newStreamer(w, r)
		in.Progress = st.progress()
		res, err := m.Create(r.Context(), in)
		return s.respond(w, r, st, http.StatusCreated, res, err)
	}))
	s.Handle("GET /api/v1/backups", admin(func(w http.ResponseWriter, r *http.Request) error {
		remote, err := remoteParam(r)
		if err != nil {
			return err
		}
		list, err := m.List(r.Context(), remote)
		if err != nil {
			return dataError(err)
		}
		loc := m.Dir()
		if remote {
			loc = m.Target().String()
		}
		targets := health.Of(backup.KindNodeBackup)
		writeJSON(w, http.StatusOK, BackupList{Location: loc, Remote: remote, Backups: list, Schedule: m.Status(), Targets: targets})
		return nil
	}))
	s.Handle("GET /api/v1/backups/{name}", admin(func(w http.ResponseWriter, r *http.Request) error {
		remote, err := remoteParam(r)
		if err != nil {
			return err
		}
		f, fi, err := m.Open(r.Context(), r.PathValue("name"), remote)
		if err != nil {
			return dataError(err)
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": fi.Name}))
		serveObject(w, r, f, fi.Size, fi.ModifiedAt)
		return nil
	}))
	s.Handle("DELETE /api/v1/backups/{name}", admin(func(w http.ResponseWriter, r *http.Request) error {
		remote, err := remoteParam(r)
		if err != nil {
			return err
		}
		if err := m.Delete(r.Context(), r.PathValue("name"), remote); err != nil {
			return dataError(err)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
}

// serveObject answers a download: with ranges from a local file, as one
// stream from a remote object.
func serveObject(w http.ResponseWriter, r *http.Request, rc io.Reader, size int64, mod time.Time) {
	if rs, ok := rc.(io.ReadSeeker); ok {
		http.ServeContent(w, r, "", mod, rs)
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("Last-Modified", mod.UTC().Format(http.TimeFormat))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		io.Copy(w, rc) // a failure mid-stream cuts the response short: the client sees a short body
	}
}
