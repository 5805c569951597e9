package foreign

import (
	"bytes"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/roostmq/roost/internal/backup"
	"github.com/roostmq/roost/internal/broker/authn"
	"github.com/roostmq/roost/internal/store"
)

// emqxStored builds the secret EMQX 4's built-in database stores for a
// password, as emqx_auth_mnesia does: <<Salt:4/binary,
// (emqx_passwd:hash(Type, <<Salt/binary, Password/binary>>))/binary>>,
// the hash a lowercase hex digest (plain: the salted password itself).
func emqxStored(salt []byte, alg, password string) []byte {
	salted := append(append([]byte{}, salt...), password...)
	var h string
	switch alg {
	case "sha256":
		s := sha256.Sum256(salted)
		h = hex.EncodeToString(s[:])
	case "sha512":
		s := sha512.Sum512(salted)
		h = hex.EncodeToString(s[:])
	case "md5":
		s := md5.Sum(salted)
		h = hex.EncodeToString(s[:])
	case "plain":
		h = string(salted)
	default:
		panic(alg)
	}
	return append(append([]byte{}, salt...), h...)
}

// emqxExported is the password field of the export: base64 of the secret.
func emqxExported(salt []byte, alg, password string) string {
	return base64.StdEncoding.EncodeToString(emqxStored(salt, alg, password))
}

// dynsecHash computes a Mosquitto dynamic-security password hash:
// PKCS5_PBKDF2_HMAC(password, salt, iterations, EVP_sha512(), 64).
func dynsecHash(password string, salt []byte, iterations int) string {
	k, err := pbkdf2.Key(sha512.New, password, salt, iterations, 64)
	if err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(k)
}

// asciiSalt is a salt whose bytes are printable ASCII, which today's
// users table (a JSON string) can hold.
func asciiSalt(s string) []byte { return []byte(s) }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// viaStore returns u as it comes back from the store's encoding (JSON).
func viaStore(t testing.TB, u *store.User) *store.User {
	t.Helper()
	b := mustJSON(t, u)
	var back store.User
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	return &back
}

// checkLogin asserts that u accepts password and refuses another one,
// both as built and after the store's encoding.
func checkLogin(t *testing.T, u *store.User, password string) {
	t.Helper()
	for _, v := range []*store.User{u, viaStore(t, u)} {
		if !authn.Verify(v, password) {
			t.Errorf("user %s:%s (%s): the original password %q does not verify", u.Kind, u.ID, u.Algorithm, password)
		}
		if authn.Verify(v, password+"x") {
			t.Errorf("user %s:%s (%s): a wrong password verifies", u.Kind, u.ID, u.Algorithm)
		}
	}
}

func records(ds *backup.Dataset, table string) []backup.Record {
	var out []backup.Record
	for _, r := range ds.Records {
		if r.Table == table {
			out = append(out, r)
		}
	}
	return out
}

func findUser(t *testing.T, ds *backup.Dataset, key string) *store.User {
	t.Helper()
	for _, r := range records(ds, store.TableUsers) {
		if r.Key == key {
			return r.Value.(*store.User)
		}
	}
	t.Fatalf("no user %q in %v", key, keys(ds, store.TableUsers))
	return nil
}

func keys(ds *backup.Dataset, table string) []string {
	var out []string
	for _, r := range records(ds, table) {
		out = append(out, r.Key)
	}
	return out
}

// ruleStrings renders ACL records as "kind value action topic permission".
func ruleStrings(ds *backup.Dataset) []string {
	var out []string
	for _, r := range records(ds, store.TableACL) {
		a := r.Value.(*store.ACLRule)
		out = append(out, strings.Join(strings.Fields(fmt.Sprintf("%s %s %s %s %s", a.Kind, a.Value, a.Action, a.Topic, a.Permission)), " "))
	}
	return out
}

func noProblems(t *testing.T, ds *backup.Dataset) {
	t.Helper()
	for _, p := range ds.Problems {
		t.Errorf("unexpected problem: %s", p)
	}
}

func hasNote(ds *backup.Dataset, sub string) bool {
	for _, n := range ds.Notes {
		if strings.Contains(n, sub) {
			return true
		}
	}
	return false
}

func hasSkipped(ds *backup.Dataset, s string) bool {
	for _, n := range ds.Skipped {
		if n == s {
			return true
		}
	}
	return false
}

// wantProblem is one expected problem: its location exactly, its
// message by a substring.
type wantProblem struct {
	table  string
	record int
	field  string
	msg    string
}

func checkProblems(t *testing.T, got []backup.Problem, want []wantProblem) {
	t.Helper()
	used := make([]bool, len(got))
	for _, w := range want {
		found := false
		for i, p := range got {
			if !used[i] && p.Table == w.table && p.Record == w.record && p.Field == w.field && strings.Contains(p.Msg, w.msg) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("missing problem %s record %d field %q: ...%s...", w.table, w.record, w.field, w.msg)
		}
	}
	for i, p := range got {
		if !used[i] {
			t.Errorf("unexpected problem: %s", p)
		}
	}
}

// binarySalt is a salt that is not UTF-8 (as almost every random salt).
var binarySalt = []byte{0x9f, 0x01, 0xff, 0xfe}

func TestHelpersMatchSources(t *testing.T) {
	// The helpers above against vectors produced by the real programs:
	// an EMQX 4.2 export of user emqx_clientid / emqx_p (EMQX's
	// emqx_auth_mnesia_migration_SUITE data), and a Mosquitto 2.0.11
	// dynsec file (alice / alicepw, made with mosquitto_ctrl).
	emqx, _ := base64.StdEncoding.DecodeString("UNb0e2RhNDc3NWIyNjg5Yjg4ZDExOTVhNWFkY2MzNGFmNzY2OTNmNmRlYzE4Y2ZiZjRjNzIyMWZlZTljZmEyZDE5Yzc=")
	if got := emqxStored(emqx[:4], "sha256", "emqx_p"); !bytes.Equal(got, emqx) {
		t.Errorf("emqxStored = %q, EMQX stored %q", got, emqx)
	}
	salt, _ := base64.StdEncoding.DecodeString("6U8veekhlojAf908")
	if got, want := dynsecHash("alicepw", salt, 101), "KnXmHjsP8/ei3/ayhwzu9NOin6D3+dd8J2WfEStFZ2KrzGW8gSLCYWMnGoZfhCp8YSTjXE7g/LMcJ39so4+gjQ=="; got != want {
		t.Errorf("dynsecHash = %s, mosquitto wrote %s", got, want)
	}
}
