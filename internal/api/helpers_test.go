package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/roostmq/roost/internal/broker/authn"
	"github.com/roostmq/roost/internal/store"
)

type testEnv struct {
	t      *testing.T
	dir    string
	st     *store.Store
	srv    *Server
	remote *httptest.Server // Handler: needs credentials
	local  *httptest.Server // LocalHandler: trusted
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(store.Options{Dir: dir, NodeID: "n1", Advertise: "127.0.0.1:4370",
		Bootstrap: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

func newEnv(t *testing.T, mod ...func(*Options)) *testEnv {
	t.Helper()
	dir := t.TempDir()
	st := openStore(t, dir)
	opts := Options{Store: st, Logger: quietLogger(), HashParams: authn.HashParams{Algorithm: "sha256"}}
	for _, m := range mod {
		m(&opts)
	}
	srv := New(opts)
	e := &testEnv{t: t, dir: dir, st: st, srv: srv,
		remote: httptest.NewServer(srv.Handler()), local: httptest.NewServer(srv.LocalHandler())}
	t.Cleanup(e.remote.Close)
	t.Cleanup(e.local.Close)
	return e
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r resp) apiErr(t *testing.T) Error {
	t.Helper()
	var e Error
	r.json(t, &e)
	if e.Code == "" || e.Message == "" {
		t.Fatalf("not an API error body: %s", r.body)
	}
	return e
}

// send makes a request; body is JSON-encoded unless it is a string
// (sent raw). auth sets the Authorization header when not empty.
func send(t *testing.T, base, method, path, auth string, body any) resp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if ct := res.Header.Get("Content-Type"); len(b) > 0 && ct != "application/json" {
		t.Errorf("%s %s: content type %q, body %s", method, path, ct, b)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// do sends over the local (trusted) handler.
func (e *testEnv) do(method, path string, body any) resp {
	e.t.Helper()
	return send(e.t, e.local.URL, method, path, "", body)
}

// expect checks the status and decodes the body into v (when not nil).
func (e *testEnv) expect(r resp, status int, v any) {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if v != nil {
		r.json(e.t, v)
	}
}

// expectErr checks an error status, its JSON body, and that the message
// contains want.
func (e *testEnv) expectErr(r resp, status int, code, want string) {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	got := r.apiErr(e.t)
	if got.Code != code || !strings.Contains(got.Message, want) {
		e.t.Fatalf("error %+v, want code %s and a message containing %q", got, code, want)
	}
}

func (e *testEnv) put(table, key string, rec any) {
	e.t.Helper()
	op, err := store.Put(table, key, rec)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.Apply(context.Background(), op); err != nil {
		e.t.Fatal(err)
	}
}
