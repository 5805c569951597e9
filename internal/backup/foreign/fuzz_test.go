package foreign

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"github.com/roostmq/roost/internal/backup"
	"github.com/roostmq/roost/internal/broker"
	"github.com/roostmq/roost/internal/broker/authn"
	"github.com/roostmq/roost/internal/config"
	"github.com/roostmq/roost/internal/store"
)

// The seed corpora are in testdata/fuzz/<target>/: real-shaped files
// of each format (including one made by mosquitto_ctrl) and broken ones.

func FuzzReadEMQX4(f *testing.F) {
	f.Add([]byte(`{"version":"4.3","auth_mnesia":[{"login":"a","type":"username","password":"U0FMVDJiZjUyYzU0","created_at":1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, as := range []string{"", "clientid"} {
			ds, err := ReadEMQX4(bytes.NewReader(data), EMQX4Options{AuthAs: as})
			if err != nil {
				if ds != nil {
					t.Fatal("a dataset with an error")
				}
				continue
			}
			checkDataset(t, ds)
		}
		Detect(data)
	})
}

func FuzzReadMosquittoDynsec(f *testing.F) {
	f.Add([]byte(`{"clients":[{"username":"a","roles":[{"rolename":"r"}]}],"roles":[{"rolename":"r","acls":[{"acltype":"publishClientSend","topic":"t","allow":true}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ds, err := ReadMosquittoDynsec(bytes.NewReader(data))
		if err != nil {
			if ds != nil {
				t.Fatal("a dataset with an error")
			}
			return
		}
		checkDataset(t, ds)
		Detect(data)
	})
}

// checkDataset asserts what the importer relies on: every record is a
// valid record of its table under its key, and encodes to JSON; every
// problem is located.
func checkDataset(t *testing.T, ds *backup.Dataset) {
	t.Helper()
	for _, p := range ds.Problems {
		if p.Table == "" || p.Record < 0 || p.Msg == "" {
			t.Fatalf("badly located problem %+v", p)
		}
	}
	okID := func(what, id string) {
		if msg := checkID(id); msg != "" {
			t.Fatalf("%s %q: %s", what, id, msg)
		}
	}
	for _, r := range ds.Records {
		if _, err := json.Marshal(r.Value); err != nil {
			t.Fatalf("%s record %q does not encode: %v", r.Table, r.Key, err)
		}
		switch v := r.Value.(type) {
		case *store.User:
			if r.Table != store.TableUsers || r.Key != store.UserKey(v.Kind, v.ID) {
				t.Fatalf("user %+v under %s/%q", v, r.Table, r.Key)
			}
			if v.Kind != store.KindUsername && v.Kind != store.KindClientID {
				t.Fatalf("user kind %q", v.Kind)
			}
			okID("user", v.ID)
			if !slices.Contains(authn.Algorithms, v.Algorithm) || !survivesStorage(v) {
				t.Fatalf("user %+v", v)
			}
			if v.Algorithm != "pbkdf2" || v.Iterations <= 1000 {
				if _, err := authn.Hash(v, "password"); err != nil {
					t.Fatalf("user %+v: %v", v, err)
				}
			}
		case *store.ACLRule:
			if r.Table != store.TableACL || r.Key != "" {
				t.Fatalf("rule under %s/%q", r.Table, r.Key)
			}
			if err := broker.ValidACLTopic(v.Topic); err != nil {
				t.Fatalf("rule topic %q: %v", v.Topic, err)
			}
			switch v.Kind {
			case store.KindAll:
				if v.Value != "" {
					t.Fatalf("rule for all with value %q", v.Value)
				}
			case store.KindUsername, store.KindClientID:
				okID("rule value", v.Value)
			default:
				t.Fatalf("rule kind %q", v.Kind)
			}
			if !slices.Contains([]string{"publish", "subscribe", "all"}, v.Action) || (v.Permission != "allow" && v.Permission != "deny") {
				t.Fatalf("rule %+v", v)
			}
		case *store.Ban:
			if r.Table != store.TableBanned || r.Key != store.BanKey(v.Kind, v.Value) {
				t.Fatalf("ban %+v under %s/%q", v, r.Table, r.Key)
			}
			switch v.Kind {
			case store.KindPeerhost:
				if _, err := broker.ParsePeerhost(v.Value); err != nil {
					t.Fatalf("ban %+v: %v", v, err)
				}
			case store.KindUsername, store.KindClientID:
				okID("ban value", v.Value)
			default:
				t.Fatalf("ban kind %q", v.Kind)
			}
		case *store.APIKey:
			if r.Table != store.TableAPIKeys || r.Key != v.Name || !apiKeyName.MatchString(v.Name) || len(v.SecretHash) != 64 {
				t.Fatalf("API key %+v under %s/%q", v, r.Table, r.Key)
			}
		case *store.Admin:
			if r.Table != store.TableAdmins || r.Key != v.Username {
				t.Fatalf("admin %+v under %s/%q", v, r.Table, r.Key)
			}
			okID("admin", v.Username)
			if err := authn.CheckAdminHash(v.PasswordHash); err != nil {
				t.Fatalf("admin %+v: %v", v, err)
			}
		case *store.ConfigOverride:
			if r.Table != store.TableConfig || r.Key != v.Key {
				t.Fatalf("config override %+v under %s/%q", v, r.Table, r.Key)
			}
			if _, err := config.ParseOverride(v.Key, v.Value); err != nil {
				t.Fatalf("config override %+v: %v", v, err)
			}
		default:
			t.Fatalf("record of type %T", r.Value)
		}
	}
}
