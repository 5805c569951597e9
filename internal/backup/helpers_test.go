package backup

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roostmq/roost/internal/broker/authn"
	"github.com/roostmq/roost/internal/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openStore(t testing.TB) *store.Store {
	t.Helper()
	s, err := store.Open(store.Options{Dir: t.TempDir(), NodeID: "n1", Advertise: "127.0.0.1:4370", Bootstrap: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func newManager(t testing.TB, st *store.Store, node string) *Manager {
	t.Helper()
	return New(Options{Store: st, Dir: filepath.Join(t.TempDir(), "backup"), NodeName: node, Version: "test",
		ClusterID: func() string { return "cluster-" + node }, Logger: quiet})
}

func apply(t testing.TB, st *store.Store, ops ...store.Op) {
	t.Helper()
	if _, err := st.Apply(context.Background(), ops...); err != nil {
		t.Fatal(err)
	}
}

func put(t testing.TB, table, key string, rec any) store.Op {
	t.Helper()
	op, err := store.Put(table, key, rec)
	if err != nil {
		t.Fatal(err)
	}
	return op
}

// fill writes a bit of everything into st: users of every hash
// algorithm, ACL rules (appended, as the API does), bans, retained
// messages with binary payloads and MQTT 5 properties, an API key, an
// admin and a config override.
func fill(t testing.TB, st *store.Store) {
	t.Helper()
	now := time.Date(2025, 3, 4, 5, 6, 7, 890, time.UTC)
	var ops []store.Op
	for _, alg := range authn.Algorithms {
		u, err := authn.NewCredential(store.KindUsername, "u-"+alg, "pw-"+alg, authn.HashParams{Algorithm: alg, BcryptCost: 4}, alg == "plain")
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, put(t, store.TableUsers, store.UserKey(u.Kind, u.ID), u))
	}
	c, _ := authn.NewCredential(store.KindClientID, "dev-1", "pw", authn.HashParams{Algorithm: "sha512", SaltPosition: "suffix"}, false)
	ops = append(ops, put(t, store.TableUsers, store.UserKey(c.Kind, c.ID), c))
	ops = append(ops,
		put(t, store.TableBanned, "clientid:evil", store.Ban{V: 1, Kind: "clientid", Value: "evil", Reason: "test", By: "t", At: now}),
		put(t, store.TableBanned, "peerhost:10.0.0.0/8", store.Ban{V: 1, Kind: "peerhost", Value: "10.0.0.0/8", At: now, Until: now.Add(time.Hour)}),
		put(t, store.TableRetained, "ret/bin", store.Retained{V: 1, Topic: "ret/bin", Payload: []byte{0, 1, 2, 0xff, '"', '\\'}, QoS: 1,
			ContentType: "application/x-test", ResponseTopic: "reply/x", CorrelationData: []byte{9, 0, 9},
			UserProperties: []store.UserProperty{{Key: "k", Val: "v1"}, {Key: "k", Val: "v2"}, {Key: "ü<>&", Val: "☃"}}, MessageExpiry: 3600, Created: now}),
		put(t, store.TableRetained, "ret/empty", store.Retained{V: 1, Topic: "ret/empty", Payload: []byte{}, Created: now}),
		put(t, store.TableAPIKeys, "ci", store.APIKey{V: 1, Name: "ci", SecretHash: strings.Repeat("ab", 32), Salt: strings.Repeat("cd", 16), Enabled: true, CreatedAt: now}),
		put(t, store.TableAdmins, "root", store.Admin{V: 1, Username: "root", PasswordHash: "$2a$04$abcdefghijklmnopqrstuu5yQMXgHo8XYnHyXA6ty/YwHnJuGaeIO", Role: "administrator", CreatedAt: now}),
		put(t, store.TableConfig, "mqtt.max_inflight", store.ConfigOverride{V: 1, Key: "mqtt.max_inflight", Value: json.RawMessage(`32`), UpdatedAt: now}),
	)
	apply(t, st, ops...)
	for _, r := range []store.ACLRule{
		{V: 1, Kind: "username", Value: "u-sha256", Topic: "a/${username}/#", Action: "all", Permission: "allow", CreatedAt: now},
		{V: 1, Kind: "clientid", Value: "dev-1", Topic: "eq b/+", Action: "publish", Permission: "deny", CreatedAt: now},
		{V: 1, Kind: "all", Topic: "#", Action: "subscribe", Permission: "deny", CreatedAt: now},
	} {
		op, err := store.Append(store.TableACL, r)
		if err != nil {
			t.Fatal(err)
		}
		apply(t, st, op)
	}
	// A gap in the ids: rule 2 deleted, 4 added.
	apply(t, st, store.Delete(store.TableACL, store.ACLKey(2)))
	op, _ := store.Append(store.TableACL, store.ACLRule{V: 1, Kind: "all", Topic: "x/#", Action: "all", Permission: "allow", CreatedAt: now})
	apply(t, st, op)
}

func digest(t testing.TB, st *store.Store) string {
	t.Helper()
	_, d, err := st.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(d)
}

// exportBytes exports st and returns the uncompressed document.
func exportBytes(t testing.TB, m *Manager) []byte {
	t.Helper()
	f, err := m.Export(context.Background(), ExportRequest{Filename: "x.json"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(f.Path)
	return b
}

// writeFile puts content into m's backup dir as name.
func writeFile(t testing.TB, m *Manager, name string, content []byte) {
	t.Helper()
	if err := os.MkdirAll(m.Dir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(name, ".gz") {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(content)
		zw.Close()
		content = buf.Bytes()
	}
	if err := os.WriteFile(filepath.Join(m.Dir(), name), content, 0o600); err != nil {
		t.Fatal(err)
	}
}

// document builds a roost-export text with a correct checksum from
// table sections of raw records (tables in the given order) and, when
// counts is nil, the true counts.
func document(header string, tables [][2]any, counts map[string]int) []byte {
	var b strings.Builder
	b.WriteString("{" + header + `,"tables":{`)
	real := map[string]int{}
	for i, tb := range tables {
		if i > 0 {
			b.WriteString(",")
		}
		name := tb[0].(string)
		recs, _ := tb[1].([]string)
		real[name] = len(recs)
		b.WriteString(`"` + name + `":[` + strings.Join(recs, ",") + "]")
	}
	b.WriteString(`},"config_files":[]`)
	if counts == nil {
		counts = real
	}
	c, _ := json.Marshal(counts)
	b.WriteString(`,"counts":` + string(c) + ",")
	sum := sha256.Sum256([]byte(b.String()))
	b.WriteString(fmt.Sprintf(`"checksum":"sha256:%x"}`, sum))
	return []byte(b.String())
}

const header1 = `"format":"roost-export","version":1,"roost_version":"t","cluster_id":"c","source_node":"n","raft_index":1,"created_at":"2025-01-01T00:00:00Z"`

// problemsOf imports name dry-run and returns the validation problems
// (failing the test when the import is accepted).
func problemsOf(t testing.TB, m *Manager, name string) []Problem {
	t.Helper()
	_, err := m.Import(context.Background(), ImportRequest{Filename: name, ImportOptions: ImportOptions{DryRun: true, Privileged: true}})
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("import of %s: %v, want a validation error", name, err)
	}
	if len(ve.Report.Problems) == 0 {
		t.Fatalf("validation error without problems: %v", err)
	}
	return ve.Report.Problems
}
