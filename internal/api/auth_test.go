package api

import (
	"context"
	"encoding/base64"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roostmq/roost/internal/store"
	"golang.org/x/crypto/bcrypt"
)

func basic(name, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(name+":"+secret))
}

func TestAPIKeysAndBasicAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	remote := func(method, path, auth string, body any) resp {
		return send(t, e.remote.URL, method, path, auth, body)
	}

	// No credentials at all: 401, JSON, with a challenge.
	r := remote("GET", "/api/v1/status", "", nil)
	e.expectErr(r, http.StatusUnauthorized, CodeUnauthorized, "authentication required")
	if got := r.header.Get("WWW-Authenticate"); got != `Basic realm="roost", charset="UTF-8"` {
		t.Fatalf("challenge without credentials %q, want Basic", got)
	}
	// A refused bearer token and a failed login get a Bearer challenge: a
	// Basic one makes browsers prompt, which stalls the dashboard.
	r = remote("GET", "/api/v1/status", "Bearer x.y", nil)
	e.expectErr(r, http.StatusUnauthorized, CodeUnauthorized, "token")
	if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer ") {
		t.Fatalf("challenge for a bearer token %q, want Bearer", got)
	}
	r = remote("POST", "/api/v1/login", "", LoginRequest{Username: "nobody", Password: "x"})
	e.expectErr(r, http.StatusUnauthorized, CodeUnauthorized, "wrong username or password")
	if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="roost"` {
		t.Fatalf("challenge of a failed login %q, want Bearer", got)
	}

	var k APIKeyCreated
	e.expect(e.do("POST", "/api/v1/api_keys", APIKeyInput{Name: "ci", Desc: "for CI"}), http.StatusCreated, &k)
	if k.Secret == "" || !k.Enabled || k.Name != "ci" || k.Desc != "for CI" {
		t.Fatalf("created %+v", k)
	}
	e.expect(remote("GET", "/api/v1/status", basic("ci", k.Secret), nil), http.StatusOK, nil)
	e.expect(remote("POST", "/api/v1/users", basic("ci", k.Secret), UserInput{UserID: "u", Password: "p"}), http.StatusCreated, nil)

	e.expectErr(remote("GET", "/api/v1/status", basic("ci", k.Secret+"x"), nil), http.StatusUnauthorized, CodeUnauthorized, "invalid API key")
	e.expectErr(remote("GET", "/api/v1/status", basic("nobody", k.Secret), nil), http.StatusUnauthorized, CodeUnauthorized, "invalid API key")
	e.expectErr(remote("GET", "/api/v1/status", "Basic !!!", nil), http.StatusUnauthorized, CodeUnauthorized, "malformed")
	e.expectErr(remote("GET", "/api/v1/status", "Digest x", nil), http.StatusUnauthorized, CodeUnauthorized, "unsupported")

	// The secret is shown once and stored only as a salted hash.
	r = e.do("GET", "/api/v1/api_keys", nil)
	if strings.Contains(string(r.body), k.Secret) || strings.Contains(string(r.body), "secret") {
		t.Fatalf("list shows the secret: %s", r.body)
	}
	var rec store.APIKey
	_ = e.st.View(func(tx *store.Tx) (err error) {
		rec, _, err = store.Get[store.APIKey](tx, store.TableAPIKeys, "ci")
		return err
	})
	if rec.SecretHash == "" || rec.Salt == "" || strings.Contains(rec.SecretHash, k.Secret) {
		t.Fatalf("stored key %+v", rec)
	}

	// Disabled, then expired keys are refused even with the right secret.
	var v APIKey
	e.expect(e.do("PUT", "/api/v1/api_keys/ci", map[string]any{"enabled": false}), http.StatusOK, &v)
	if v.Enabled {
		t.Fatalf("still enabled: %+v", v)
	}
	e.expectErr(remote("GET", "/api/v1/status", basic("ci", k.Secret), nil), http.StatusUnauthorized, CodeUnauthorized, "disabled")
	e.expect(e.do("PUT", "/api/v1/api_keys/ci", map[string]any{"enabled": true}), http.StatusOK, nil)
	e.expect(remote("GET", "/api/v1/status", basic("ci", k.Secret), nil), http.StatusOK, nil)
	rec.Enabled, rec.ExpiresAt = true, time.Now().Add(-time.Minute)
	e.put(store.TableAPIKeys, "ci", rec)
	e.expectErr(remote("GET", "/api/v1/status", basic("ci", k.Secret), nil), http.StatusUnauthorized, CodeUnauthorized, "expired")
	e.expect(e.do("PUT", "/api/v1/api_keys/ci", map[string]any{"expires_at": "never"}), http.StatusOK, &v)
	if !v.ExpiresAt.IsZero() || v.Expired {
		t.Fatalf("expiry not removed: %+v", v)
	}
	e.expect(remote("GET", "/api/v1/status", basic("ci", k.Secret), nil), http.StatusOK, nil)

	// Keys with an expiry, listing, validation, delete.
	e.expect(e.do("POST", "/api/v1/api_keys", APIKeyInput{Name: "tmp", ExpiresAt: "24h", Enabled: new(bool)}), http.StatusCreated, &k)
	if k.Enabled || k.ExpiresAt.Before(time.Now().Add(23*time.Hour)) {
		t.Fatalf("tmp key %+v", k)
	}
	var page Page[APIKey]
	e.expect(e.do("GET", "/api/v1/api_keys?limit=1", nil), http.StatusOK, &page)
	if page.Meta.Count != 2 || !page.Meta.HasNext || page.Data[0].Name != "ci" {
		t.Fatalf("list %+v", page)
	}
	e.expectErr(e.do("POST", "/api/v1/api_keys", APIKeyInput{Name: "ci"}), http.StatusConflict, CodeAlreadyExists, `"ci"`)
	e.expectErr(e.do("POST", "/api/v1/api_keys", APIKeyInput{}), http.StatusBadRequest, CodeBadRequest, `field "name": required`)
	e.expectErr(e.do("POST", "/api/v1/api_keys", APIKeyInput{Name: "a:b"}), http.StatusBadRequest, CodeBadRequest, `field "name"`)
	e.expectErr(e.do("POST", "/api/v1/api_keys", APIKeyInput{Name: "x", ExpiresAt: "soon"}), http.StatusBadRequest, CodeBadRequest, `field "expires_at"`)
	e.expect(e.do("DELETE", "/api/v1/api_keys/ci", nil), http.StatusNoContent, nil)
	e.expectErr(e.do("DELETE", "/api/v1/api_keys/ci", nil), http.StatusNotFound, CodeNotFound, `"ci"`)
	e.expectErr(remote("GET", "/api/v1/status", basic("ci", k.Secret), nil), http.StatusUnauthorized, CodeUnauthorized, "invalid API key")
}

func TestInitialAdminAndLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	created, err := EnsureInitialAdmin(ctx, slog.Default(), e.st, e.dir, "", "")
	if err != nil || !created {
		t.Fatalf("created=%v err=%v", created, err)
	}
	file := filepath.Join(e.dir, InitialAdminPasswordFile)
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", file, fi.Mode().Perm())
	}
	b, _ := os.ReadFile(file)
	password := strings.TrimSpace(string(b))
	if len(password) < 16 {
		t.Fatalf("weak initial password %q", password)
	}
	if created, err := EnsureInitialAdmin(ctx, slog.Default(), e.st, e.dir, "", "other"); err != nil || created {
		t.Fatalf("second call: created=%v err=%v", created, err)
	}
	if b2, _ := os.ReadFile(file); string(b2) != string(b) {
		t.Fatal("second call rewrote the password file")
	}
	if matches, _ := filepath.Glob(filepath.Join(e.dir, ".initial-admin-password.tmp*")); len(matches) > 0 {
		t.Fatalf("temp files left: %v", matches)
	}

	remote := func(method, path, auth string, body any) resp {
		return send(t, e.remote.URL, method, path, auth, body)
	}
	e.expectErr(remote("POST", "/api/v1/login", "", LoginRequest{Username: "admin", Password: "wrong"}), http.StatusUnauthorized, CodeUnauthorized, "wrong username or password")
	e.expectErr(remote("POST", "/api/v1/login", "", LoginRequest{Username: "nobody", Password: password}), http.StatusUnauthorized, CodeUnauthorized, "wrong username or password")
	e.expectErr(remote("POST", "/api/v1/login", "", map[string]string{"username": "admin"}), http.StatusBadRequest, CodeBadRequest, `field "password": required`)

	var lr LoginResponse
	e.expect(remote("POST", "/api/v1/login", "", LoginRequest{Username: "admin", Password: password}), http.StatusOK, &lr)
	if lr.Token == "" || lr.Role != RoleAdministrator || time.Until(lr.ExpiresAt) < 59*time.Minute {
		t.Fatalf("login %+v", lr)
	}
	bearer := "Bearer " + lr.Token
	e.expect(remote("GET", "/api/v1/users", bearer, nil), http.StatusOK, nil)
	var b1 Ban
	e.expect(remote("POST", "/api/v1/banned", bearer, BanInput{Kind: "clientid", Value: "x"}), http.StatusCreated, &b1)
	if b1.By != "admin:admin" {
		t.Fatalf("ban by %q", b1.By)
	}

	// Tampered and foreign tokens.
	e.expectErr(remote("GET", "/api/v1/users", bearer+"x", nil), http.StatusUnauthorized, CodeUnauthorized, "invalid or expired bearer token")
	e.expectErr(remote("GET", "/api/v1/users", "Bearer abc", nil), http.StatusUnauthorized, CodeUnauthorized, "malformed")
	other := New(Options{Store: e.st, Logger: quietLogger()}) // another process: another key
	if _, err := other.checkToken(lr.Token); err == nil {
		t.Fatal("a token signed by another server was accepted")
	}
	expired := e.srv.signToken(tokenClaims{User: "admin", Expires: time.Now().Add(-time.Second).Unix()})
	e.expectErr(remote("GET", "/api/v1/users", "Bearer "+expired, nil), http.StatusUnauthorized, CodeUnauthorized, "expired")

	// A viewer reads but does not write.
	hash, _ := bcrypt.GenerateFromPassword([]byte("viewpw"), bcrypt.MinCost)
	e.put(store.TableAdmins, "viewer1", store.Admin{V: 1, Username: "viewer1", PasswordHash: string(hash), Role: RoleViewer})
	e.expect(remote("POST", "/api/v1/login", "", LoginRequest{Username: "viewer1", Password: "viewpw"}), http.StatusOK, &lr)
	if lr.Role != RoleViewer {
		t.Fatalf("viewer login %+v", lr)
	}
	vb := "Bearer " + lr.Token
	e.expect(remote("GET", "/api/v1/users", vb, nil), http.StatusOK, nil)
	e.expect(remote("GET", "/api/v1/status", vb, nil), http.StatusOK, nil)
	e.expectErr(remote("POST", "/api/v1/users", vb, UserInput{UserID: "v", Password: "p"}), http.StatusForbidden, CodeForbidden, "viewer")
	e.expectErr(remote("DELETE", "/api/v1/banned/clientid/x", vb, nil), http.StatusForbidden, CodeForbidden, "viewer")
	e.expectErr(remote("POST", "/api/v1/api_keys", vb, APIKeyInput{Name: "v"}), http.StatusForbidden, CodeForbidden, "viewer")

	// Changing the admin's password revokes their tokens.
	hash, _ = bcrypt.GenerateFromPassword([]byte("new"), bcrypt.MinCost)
	e.put(store.TableAdmins, "admin", store.Admin{V: 1, Username: "admin", PasswordHash: string(hash), Role: RoleAdministrator})
	e.expectErr(remote("GET", "/api/v1/users", bearer, nil), http.StatusUnauthorized, CodeUnauthorized, "revoked")
}

func TestInitialAdminConfiguredPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	created, err := EnsureInitialAdmin(context.Background(), slog.Default(), e.st, e.dir, "root", "configured-pw")
	if err != nil || !created {
		t.Fatalf("created=%v err=%v", created, err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, InitialAdminPasswordFile)); !os.IsNotExist(err) {
		t.Fatalf("password file written for a configured password: %v", err)
	}
	var lr LoginResponse
	e.expect(send(t, e.remote.URL, "POST", "/api/v1/login", "", LoginRequest{Username: "root", Password: "configured-pw"}), http.StatusOK, &lr)
}
