package api

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roostmq/roost/internal/broker/authn"
	"github.com/roostmq/roost/internal/store"
	"golang.org/x/crypto/bcrypt"
)

// An admin imported from EMQX 4 logs in with its EMQX password (the
// salted md5 EMQX kept; here a real one: admin / "public"); the first
// login replaces the hash with bcrypt in the store, the token works, and
// the next login is checked against bcrypt. A wrong password neither
// logs in nor changes the record.
func TestLoginUpgradesEMQX4Hash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	legacy, err := authn.EMQX4AdminHash("8Vd7+gVg2J3nE1Xjyxqd59sA5mo=")
	if err != nil {
		t.Fatal(err)
	}
	imported := store.Admin{V: 1, Username: "emqx-admin", PasswordHash: legacy, Role: RoleAdministrator, Desc: "administrator (imported from EMQX 4)"}
	e.put(store.TableAdmins, "emqx-admin", imported)
	stored := func() store.Admin {
		var a store.Admin
		e.st.View(func(tx *store.Tx) (err error) {
			a, _, err = store.Get[store.Admin](tx, store.TableAdmins, "emqx-admin")
			return err
		})
		return a
	}
	login := func(pw string) resp {
		return send(t, e.remote.URL, "POST", "/api/v1/login", "", LoginRequest{Username: "emqx-admin", Password: pw})
	}

	e.expectErr(login("Public"), http.StatusUnauthorized, CodeUnauthorized, "wrong username or password")
	if a := stored(); a != imported {
		t.Fatalf("a failed login changed the admin: %+v", a)
	}

	var lr LoginResponse
	e.expect(login("public"), http.StatusOK, &lr)
	a := stored()
	if _, err := bcrypt.Cost([]byte(a.PasswordHash)); err != nil || bcrypt.CompareHashAndPassword([]byte(a.PasswordHash), []byte("public")) != nil {
		t.Fatalf("after the first login the hash is %q (%v), want bcrypt of the password", a.PasswordHash, err)
	}
	if a.UpgradedFrom != authn.LegacyHashPrint(legacy) || a.Role != imported.Role || a.Desc != imported.Desc {
		t.Errorf("upgraded admin %+v", a)
	}
	e.expect(send(t, e.remote.URL, "GET", "/api/v1/users", "Bearer "+lr.Token, nil), http.StatusOK, nil)

	e.expect(login("public"), http.StatusOK, &lr)
	if again := stored(); again != a {
		t.Errorf("the second login changed the admin again: %+v", again)
	}
	e.expect(send(t, e.remote.URL, "GET", "/api/v1/users", "Bearer "+lr.Token, nil), http.StatusOK, nil)
}

// HTTP basic auth takes API keys only. An admin's name and password
// there are refused like any wrong key, with the same answer as for an
// unknown name (so it tells nobody which admin names exist), which says
// how admins log in.
func TestBasicAuthWithAdminCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hash, _ := bcrypt.GenerateFromPassword([]byte("admin-pw"), bcrypt.MinCost)
	e.put(store.TableAdmins, "admin", store.Admin{V: 1, Username: "admin", PasswordHash: string(hash), Role: RoleAdministrator})
	var answers []string
	for _, cred := range [][2]string{{"admin", "admin-pw"}, {"admin", "wrong"}, {"nobody", "admin-pw"}} {
		r := send(t, e.remote.URL, "GET", "/api/v1/status", basic(cred[0], cred[1]), nil)
		e.expectErr(r, http.StatusUnauthorized, CodeUnauthorized, "admins log in with POST /api/v1/login")
		answers = append(answers, string(r.body))
	}
	if answers[0] != answers[1] || answers[0] != answers[2] {
		t.Errorf("the answers differ, telling admin names apart:\n%s", strings.Join(answers, "\n"))
	}
	var msg Error
	json.Unmarshal([]byte(answers[0]), &msg)
	for _, want := range []string{"invalid API key or secret", "API key (NAME:SECRET", "Authorization: Bearer TOKEN"} {
		if !strings.Contains(msg.Message, want) {
			t.Errorf("message %q lacks %q", msg.Message, want)
		}
	}
	// The documented way works with the same credentials.
	var lr LoginResponse
	e.expect(send(t, e.remote.URL, "POST", "/api/v1/login", "", LoginRequest{Username: "admin", Password: "admin-pw"}), http.StatusOK, &lr)
	e.expect(send(t, e.remote.URL, "GET", "/api/v1/status", "Bearer "+lr.Token, nil), http.StatusOK, nil)
}

// The initial admin's password file is removed once its password logs
// in as no admin (an import replaced the admin), at once by the watcher
// and by the check at start; it stays while it works, also when the
// admin it logs in as has another name.
func TestStaleInitialAdminPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	// As EnsureInitialAdmin leaves it, at bcrypt's lowest cost: the checks
	// compare hashes many times.
	file := filepath.Join(e.dir, InitialAdminPasswordFile)
	if err := writeSecretFile(file, "initial-pw\n"); err != nil {
		t.Fatal(err)
	}
	cheap := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	e.put(store.TableAdmins, "admin", store.Admin{V: 1, Username: "admin", PasswordHash: cheap("initial-pw"), Role: RoleAdministrator})
	exists := func() bool { _, err := os.Stat(file); return err == nil }
	if removed, err := RemoveStaleInitialAdminPassword(ctx, e.st, e.dir, "admin", quietLogger()); err != nil || removed || !exists() {
		t.Fatalf("a working file: removed %v, err %v", removed, err)
	}
	// The same password under another name still works: kept.
	var a store.Admin
	e.st.View(func(tx *store.Tx) (err error) {
		a, _, err = store.Get[store.Admin](tx, store.TableAdmins, "admin")
		return err
	})
	a.Username = "root"
	e.put(store.TableAdmins, "root", a)
	if removed, err := RemoveStaleInitialAdminPassword(ctx, e.st, e.dir, "other-name", quietLogger()); err != nil || removed || !exists() {
		t.Fatalf("a file that logs in as another admin: removed %v, err %v", removed, err)
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() { WatchInitialAdminPassword(wctx, e.st, e.dir, "admin", quietLogger()); close(done) }()

	// An import replaces "admin" with one of another password and
	// removes "root".
	e.put(store.TableAdmins, "admin", store.Admin{V: 1, Username: "admin", PasswordHash: cheap("imported-pw"), Role: RoleAdministrator})
	if !exists() {
		t.Fatal("removed while an admin (root) still had the password")
	}
	if _, err := e.st.Apply(ctx, store.Delete(store.TableAdmins, "root")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the watcher did not remove the stale file")
	}
	if exists() {
		t.Fatal("the watcher returned but the stale file is there")
	}

	// At start: a stale file left from before is removed by the check.
	if err := os.WriteFile(file, []byte("old-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if removed, err := RemoveStaleInitialAdminPassword(ctx, e.st, e.dir, "admin", quietLogger()); err != nil || !removed || exists() {
		t.Fatalf("stale file at start: removed %v, err %v, exists %v", removed, err, exists())
	}
	if removed, err := RemoveStaleInitialAdminPassword(ctx, e.st, e.dir, "admin", quietLogger()); err != nil || removed {
		t.Fatalf("no file: removed %v, err %v", removed, err)
	}
}

// Cluster config overrides over REST: set (only keys the nodes follow,
// only valid values), read, list, remove; a viewer only reads.
func TestConfigOverridesAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const path = "/api/v1/config/overrides/authn.user_id_type"
	var o ConfigOverride
	e.expectErr(e.do("GET", path, nil), http.StatusNotFound, CodeNotFound, "no cluster config override")
	e.expect(e.do("PUT", path, ConfigOverrideInput{Value: json.RawMessage(`"both"`)}), http.StatusOK, &o)
	if o.Key != "authn.user_id_type" || string(o.Value) != `"both"` || !o.Followed || o.UpdatedAt.IsZero() {
		t.Fatalf("set %+v", o)
	}
	e.expect(e.do("GET", path, nil), http.StatusOK, &o)
	var page Page[ConfigOverride]
	e.expect(e.do("GET", "/api/v1/config/overrides", nil), http.StatusOK, &page)
	if len(page.Data) != 1 || page.Data[0].Key != "authn.user_id_type" {
		t.Fatalf("list %+v", page)
	}
	e.expectErr(e.do("PUT", path, ConfigOverrideInput{Value: json.RawMessage(`"email"`)}), http.StatusBadRequest, CodeBadRequest, `expected one of username|clientid|both, got "email"`)
	e.expectErr(e.do("PUT", path, ConfigOverrideInput{Value: json.RawMessage(`3`)}), http.StatusBadRequest, CodeBadRequest, "must be a JSON string")
	e.expectErr(e.do("PUT", path, map[string]any{}), http.StatusBadRequest, CodeBadRequest, `field "value": required`)
	e.expectErr(e.do("PUT", "/api/v1/config/overrides/mqtt.max_inflight", ConfigOverrideInput{Value: json.RawMessage(`5`)}), http.StatusBadRequest, CodeBadRequest, "not a key the nodes follow at run time")

	hash, _ := bcrypt.GenerateFromPassword([]byte("viewpw"), bcrypt.MinCost)
	e.put(store.TableAdmins, "v", store.Admin{V: 1, Username: "v", PasswordHash: string(hash), Role: RoleViewer})
	var lr LoginResponse
	e.expect(send(t, e.remote.URL, "POST", "/api/v1/login", "", LoginRequest{Username: "v", Password: "viewpw"}), http.StatusOK, &lr)
	e.expect(send(t, e.remote.URL, "GET", path, "Bearer "+lr.Token, nil), http.StatusOK, nil)
	e.expectErr(send(t, e.remote.URL, "DELETE", path, "Bearer "+lr.Token, nil), http.StatusForbidden, CodeForbidden, "viewer")

	e.expect(e.do("DELETE", path, nil), http.StatusNoContent, nil)
	e.expectErr(e.do("DELETE", path, nil), http.StatusNotFound, CodeNotFound, "no cluster config override")
}
