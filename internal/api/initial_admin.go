package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/roostmq/roost/internal/broker/authn"
	"github.com/roostmq/roost/internal/store"
)

// maxStaleChecks bounds the admins whose hash a stale-file check tries
// (a bcrypt computation each): past it, the file is kept and a warning
// says it could not be checked.
const maxStaleChecks = 64

// RemoveStaleInitialAdminPassword removes <dataDir>/initial-admin-password
// when its password no longer logs in as any admin — a data import
// replaced the admins, or the admin was deleted — so that the file does
// not pass for a working credential. It reads the current state (a
// linearizable read point) and tries the admin named username first.
// It reports whether it removed the file; no file is no error.
func RemoveStaleInitialAdminPassword(ctx context.Context, st *store.Store, dataDir, username string, log *slog.Logger) (bool, error) {
	file := filepath.Join(dataDir, InitialAdminPasswordFile)
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check %s: %w", file, err)
	}
	password := strings.TrimSpace(string(b))
	if _, err := st.SyncPoint(ctx); err != nil {
		return false, fmt.Errorf("check %s: %w", file, err)
	}
	if username == "" {
		username = "admin"
	}
	var named *store.Admin
	var others []store.Admin
	err = st.View(func(tx *store.Tx) error {
		all, err := store.List[store.Admin](tx, store.TableAdmins)
		for i := range all {
			if all[i].Username == username {
				named = &all[i]
			} else {
				others = append(others, all[i])
			}
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("check %s: read admins: %w", file, err)
	}
	if named != nil && authn.VerifyAdmin(named.PasswordHash, password) {
		return false, nil
	}
	if len(others) > maxStaleChecks {
		log.Warn("cannot tell whether the initial admin password file still works: too many admins to try", "file", file, "admins", len(others)+1)
		return false, nil
	}
	for _, a := range others {
		if authn.VerifyAdmin(a.PasswordHash, password) {
			return false, nil
		}
	}
	if err := os.Remove(file); err != nil {
		return false, fmt.Errorf("remove the stale %s: %w", file, err)
	}
	why := fmt.Sprintf("admin %q no longer has this password", username)
	if named == nil {
		why = fmt.Sprintf("there is no admin %q any more", username)
	}
	log.Warn("removed the initial admin password file: its password no longer logs in as any admin ("+why+
		", e.g. a data import replaced the admins); log in as an admin of the imported data with its own password",
		"file", file)
	return true, nil
}

// WatchInitialAdminPassword runs RemoveStaleInitialAdminPassword now and
// after every change of the admins table, until ctx ends or the file is
// gone. Only the node that created the cluster's first admin has the
// file; elsewhere it returns at once.
func WatchInitialAdminPassword(ctx context.Context, st *store.Store, dataDir, username string, log *slog.Logger) {
	file := filepath.Join(dataDir, InitialAdminPasswordFile)
	if _, err := os.Stat(file); err != nil {
		return
	}
	changed := make(chan struct{}, 1)
	st.OnChange(func(changes []store.Change) {
		for _, c := range changes {
			if c.Reset() || c.Table == store.TableAdmins {
				select {
				case changed <- struct{}{}:
				default:
				}
				return
			}
		}
	})
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		removed, err := RemoveStaleInitialAdminPassword(cctx, st, dataDir, username, log)
		cancel()
		if removed {
			return
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("could not check the initial admin password file; will check again at the next change of the admins", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}
