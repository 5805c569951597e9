package backup

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/roostmq/roost/internal/store"
)

// A locked imported admin (an EMQX 4 dashboard user, whose md5 password
// cannot be converted) never replaces an existing admin of the same
// name — the initial "admin" of a new cluster would be locked out — in
// merge or replace mode, dry run or not; a new name is still added, and
// an ordinary imported admin still replaces the existing one.
func TestLockedAdminDoesNotReplaceExisting(t *testing.T) {
	t.Parallel()
	const why = "has an EMQX md5 password that cannot be converted"
	const note = `admins: kept existing admin "admin": the imported one ` + why
	existing := &store.Admin{V: 1, Username: "admin", PasswordHash: "$2a$04$abcdefghijklmnopqrstuu5yQMXgHo8XYnHyXA6ty/YwHnJuGaeIO",
		Role: "administrator", Desc: "created at first start"}
	lockedAdmin := func(name string) Record {
		return Record{Table: store.TableAdmins, Key: name, Locked: why, Value: &store.Admin{Username: name,
			PasswordHash: "$2a$10$" + strings.Repeat("A", 53), Role: "administrator", Desc: "imported from EMQX 4, locked"}}
	}
	dataset := func() *Dataset {
		return &Dataset{Records: []Record{
			{Table: store.TableUsers, Key: "username:dev", Value: &store.User{Kind: "username", ID: "dev", Algorithm: "plain", PasswordHash: "pw"}},
			lockedAdmin("admin"), lockedAdmin("ops"),
		}}
	}
	setup := func(t *testing.T) (*store.Store, *Manager, []byte) {
		st := openStore(t)
		apply(t, st, put(t, store.TableAdmins, "admin", existing))
		var before []byte
		st.View(func(tx *store.Tx) error { before = bytes.Clone(tx.Get(store.TableAdmins, "admin")); return nil })
		return st, newManager(t, st, "a"), before
	}
	get := func(st *store.Store, key string) []byte {
		var v []byte
		st.View(func(tx *store.Tx) error { v = bytes.Clone(tx.Get(store.TableAdmins, key)); return nil })
		return v
	}
	for _, tc := range []struct {
		name    string
		replace bool
		dryRun  bool
		want    TableReport
	}{
		{"merge", false, false, TableReport{Table: "admins", Records: 1, Added: 1, existing: 1}},
		{"merge dry run", false, true, TableReport{Table: "admins", Records: 1, Added: 1, existing: 1}},
		{"replace", true, false, TableReport{Table: "admins", Records: 2, Added: 1, Unchanged: 1, existing: 1}},
		{"replace dry run", true, true, TableReport{Table: "admins", Records: 2, Added: 1, Unchanged: 1, existing: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, m, before := setup(t)
			rep, err := m.Import(context.Background(), ImportRequest{Dataset: dataset(),
				ImportOptions: ImportOptions{Format: FormatEMQX4, Privileged: true, Replace: tc.replace, DryRun: tc.dryRun}})
			if err != nil {
				t.Fatal(err)
			}
			if got := tableOf(rep, "admins"); got != tc.want {
				t.Errorf("admins report %+v, want %+v", got, tc.want)
			}
			if !slices.Contains(rep.Notes, note) {
				t.Errorf("notes %q, want %q", rep.Notes, note)
			}
			if got := get(st, "admin"); !bytes.Equal(got, before) {
				t.Errorf("the existing admin changed: %s", got)
			}
			if ops := get(st, "ops"); (ops != nil) == tc.dryRun {
				t.Errorf("new locked admin ops: %s (dry run %v)", ops, tc.dryRun)
			}
		})
	}

	// The same through a foreign file of the backup dir.
	t.Run("file", func(t *testing.T) {
		st, m, before := setup(t)
		m.opts.Foreign = func(name string) (ForeignReader, bool) {
			return func(io.Reader, ForeignOptions) (*Dataset, error) { return dataset(), nil }, name == FormatEMQX4
		}
		writeFile(t, m, "emqx.json", []byte(`{"version":"4.4","date":"x","rules":[],"resources":[],"users":[]}`))
		rep := importFile(t, m, "emqx.json", ImportOptions{})
		if !rep.Committed || rep.Format != FormatEMQX4 || !slices.Contains(rep.Notes, note) {
			t.Fatalf("report %+v", rep)
		}
		if !bytes.Equal(get(st, "admin"), before) || get(st, "ops") == nil {
			t.Error("the existing admin changed, or ops was not added")
		}
	})

	// Not weakened: an ordinary (not locked) imported admin still
	// replaces the existing one, and a locked one is added when there is
	// none of its name.
	t.Run("not locked", func(t *testing.T) {
		st, m, before := setup(t)
		ds := dataset()
		ds.Records[1].Locked = ""
		rep, err := m.Import(context.Background(), ImportRequest{Dataset: ds, ImportOptions: ImportOptions{Privileged: true}})
		if err != nil {
			t.Fatal(err)
		}
		if got := tableOf(rep, "admins"); got.Changed != 1 || got.Added != 1 || len(rep.Notes) != 0 {
			t.Errorf("report %+v notes %q", got, rep.Notes)
		}
		if bytes.Equal(get(st, "admin"), before) {
			t.Error("an ordinary imported admin did not replace the existing one")
		}
	})
}
