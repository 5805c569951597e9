package api

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/roostmq/roost/internal/broker/authn"
	"github.com/roostmq/roost/internal/store"
	"golang.org/x/crypto/bcrypt"
)

// Admin roles. An administrator may do everything; a viewer only reads.
// API keys act as administrators.
const (
	RoleAdministrator = "administrator"
	RoleViewer        = "viewer"
)

// Caller is who made a request: an API key, a logged-in admin, or the
// local CLI over the unix socket.
type Caller struct {
	Kind string // api_key | admin | local
	Name string
	Role string // administrator | viewer
}

func (c *Caller) String() string { return c.Kind + ":" + c.Name }

type (
	callerKey       struct{}
	callerHolderKey struct{}
	callerHolder    struct{ c *Caller }
)

func withCaller(ctx context.Context, c *Caller) context.Context {
	if h, ok := ctx.Value(callerHolderKey{}).(*callerHolder); ok {
		h.c = c // for the request log
	}
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the authenticated caller of a request handled by
// this package's handlers (nil on the login route).
func CallerFrom(ctx context.Context) *Caller {
	c, _ := ctx.Value(callerKey{}).(*Caller)
	return c
}

func unauthorized(format string, args ...any) *Error {
	return errorf(http.StatusUnauthorized, CodeUnauthorized, format, args...)
}

// authenticate lets through requests with a valid API key (basic auth) or
// bearer token, and only reads for viewers. Login needs no credentials,
// nor /metrics when the operator made it public (api.metrics_auth = false).
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/login" || r.URL.Path == "/metrics" && s.opts.PublicMetrics {
			next.ServeHTTP(w, r)
			return
		}
		c, err := s.authCaller(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		ctx := withCaller(r.Context(), c)
		if c.Role != RoleAdministrator && r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.writeError(w, r, errorf(http.StatusForbidden, CodeForbidden,
				"%s has the %s role, which may only read", c, c.Role))
			return
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (s *Server) authCaller(r *http.Request) (*Caller, error) {
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	switch {
	case h == "":
		return nil, unauthorized("authentication required: HTTP basic auth with an API key (name:secret), or a bearer token from POST /api/v1/login")
	case strings.EqualFold(scheme, "basic"):
		name, secret, ok := r.BasicAuth()
		if !ok {
			return nil, unauthorized("malformed basic auth header")
		}
		return s.checkAPIKey(name, secret)
	case strings.EqualFold(scheme, "bearer"):
		return s.checkToken(strings.TrimSpace(cred))
	}
	return nil, unauthorized("unsupported authorization scheme %q (use Basic with an API key, or Bearer)", scheme)
}

// basicAuthHint ends the answer to every refused basic auth, since an
// admin's name and password are what people try there first. It is the
// same whether or not the name is an admin's (nor does the refusal take
// longer), so it tells nobody which admin names exist; and basic auth
// never checks admin passwords, which would cost a bcrypt computation
// per request.
const basicAuthHint = "HTTP basic auth takes an API key (NAME:SECRET, made with POST /api/v1/api_keys); " +
	"admins log in with POST /api/v1/login and send the token it returns as \"Authorization: Bearer TOKEN\""

// API key secrets are stored as hex sha256(salt || secret), where salt
// is the 16 random bytes whose hex form is APIKey.Salt.

func newAPIKeySecret() (secret, saltHex, hashHex string) {
	b := make([]byte, 32)
	rand.Read(b)
	secret = base64.RawURLEncoding.EncodeToString(b)
	salt := make([]byte, 16)
	rand.Read(salt)
	return secret, hex.EncodeToString(salt), hashAPIKeySecret(salt, secret)
}

func hashAPIKeySecret(salt []byte, secret string) string {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(secret))
	return hex.EncodeToString(h.Sum(nil))
}

func (s *Server) checkAPIKey(name, secret string) (*Caller, error) {
	var (
		k  store.APIKey
		ok bool
	)
	err := s.st.View(func(tx *store.Tx) (err error) {
		k, ok, err = store.Get[store.APIKey](tx, store.TableAPIKeys, name)
		return err
	})
	if err != nil {
		return nil, err
	}
	salt := make([]byte, 16) // an unknown name costs the same hash as a known one
	want := strings.Repeat("0", 64)
	if ok {
		if b, err := hex.DecodeString(k.Salt); err == nil {
			salt = b
		}
		want = k.SecretHash
	}
	got := hashAPIKeySecret(salt, secret)
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 || !ok {
		return nil, unauthorized("invalid API key or secret; %s", basicAuthHint)
	}
	if !k.Enabled {
		return nil, unauthorized("API key %q is disabled", name)
	}
	if !k.ExpiresAt.IsZero() && !time.Now().Before(k.ExpiresAt) {
		return nil, unauthorized("API key %q expired at %s", name, k.ExpiresAt.Format(time.RFC3339))
	}
	return &Caller{Kind: "api_key", Name: name, Role: RoleAdministrator}, nil
}

// Bearer tokens are "<payload>.<mac>": base64url JSON claims and their
// HMAC-SHA256 under the server's token key. A token names the admin and
// a fingerprint of their password hash, so changing the password or
// deleting the admin revokes it; the role is read from the store on
// every request.
type tokenClaims struct {
	User    string `json:"u"`
	Expires int64  `json:"exp"`
	PWPrint string `json:"pw"`
}

func passwordPrint(hash string) string {
	s := sha256.Sum256([]byte(hash))
	return hex.EncodeToString(s[:8])
}

func (s *Server) signToken(c tokenClaims) string {
	b, _ := json.Marshal(c)
	payload := base64.RawURLEncoding.EncodeToString(b)
	m := hmac.New(sha256.New, s.tokenKey)
	m.Write([]byte(payload))
	return payload + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) checkToken(tok string) (*Caller, error) {
	payload, sig, ok := strings.Cut(tok, ".")
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if !ok || err != nil {
		return nil, unauthorized("malformed bearer token")
	}
	m := hmac.New(sha256.New, s.tokenKey)
	m.Write([]byte(payload))
	if !hmac.Equal(mac, m.Sum(nil)) {
		return nil, unauthorized("invalid or expired bearer token: log in again")
	}
	var c tokenClaims
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(b, &c) != nil {
		return nil, unauthorized("malformed bearer token")
	}
	if time.Now().Unix() >= c.Expires {
		return nil, unauthorized("bearer token expired: log in again")
	}
	var (
		a     store.Admin
		found bool
	)
	if err := s.st.View(func(tx *store.Tx) (err error) {
		a, found, err = store.Get[store.Admin](tx, store.TableAdmins, c.User)
		return err
	}); err != nil {
		return nil, err
	}
	if !found || subtle.ConstantTimeCompare([]byte(passwordPrint(a.PasswordHash)), []byte(c.PWPrint)) != 1 {
		return nil, unauthorized("bearer token revoked (admin removed or password changed): log in again")
	}
	role := a.Role
	if role != RoleViewer {
		role = RoleAdministrator
	}
	return &Caller{Kind: "admin", Name: a.Username, Role: role}, nil
}

// LoginRequest is the body of POST /api/v1/login.
type LoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// LoginResponse carries a bearer token for the Authorization header.
type LoginResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	Username  string    `json:"username"`
	Role      string    `json:"role"`
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	var in LoginRequest
	if err := decode(w, r, maxBody, &in); err != nil {
		return err
	}
	if in.Username == "" {
		return fieldError("username", "required")
	}
	if in.Password == "" {
		return fieldError("password", "required")
	}
	var (
		a     store.Admin
		found bool
	)
	if err := s.st.View(func(tx *store.Tx) (err error) {
		a, found, err = store.Get[store.Admin](tx, store.TableAdmins, in.Username)
		return err
	}); err != nil {
		return err
	}
	hash := authn.DummyAdminHash // an unknown admin costs the same bcrypt as a known one
	if found {
		hash = a.PasswordHash
	}
	if !authn.VerifyAdmin(hash, in.Password) || !found {
		s.log.Warn("api: failed admin login", "username", in.Username, "remote", r.RemoteAddr)
		return unauthorized("wrong username or password")
	}
	if authn.LegacyAdminHash(a.PasswordHash) {
		a = s.upgradeAdminHash(r.Context(), a, in.Password)
	}
	exp := time.Now().Add(s.opts.TokenTTL).Truncate(time.Second)
	tok := s.signToken(tokenClaims{User: a.Username, Expires: exp.Unix(), PWPrint: passwordPrint(a.PasswordHash)})
	role := a.Role
	if role != RoleViewer {
		role = RoleAdministrator
	}
	writeJSON(w, http.StatusOK, LoginResponse{Token: tok, ExpiresAt: exp.UTC(), Username: a.Username, Role: role})
	return nil
}

// upgradeAdminHash replaces an admin's imported EMQX 4 hash (salted
// md5) with bcrypt of the password that just logged in, through the
// store, so every node has it. It returns the admin as stored; when the
// write fails the login goes on with the old hash (the next login tries
// again).
func (s *Server) upgradeAdminHash(ctx context.Context, a store.Admin, password string) store.Admin {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		s.log.Warn("api: cannot re-hash an imported admin password; it stays EMQX 4 md5 until the next login", "username", a.Username, "err", err)
		return a
	}
	next := a
	next.PasswordHash, next.UpgradedFrom = string(h), authn.LegacyHashPrint(a.PasswordHash)
	op, err := store.Put(store.TableAdmins, a.Username, next)
	if err == nil {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_, err = s.st.Apply(wctx, op)
		cancel()
	}
	if err != nil {
		s.log.Warn("api: cannot store the re-hashed password of an imported admin; it stays EMQX 4 md5 until the next login", "username", a.Username, "err", err)
		return a
	}
	s.log.Info("api: imported EMQX 4 admin password re-hashed with bcrypt at its first login", "username", a.Username)
	return next
}

// InitialAdminPasswordFile is the file in the data dir that holds the
// first admin's random password.
const InitialAdminPasswordFile = "initial-admin-password"

// EnsureInitialAdmin creates the first admin when the admins table is
// empty: username (default "admin") with configuredPassword
// (dashboard.default_password), or with a random password written to
// <dataDir>/initial-admin-password (mode 0600) when none is configured.
// Once an admin exists it changes nothing, even if the configured
// password changes. Only the raft leader creates the admin (a follower's
// cluster already has its admins, or is catching up to them), so call it
// after the store has a leader.
func EnsureInitialAdmin(ctx context.Context, log *slog.Logger, st *store.Store, dataDir, username, configuredPassword string) (bool, error) {
	log = log.With("component", "api")
	if username == "" {
		username = "admin"
	}
	if !st.IsLeader() {
		return false, nil
	}
	// Read after everything committed so far: a restarted leader must not
	// see a table that is empty only because it is behind.
	if _, err := st.Barrier(ctx); err != nil {
		return false, fmt.Errorf("initial admin: %w", err)
	}
	var n int
	if err := st.View(func(tx *store.Tx) error { n = tx.Count(store.TableAdmins); return nil }); err != nil {
		return false, fmt.Errorf("initial admin: %w", err)
	}
	if n > 0 {
		return false, nil
	}
	password, file := configuredPassword, ""
	if password == "" {
		b := make([]byte, 18)
		rand.Read(b)
		password = base64.RawURLEncoding.EncodeToString(b)
		// The file is written before the admin exists: a crash in between
		// leaves a file for an admin that is not there yet (the next start
		// rewrites it), never an admin whose password nobody has.
		file = filepath.Join(dataDir, InitialAdminPasswordFile)
		if err := writeSecretFile(file, password+"\n"); err != nil {
			return false, fmt.Errorf("initial admin: %w", err)
		}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return false, fmt.Errorf("initial admin: hash password: %w", err)
	}
	op, err := store.Put(store.TableAdmins, username, store.Admin{V: store.RecordVersion, Username: username,
		PasswordHash: string(hash), Role: RoleAdministrator, Desc: "created at first start", CreatedAt: time.Now().UTC()})
	if err != nil {
		return false, fmt.Errorf("initial admin: %w", err)
	}
	if _, err := st.Apply(ctx, op); err != nil {
		return false, fmt.Errorf("initial admin: store admin %q: %w", username, err)
	}
	if file != "" {
		log.Info("created the initial admin; its password is in the file (readable by this user only)", "username", username, "file", file)
	} else {
		log.Info("created the initial admin with the configured dashboard.default_password", "username", username)
	}
	return true, nil
}

// writeSecretFile writes content to path with mode 0600, atomically: the
// file is never visible with other permissions or half written.
func writeSecretFile(path, content string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(0o600); err != nil {
		return fail(err)
	}
	if _, err := f.WriteString(content); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// callerName names the caller of r for records that keep who made them
// (a ban's "by").
func callerName(r *http.Request) string {
	if c := CallerFrom(r.Context()); c != nil {
		return c.String()
	}
	return "unknown"
}
