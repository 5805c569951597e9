package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/roostmq/roost/internal/broker/authn"
	"github.com/roostmq/roost/internal/store"
)

// UserInput is the body of POST /api/v1/users (and one element of a bulk
// create).
type UserInput struct {
	UserID      string `json:"user_id"`
	Password    string `json:"password"`
	IsSuperuser bool   `json:"is_superuser"`
	Kind        string `json:"kind,omitempty"` // username | clientid; default authn.user_id_type
}

// UserUpdate is the body of PUT /api/v1/users/{kind}/{id}: the fields to
// change.
type UserUpdate struct {
	Password    *string `json:"password,omitempty"`
	IsSuperuser *bool   `json:"is_superuser,omitempty"`
}

// User is a credential as the API shows it: never its hash or salt.
type User struct {
	Kind        string    `json:"kind"`
	UserID      string    `json:"user_id"`
	IsSuperuser bool      `json:"is_superuser"`
	Algorithm   string    `json:"algorithm"`
	CreatedAt   time.Time `json:"created_at"`
}

func userView(u *store.User) User {
	return User{Kind: u.Kind, UserID: u.ID, IsSuperuser: u.Superuser, Algorithm: u.Algorithm, CreatedAt: u.CreatedAt}
}

const maxIDLen = 65535

func validID(field, id string) error {
	switch {
	case id == "":
		return fieldError(field, "required")
	case len(id) > maxIDLen:
		return fieldError(field, "longer than %d bytes", maxIDLen)
	case strings.IndexByte(id, 0) >= 0:
		return fieldError(field, "contains a NUL character")
	case !utf8.ValidString(id):
		return fieldError(field, "not valid UTF-8")
	}
	return nil
}

func (s *Server) checkUserInput(in *UserInput, item string) error {
	if in.Kind == "" {
		in.Kind = s.defaultUserKind()
	}
	if err := requireKind(item+"kind", in.Kind, store.KindUsername, store.KindClientID); err != nil {
		return err
	}
	if err := validID(item+"user_id", in.UserID); err != nil {
		return err
	}
	if in.Password == "" {
		return fieldError(item+"password", "required")
	}
	return nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) error {
	p, err := parsePage(r)
	if err != nil {
		return err
	}
	prefix := ""
	if k := r.URL.Query().Get("kind"); k != "" {
		if k != store.KindUsername && k != store.KindClientID {
			return badRequest("query parameter \"kind\": must be username or clientid, got %q", k)
		}
		prefix = k + ":"
	}
	var out Page[User]
	err = s.st.View(func(tx *store.Tx) (err error) {
		out, err = listTable(tx, store.TableUsers, prefix, nil, p, userView)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) error {
	var in UserInput
	if err := decode(w, r, maxBody, &in); err != nil {
		return err
	}
	if err := s.checkUserInput(&in, ""); err != nil {
		return err
	}
	key := store.UserKey(in.Kind, in.UserID)
	if err := s.st.View(func(tx *store.Tx) error {
		if tx.Get(store.TableUsers, key) != nil {
			return conflict("user %s already exists", key)
		}
		return nil
	}); err != nil {
		return err
	}
	u, err := authn.NewCredential(in.Kind, in.UserID, in.Password, s.opts.HashParams, in.IsSuperuser)
	if err != nil {
		return fmt.Errorf("hash password of %s: %w", key, err)
	}
	op, err := store.Put(store.TableUsers, key, u)
	if err != nil {
		return err
	}
	if _, err := s.st.Apply(r.Context(), op); err != nil {
		return fmt.Errorf("create user %s: %w", key, err)
	}
	writeJSON(w, http.StatusCreated, userView(&u))
	return nil
}

// maxBulk is the most records one bulk request may create.
const maxBulk = 100000

// decodeBulk decodes a JSON array body into one T per element, with
// errors naming the element ("[3].password").
func decodeBulk[T any](w http.ResponseWriter, r *http.Request) ([]T, error) {
	var raw []json.RawMessage
	if err := decode(w, r, maxBulkBody, &raw); err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, badRequest("request body: an empty array (nothing to create)")
	}
	if len(raw) > maxBulk {
		return nil, badRequest("request body: %d items, more than the %d one request may carry", len(raw), maxBulk)
	}
	out := make([]T, len(raw))
	for i, m := range raw {
		if err := decodeFrom(bytes.NewReader(m), fmt.Sprintf("[%d].", i), &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// createUsersBulk creates many users in one store commit: all or none.
func (s *Server) createUsersBulk(w http.ResponseWriter, r *http.Request) error {
	in, err := decodeBulk[UserInput](w, r)
	if err != nil {
		return err
	}
	seen := make(map[string]int, len(in))
	for i := range in {
		item := fmt.Sprintf("[%d].", i)
		if err := s.checkUserInput(&in[i], item); err != nil {
			return err
		}
		key := store.UserKey(in[i].Kind, in[i].UserID)
		if j, dup := seen[key]; dup {
			return fieldError(item+"user_id", "user %s is also item [%d]", key, j)
		}
		seen[key] = i
	}
	if err := s.st.View(func(tx *store.Tx) error {
		for i := range in {
			key := store.UserKey(in[i].Kind, in[i].UserID)
			if tx.Get(store.TableUsers, key) != nil {
				return conflict("user %s (item [%d]) already exists", key, i)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	users, err := s.hashAll(in)
	if err != nil {
		return err
	}
	ops := make([]store.Op, len(users))
	out := make([]User, len(users))
	for i := range users {
		if ops[i], err = store.Put(store.TableUsers, store.UserKey(users[i].Kind, users[i].ID), users[i]); err != nil {
			return err
		}
		out[i] = userView(&users[i])
	}
	if _, err := s.st.Apply(r.Context(), ops...); err != nil {
		return fmt.Errorf("create %d users: %w", len(ops), err)
	}
	writeJSON(w, http.StatusCreated, map[string]any{"data": out})
	return nil
}

// hashAll hashes the passwords of in on every CPU: with bcrypt or pbkdf2
// hashing, not the store, bounds a bulk create.
func (s *Server) hashAll(in []UserInput) ([]store.User, error) {
	out := make([]store.User, len(in))
	errs := make([]error, len(in))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(runtime.GOMAXPROCS(0), len(in)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i], errs[i] = authn.NewCredential(in[i].Kind, in[i].UserID, in[i].Password, s.opts.HashParams, in[i].IsSuperuser)
			}
		}()
	}
	for i := range in {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("hash password of item [%d]: %w", i, err)
		}
	}
	return out, nil
}

// defaultUserKind is the kind of a user a request names no kind for.
func (s *Server) defaultUserKind() string {
	if s.opts.DefaultUserKind != nil {
		return s.opts.DefaultUserKind()
	}
	return s.opts.UserIDType
}

// userKeyOf reads {kind}/{id} from the path; without {kind}, the default.
func (s *Server) userKeyOf(r *http.Request) (kind, id string, err error) {
	kind, id = r.PathValue("kind"), r.PathValue("id")
	if kind == "" {
		kind = s.defaultUserKind()
	}
	if kind != store.KindUsername && kind != store.KindClientID {
		return "", "", notFound("no user kind %q (username or clientid)", kind)
	}
	return kind, id, nil
}

func (s *Server) loadUser(kind, id string) (store.User, error) {
	var (
		u  store.User
		ok bool
	)
	err := s.st.View(func(tx *store.Tx) (err error) {
		u, ok, err = store.Get[store.User](tx, store.TableUsers, store.UserKey(kind, id))
		return err
	})
	if err == nil && !ok {
		err = notFound("no user %s", store.UserKey(kind, id))
	}
	return u, err
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) error {
	kind, id, err := s.userKeyOf(r)
	if err != nil {
		return err
	}
	u, err := s.loadUser(kind, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, userView(&u))
	return nil
}

func (s *Server) updateUser(w http.ResponseWriter, r *http.Request) error {
	kind, id, err := s.userKeyOf(r)
	if err != nil {
		return err
	}
	var in UserUpdate
	if err := decode(w, r, maxBody, &in); err != nil {
		return err
	}
	if in.Password == nil && in.IsSuperuser == nil {
		return badRequest("request body: nothing to change (give \"password\" and/or \"is_superuser\")")
	}
	if in.Password != nil && *in.Password == "" {
		return fieldError("password", "must not be empty")
	}
	u, err := s.loadUser(kind, id)
	if err != nil {
		return err
	}
	if in.IsSuperuser != nil {
		u.Superuser = *in.IsSuperuser
	}
	if in.Password != nil {
		// A new password is hashed the way new users' are, so changing
		// authn.password_hash upgrades credentials as they are changed.
		nu, err := authn.NewCredential(kind, id, *in.Password, s.opts.HashParams, u.Superuser)
		if err != nil {
			return fmt.Errorf("hash password of %s: %w", store.UserKey(kind, id), err)
		}
		nu.CreatedAt = u.CreatedAt
		u = nu
	}
	u.V = store.RecordVersion
	op, err := store.Put(store.TableUsers, store.UserKey(kind, id), u)
	if err != nil {
		return err
	}
	if _, err := s.st.Apply(r.Context(), op); err != nil {
		return fmt.Errorf("update user %s: %w", store.UserKey(kind, id), err)
	}
	writeJSON(w, http.StatusOK, userView(&u))
	return nil
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) error {
	kind, id, err := s.userKeyOf(r)
	if err != nil {
		return err
	}
	if _, err := s.loadUser(kind, id); err != nil {
		return err
	}
	if _, err := s.st.Apply(r.Context(), store.Delete(store.TableUsers, store.UserKey(kind, id))); err != nil {
		return fmt.Errorf("delete user %s: %w", store.UserKey(kind, id), err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
