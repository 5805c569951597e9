package foreign

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/roostmq/roost/internal/backup"
	"github.com/roostmq/roost/internal/broker/authn"
	"github.com/roostmq/roost/internal/store"
)

// Importing the same EMQX 4 file again changes nothing and says so:
// every table unchanged, API keys included (their secrets were hashed
// with a random salt at the first import), and an admin whose md5 hash
// was replaced by bcrypt at its first login keeps the bcrypt hash.
func TestEMQX4ReimportUnchanged(t *testing.T) {
	t.Parallel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(store.Options{Dir: t.TempDir(), NodeID: "n1", Advertise: "127.0.0.1:4370", Bootstrap: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := st.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	m := backup.New(backup.Options{Store: st, Dir: filepath.Join(t.TempDir(), "backup"), NodeName: "n1", Version: "test",
		ClusterID: func() string { return "c" }, Logger: quiet})
	file := mustJSON(t, obj{"version": "4.4", "date": "2024-01-02 03:04:05",
		"blacklist": arr{obj{"who": obj{"clientid": "x"}, "by": "a", "reason": "r", "at": 1, "until": 2000000000}},
		"apps": arr{obj{"id": "admin", "secret": "public", "name": "Default", "desc": "", "status": true, "expired": "undefined"},
			obj{"id": "ci", "secret": "Mjg5NDY1OTQ3NjM2NDQ0NjA", "status": false, "expired": 1917794829}},
		"users": arr{obj{"username": "admin", "password": "8Vd7+gVg2J3nE1Xjyxqd59sA5mo=", "tags": "administrator"}},
		"auth_mnesia": arr{obj{"login": "dev", "type": "username", "password": emqxExported(asciiSalt("salt"), "sha256", "pw"), "created_at": 1},
			obj{"login": "dev", "type": "clientid", "password": emqxExported(asciiSalt("tlas"), "sha256", "pw2"), "created_at": 2}},
		"acl_mnesia": arr{obj{"type": "username", "type_value": "dev", "topic": "dev/#", "action": "pubsub", "access": "allow", "created_at": 1},
			obj{"type": "all", "topic": "#", "action": "sub", "access": "deny", "created_at": 3}},
	})
	imp := func(dry bool) *backup.ImportReport {
		t.Helper()
		ds, err := ReadEMQX4(bytes.NewReader(file), EMQX4Options{})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := m.Import(ctx, backup.ImportRequest{Dataset: ds,
			ImportOptions: backup.ImportOptions{Format: backup.FormatEMQX4, Privileged: true, DryRun: dry}})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rep := imp(false)
	want := map[string]int{"users": 2, "acl": 2, "banned": 1, "api_keys": 2, "admins": 1, "config": 1}
	for _, tr := range rep.Tables {
		if tr.Added != want[tr.Table] || tr.Records != want[tr.Table] {
			t.Errorf("first import: %+v", tr)
		}
	}
	allUnchanged := func(what string, rep *backup.ImportReport) {
		t.Helper()
		if len(rep.Tables) != len(want) {
			t.Errorf("%s: tables %+v", what, rep.Tables)
		}
		for _, tr := range rep.Tables {
			if tr.Unchanged != want[tr.Table] || tr.Added+tr.Changed+tr.Removed != 0 {
				t.Errorf("%s: %+v, want %d unchanged", what, tr, want[tr.Table])
			}
		}
		for _, n := range rep.Notes {
			if bytes.HasPrefix([]byte(n), []byte("admins:")) {
				t.Errorf("%s: note %q, though no admin changes", what, n)
			}
		}
	}
	_, before, err := st.Digest()
	if err != nil {
		t.Fatal(err)
	}
	allUnchanged("dry run of the second import", imp(true))
	allUnchanged("second import", imp(false))
	_, after, err := st.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if mustString(t, before) != mustString(t, after) {
		t.Errorf("the second import changed the data:\n%v\n%v", before, after)
	}

	// The admin logs in (internal/api replaces the md5 hash with bcrypt
	// and records which hash it replaced); the file imported again keeps
	// that.
	var a store.Admin
	st.View(func(tx *store.Tx) (err error) {
		a, _, err = store.Get[store.Admin](tx, store.TableAdmins, "admin")
		return err
	})
	up := a
	up.PasswordHash, up.UpgradedFrom = "$2a$10$abcdefghijklmnopqrstuu5yQMXgHo8XYnHyXA6ty/YwHnJuGaeIO", authn.LegacyHashPrint(a.PasswordHash)
	op, err := store.Put(store.TableAdmins, "admin", up)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(ctx, op); err != nil {
		t.Fatal(err)
	}
	allUnchanged("import after the admin's first login", imp(false))
	st.View(func(tx *store.Tx) (err error) {
		a, _, err = store.Get[store.Admin](tx, store.TableAdmins, "admin")
		return err
	})
	if a.PasswordHash != up.PasswordHash {
		t.Errorf("the re-import replaced the upgraded hash with %q", a.PasswordHash)
	}
}

func mustString(t *testing.T, v any) string { return string(mustJSON(t, v)) }
