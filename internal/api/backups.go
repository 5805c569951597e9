package api

import (
	"mime"
	"net/http"

	"github.com/roostmq/roost/internal/backup/nodebackup"
)

// Node backups (docs/backup-restore.md), administrators only: a backup
// holds the node's cookie and every credential hash.
//
//	POST   /api/v1/backups          {name?, recipients?: ["age1…"], passphrase?} → the backup written in the backup dir
//	                                (Accept: application/x-ndjson: progress lines in bytes, then the result, as data export)
//	GET    /api/v1/backups          {backups: [...], schedule: {...}}
//	GET    /api/v1/backups/{name}   download
//	DELETE /api/v1/backups/{name}

// BackupList is the body of GET /api/v1/backups.
type BackupList struct {
	Backups  []nodebackup.Info         `json:"backups"`
	Schedule nodebackup.ScheduleStatus `json:"schedule"`
}

// RegisterBackups serves the node backup routes with m.
func (s *Server) RegisterBackups(m *nodebackup.Manager) {
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
		if err := m.CheckCreate(in); err != nil {
			return dataError(err)
		}
		st := newStreamer(w, r)
		in.Progress = st.progress()
		res, err := m.Create(r.Context(), in)
		return respond(s, w, r, st, http.StatusCreated, res, err)
	}))
	s.Handle("GET /api/v1/backups", admin(func(w http.ResponseWriter, r *http.Request) error {
		list, err := m.List()
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, BackupList{Backups: list, Schedule: m.Status()})
		return nil
	}))
	s.Handle("GET /api/v1/backups/{name}", admin(func(w http.ResponseWriter, r *http.Request) error {
		f, fi, err := m.Open(r.PathValue("name"))
		if err != nil {
			return dataError(err)
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": fi.Name}))
		http.ServeContent(w, r, "", fi.ModifiedAt, f)
		return nil
	}))
	s.Handle("DELETE /api/v1/backups/{name}", admin(func(w http.ResponseWriter, r *http.Request) error {
		if err := m.Delete(r.PathValue("name")); err != nil {
			return dataError(err)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
}
