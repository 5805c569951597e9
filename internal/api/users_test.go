package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/roostmq/roost/internal/broker/authn"
	"github.com/roostmq/roost/internal/store"
)

func (e *testEnv) storedUser(kind, id string) store.User {
	e.t.Helper()
	var u store.User
	var ok bool
	if err := e.st.View(func(tx *store.Tx) (err error) {
		u, ok, err = store.Get[store.User](tx, store.TableUsers, store.UserKey(kind, id))
		return err
	}); err != nil || !ok {
		e.t.Fatalf("user %s:%s: ok=%v err=%v", kind, id, ok, err)
	}
	return u
}

func TestUsersCRUD(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	var u User
	e.expect(e.do("POST", "/api/v1/users", UserInput{UserID: "alice", Password: "s3cret", IsSuperuser: true}), http.StatusCreated, &u)
	if u.Kind != "username" || u.UserID != "alice" || !u.IsSuperuser || u.Algorithm != "sha256" || u.CreatedAt.IsZero() {
		t.Fatalf("created %+v", u)
	}
	r := e.do("GET", "/api/v1/users/username/alice", nil)
	e.expect(r, http.StatusOK, nil)
	if strings.Contains(string(r.body), "hash") || strings.Contains(string(r.body), "salt") {
		t.Fatalf("a user's hash or salt was shown: %s", r.body)
	}
	rec := e.storedUser("username", "alice")
	if !authn.Verify(&rec, "s3cret") || authn.Verify(&rec, "wrong") {
		t.Fatal("stored credential does not verify")
	}

	e.expectErr(e.do("POST", "/api/v1/users", UserInput{UserID: "alice", Password: "x"}), http.StatusConflict, CodeAlreadyExists, "username:alice")

	// The same id as a client id is another credential.
	e.expect(e.do("POST", "/api/v1/users", UserInput{UserID: "alice", Password: "c", Kind: "clientid"}), http.StatusCreated, &u)
	if u.Kind != "clientid" {
		t.Fatalf("kind %q", u.Kind)
	}

	// Change the password only: superuser stays.
	e.expect(e.do("PUT", "/api/v1/users/username/alice", map[string]any{"password": "n3w"}), http.StatusOK, &u)
	rec = e.storedUser("username", "alice")
	if !u.IsSuperuser || !authn.Verify(&rec, "n3w") || authn.Verify(&rec, "s3cret") {
		t.Fatalf("after password change: %+v", u)
	}
	// Superuser only: the password stays.
	e.expect(e.do("PUT", "/api/v1/users/username/alice", map[string]any{"is_superuser": false}), http.StatusOK, &u)
	rec = e.storedUser("username", "alice")
	if u.IsSuperuser || !authn.Verify(&rec, "n3w") {
		t.Fatalf("after superuser change: %+v", u)
	}
	e.expectErr(e.do("PUT", "/api/v1/users/username/alice", map[string]any{}), http.StatusBadRequest, CodeBadRequest, "nothing to change")

	// Without a kind in the path: the default kind (username).
	e.expect(e.do("GET", "/api/v1/users/alice", nil), http.StatusOK, &u)
	if u.Kind != "username" {
		t.Fatalf("default kind: %+v", u)
	}

	e.expect(e.do("DELETE", "/api/v1/users/username/alice", nil), http.StatusNoContent, nil)
	e.expectErr(e.do("GET", "/api/v1/users/username/alice", nil), http.StatusNotFound, CodeNotFound, "username:alice")
	e.expectErr(e.do("DELETE", "/api/v1/users/username/alice", nil), http.StatusNotFound, CodeNotFound, "username:alice")
	e.expectErr(e.do("GET", "/api/v1/users/nokind/alice", nil), http.StatusNotFound, CodeNotFound, "nokind")
	// The client id credential is untouched.
	e.expect(e.do("GET", "/api/v1/users/clientid/alice", nil), http.StatusOK, nil)

	// Ids with '/' travel escaped.
	e.expect(e.do("POST", "/api/v1/users", UserInput{UserID: "a/b", Password: "x"}), http.StatusCreated, nil)
	e.expect(e.do("GET", "/api/v1/users/username/a%2Fb", nil), http.StatusOK, &u)
	if u.UserID != "a/b" {
		t.Fatalf("escaped id: %+v", u)
	}
}

func TestUsersDefaultKindClientID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) { o.UserIDType = "clientid" })
	var u User
	e.expect(e.do("POST", "/api/v1/users", UserInput{UserID: "dev1", Password: "p"}), http.StatusCreated, &u)
	if u.Kind != "clientid" {
		t.Fatalf("kind %q, want clientid", u.Kind)
	}
	e.expect(e.do("DELETE", "/api/v1/users/dev1", nil), http.StatusNoContent, nil)
}

func TestUsersPaginationAndBulk(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var in []UserInput
	for i := range 25 {
		in = append(in, UserInput{UserID: fmt.Sprintf("u%02d", i), Password: "p"})
	}
	in = append(in, UserInput{UserID: "c1", Password: "p", Kind: "clientid"})
	var created struct{ Data []User }
	e.expect(e.do("POST", "/api/v1/users/bulk", in), http.StatusCreated, &created)
	if len(created.Data) != 26 {
		t.Fatalf("bulk created %d", len(created.Data))
	}

	var page Page[User]
	e.expect(e.do("GET", "/api/v1/users?kind=username&limit=10&page=1", nil), http.StatusOK, &page)
	if len(page.Data) != 10 || page.Meta != (Meta{Page: 1, Limit: 10, Count: 25, HasNext: true}) || page.Data[0].UserID != "u00" {
		t.Fatalf("page 1: %+v", page)
	}
	e.expect(e.do("GET", "/api/v1/users?kind=username&limit=10&page=3", nil), http.StatusOK, &page)
	if len(page.Data) != 5 || page.Meta.HasNext || page.Data[0].UserID != "u20" || page.Meta.Count != 25 {
		t.Fatalf("page 3: %+v", page)
	}
	e.expect(e.do("GET", "/api/v1/users?limit=100", nil), http.StatusOK, &page)
	if len(page.Data) != 26 || page.Meta.Count != 26 || page.Data[0].Kind != "clientid" {
		t.Fatalf("all: %+v", page.Meta)
	}
	e.expect(e.do("GET", "/api/v1/users?page=9", nil), http.StatusOK, &page)
	if len(page.Data) != 0 || page.Meta.Count != 26 {
		t.Fatalf("past the end: %+v", page)
	}
	e.expectErr(e.do("GET", "/api/v1/users?page=0", nil), http.StatusBadRequest, CodeBadRequest, `"page"`)
	e.expectErr(e.do("GET", "/api/v1/users?limit=x", nil), http.StatusBadRequest, CodeBadRequest, `"limit"`)
	e.expectErr(e.do("GET", "/api/v1/users?kind=x", nil), http.StatusBadRequest, CodeBadRequest, `"kind"`)

	// All or nothing: one existing user fails the whole batch.
	e.expectErr(e.do("POST", "/api/v1/users/bulk", []UserInput{{UserID: "new1", Password: "p"}, {UserID: "u03", Password: "p"}}),
		http.StatusConflict, CodeAlreadyExists, "item [1]")
	e.expectErr(e.do("GET", "/api/v1/users/username/new1", nil), http.StatusNotFound, CodeNotFound, "new1")
	e.expectErr(e.do("POST", "/api/v1/users/bulk", []UserInput{{UserID: "d", Password: "p"}, {UserID: "d", Password: "q"}}),
		http.StatusBadRequest, CodeBadRequest, `field "[1].user_id"`)
	e.expectErr(e.do("POST", "/api/v1/users/bulk", `[{"user_id":"a","password":"p"},{"user_id":"b"}]`),
		http.StatusBadRequest, CodeBadRequest, `field "[1].password": required`)
	e.expectErr(e.do("POST", "/api/v1/users/bulk", `[{"user_id":"a","password":"p"},{"user_id":"b","password":1}]`),
		http.StatusBadRequest, CodeBadRequest, `field "[1].password": expected a string`)
	e.expectErr(e.do("POST", "/api/v1/users/bulk", `[{"user_id":"a","password":"p","x":1}]`),
		http.StatusBadRequest, CodeBadRequest, `field "[0].x": unknown field`)
	e.expectErr(e.do("POST", "/api/v1/users/bulk", `[]`), http.StatusBadRequest, CodeBadRequest, "empty")
	e.expectErr(e.do("POST", "/api/v1/users/bulk", `{"user_id":"a"}`), http.StatusBadRequest, CodeBadRequest, "expected an array")
}

func TestUsersValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		body any
		want string
	}{
		{`{"user_id":"a"}`, `field "password": required`},
		{`{"password":"p"}`, `field "user_id": required`},
		{`{"user_id":"a","password":"p","kind":"peer"}`, `field "kind": must be one of username, clientid`},
		{`{"user_id":"a","password":"p","is_superuser":"yes"}`, `field "is_superuser": expected a boolean, got JSON string`},
		{`{"user_id":"a","password":"p","pass":"x"}`, `field "pass": unknown field`},
		{`{"user_id":"a",`, `truncated JSON`},
		{`{"user_id":"a"}}`, `more than one JSON value`},
		{`{"user_id" "a"}`, `malformed JSON`},
		{``, `request body: required`},
		{`[1]`, `expected an object`},
		{"{\"user_id\":\"a\\u0000b\",\"password\":\"p\"}", `field "user_id": contains a NUL`},
	}
	for _, c := range cases {
		e.expectErr(e.do("POST", "/api/v1/users", c.body), http.StatusBadRequest, CodeBadRequest, c.want)
	}
	e.expectErr(e.do("PUT", "/api/v1/users/username/x", `{"password":""}`), http.StatusBadRequest, CodeBadRequest, `field "password"`)
	e.expectErr(e.do("PUT", "/api/v1/users/username/x", `{"password":"p"}`), http.StatusNotFound, CodeNotFound, "username:x")
}

func TestUsersBcryptAndPbkdf2(t *testing.T) {
	t.Parallel()
	for _, p := range []authn.HashParams{{Algorithm: "bcrypt", BcryptCost: 4}, {Algorithm: "pbkdf2", Iterations: 10}} {
		e := newEnv(t, func(o *Options) { o.HashParams = p })
		var in []UserInput
		for i := range 20 {
			in = append(in, UserInput{UserID: fmt.Sprint(i), Password: fmt.Sprint("pw", i)})
		}
		e.expect(e.do("POST", "/api/v1/users/bulk", in), http.StatusCreated, nil)
		rec := e.storedUser("username", "7")
		if rec.Algorithm != p.Algorithm || !authn.Verify(&rec, "pw7") {
			t.Fatalf("%s: %+v", p.Algorithm, rec)
		}
	}
}
