package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/roostmq/roost/internal/store"
)

// A Record's Settle sees the stored record of its key and may import
// that instead: the import then reports the record unchanged and leaves
// the stored bytes as they are. A Settle that returns nil imports the
// record as read; one for a key with no stored record is not called.
func TestImportSettle(t *testing.T) {
	t.Parallel()
	stored := &store.APIKey{V: 1, Name: "app", SecretHash: strings.Repeat("ab", 32), Salt: strings.Repeat("01", 16), Enabled: true}
	fresh := func() *store.APIKey {
		k := *stored
		k.Salt, k.SecretHash = strings.Repeat("02", 16), strings.Repeat("cd", 32) // a new random salt
		return &k
	}
	for _, tc := range []struct {
		name      string
		keep      bool
		want      TableReport
		unchanged bool
	}{
		{"settled to the stored record", true, TableReport{Table: "api_keys", Records: 2, Added: 1, Unchanged: 1, existing: 1}, true},
		{"not settled", false, TableReport{Table: "api_keys", Records: 2, Added: 1, Changed: 1, existing: 1}, false},
	} {
		for _, dry := range []bool{true, false} {
			t.Run(tc.name+map[bool]string{true: " dry run"}[dry], func(t *testing.T) {
				st := openStore(t)
				apply(t, st, put(t, store.TableAPIKeys, "app", stored))
				var before []byte
				st.View(func(tx *store.Tx) error { before = bytes.Clone(tx.Get(store.TableAPIKeys, "app")); return nil })
				var calls []string
				settle := func(key string) func([]byte) any {
					return func(cur []byte) any {
						calls = append(calls, key)
						if !tc.keep {
							return nil
						}
						var c store.APIKey
						if err := json.Unmarshal(cur, &c); err != nil {
							t.Fatal(err)
						}
						return &c
					}
				}
				other := fresh()
				other.Name = "new"
				ds := &Dataset{Records: []Record{
					{Table: store.TableAPIKeys, Key: "app", Value: fresh(), Settle: settle("app")},
					{Table: store.TableAPIKeys, Key: "new", Value: other, Settle: settle("new")},
				}}
				rep, err := newManager(t, st, "a").Import(context.Background(), ImportRequest{Dataset: ds,
					ImportOptions: ImportOptions{Format: FormatEMQX4, Privileged: true, DryRun: dry}})
				if err != nil {
					t.Fatal(err)
				}
				if got := tableOf(rep, "api_keys"); got != tc.want {
					t.Errorf("report %+v, want %+v", got, tc.want)
				}
				if !slices.Equal(calls, []string{"app"}) {
					t.Errorf("settle called for %q, want only the stored key", calls)
				}
				var after []byte
				st.View(func(tx *store.Tx) error { after = bytes.Clone(tx.Get(store.TableAPIKeys, "app")); return nil })
				if same := bytes.Equal(after, before); same != (tc.unchanged || dry) {
					t.Errorf("stored record unchanged %v: %s", same, after)
				}
			})
		}
	}
}

// An import that replaces or removes existing admins says that their old
// passwords — the initial admin's file above all — stop working; one
// that leaves every admin as it is says nothing of it.
func TestImportNotesReplacedAdmins(t *testing.T) {
	t.Parallel()
	admin := func(name, hash string) *store.Admin {
		return &store.Admin{V: 1, Username: name, PasswordHash: "$2a$04$" + hash, Role: "administrator"}
	}
	h1 := "abcdefghijklmnopqrstuu5yQMXgHo8XYnHyXA6ty/YwHnJuGaeIO"
	h2 := "zzcdefghijklmnopqrstuu5yQMXgHo8XYnHyXA6ty/YwHnJuGaeIO"
	for _, tc := range []struct {
		name    string
		replace bool
		dry     bool
		input   []*store.Admin
		want    string // "" = no note on admins
	}{
		{"merge replaces admin", false, false, []*store.Admin{admin("admin", h2), admin("ops", h1)},
			`admins: the import replaced 1 existing admin ("admin"): their old passwords no longer work, including the initial admin's in <data_dir>/initial-admin-password`},
		{"merge dry run", false, true, []*store.Admin{admin("admin", h2)},
			`admins: the import would replace 1 existing admin ("admin"): their old passwords would no longer work`},
		{"replace removes", true, false, []*store.Admin{admin("ops", h1)},
			`admins: the import removed 2 admins ("admin", "old")`},
		{"replace replaces and removes", true, false, []*store.Admin{admin("admin", h2)},
			`admins: the import replaced 1 existing admin ("admin") and removed 1 admin ("old")`},
		{"same admins", false, false, []*store.Admin{admin("admin", h1), admin("old", h1)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			apply(t, st, put(t, store.TableAdmins, "admin", admin("admin", h1)), put(t, store.TableAdmins, "old", admin("old", h1)))
			ds := &Dataset{}
			for _, a := range tc.input {
				ds.Records = append(ds.Records, Record{Table: store.TableAdmins, Key: a.Username, Value: a})
			}
			rep, err := newManager(t, st, "a").Import(context.Background(), ImportRequest{Dataset: ds,
				ImportOptions: ImportOptions{Privileged: true, Replace: tc.replace, DryRun: tc.dry}})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, n := range rep.Notes {
				if strings.HasPrefix(n, "admins:") {
					got = append(got, n)
				}
			}
			switch {
			case tc.want == "" && len(got) > 0:
				t.Errorf("notes %q, want none on admins", got)
			case tc.want != "" && (len(got) != 1 || !strings.HasPrefix(got[0], tc.want)):
				t.Errorf("notes %q, want one starting %q", got, tc.want)
			}
		})
	}
}

// A config override of a key the nodes follow must have a valid value:
// an import of a bad one is refused (every node would ignore it); other
// keys are kept as they are.
func TestImportConfigOverrideValue(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	m := newManager(t, st, "a")
	over := func(key, value string) Record {
		return Record{Table: store.TableConfig, Key: key, Value: &store.ConfigOverride{V: 1, Key: key, Value: json.RawMessage(value)}}
	}
	_, err := m.Import(context.Background(), ImportRequest{Dataset: &Dataset{Records: []Record{
		over("authn.user_id_type", `"email"`), over("mqtt.max_inflight", `5`)}}})
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Report.ProblemCount != 1 {
		t.Fatalf("err %v, want one problem", err)
	}
	if p := ve.Report.Problems[0]; p.Table != "config" || p.Record != 1 || p.Field != "value" || !strings.Contains(p.Msg, `expected one of username|clientid|both, got "email"`) {
		t.Errorf("problem %+v", p)
	}
	rep, err := m.Import(context.Background(), ImportRequest{Dataset: &Dataset{Records: []Record{
		over("authn.user_id_type", `"both"`), over("mqtt.max_inflight", `5`)}}})
	if err != nil || tableOf(rep, "config").Added != 2 {
		t.Fatalf("valid overrides: %v %+v", err, rep)
	}
}
