package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// TestNodeRESTAuth: the REST API on api.bind (TCP) answers nothing without
// valid credentials (401 as {"code","message"}), accepts an API key made
// by `roost ctl apikeys create` (basic auth) and a bearer token from admin
// login with the initial admin password, and stops accepting a deleted
// key; malformed bodies get 400 naming the field.
func TestNodeRESTAuth(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.Start()
	id, _ := readIdentity(t, n.DataDir)
	status := apiCall{Method: "GET", Path: "/api/v1/status"}

	// No credentials.
	r := doAPI(t, n.API, status)
	wantAPIError(t, "no credentials", r, 401, "UNAUTHORIZED")
	if r.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("401 without a WWW-Authenticate header")
	}
	wantAPIError(t, "no credentials, users", doAPI(t, n.API, apiCall{Method: "GET", Path: "/api/v1/users"}), 401, "UNAUTHORIZED")
	wantAPIError(t, "no credentials, create user",
		doAPI(t, n.API, apiCall{Method: "POST", Path: "/api/v1/users", Body: `{"user_id":"x","password":"y"}`}), 401, "UNAUTHORIZED")

	// A key created by ctl; the secret from its JSON output.
	var key struct {
		Name    string `json:"name"`
		Secret  string `json:"secret"`
		Enabled bool   `json:"enabled"`
	}
	out := n.mustCtl("apikeys", "create", "e2e-key", "--output", "json")
	if err := json.Unmarshal([]byte(out), &key); err != nil || key.Secret == "" || key.Name != "e2e-key" || !key.Enabled {
		t.Fatalf("apikeys create --output json: %v\n%s", err, out)
	}
	// The table output shows a secret too (a different key).
	table := n.mustCtl("apikeys", "create", "e2e-key2")
	secret2 := secretFromTable(t, table)

	for _, c := range []struct {
		what       string
		user, pass string
	}{
		{"wrong secret", key.Name, key.Secret + "x"},
		{"empty secret", key.Name, ""},
		{"unknown key", "nobody", key.Secret},
		{"secret of another key", key.Name, secret2},
	} {
		st := status
		st.BasicUser, st.BasicPass = c.user, c.pass
		wantAPIError(t, c.what, doAPI(t, n.API, st), 401, "UNAUTHORIZED")
	}
	st := status
	st.Bearer = "not-a-token"
	wantAPIError(t, "garbage bearer token", doAPI(t, n.API, st), 401, "UNAUTHORIZED")

	good := status
	good.BasicUser, good.BasicPass = key.Name, key.Secret
	r = doAPI(t, n.API, good)
	if r.Status != 200 {
		t.Fatalf("good API key: %s", r)
	}
	var s ctlStatus
	if err := json.Unmarshal(r.Body, &s); err != nil || s.NodeID != id.NodeID {
		t.Errorf("status over REST: %v, node_id %q want %q", err, s.NodeID, id.NodeID)
	}
	if r := doAPI(t, n.API, apiCall{Method: "GET", Path: "/api/v1/status", BasicUser: "e2e-key2", BasicPass: secret2}); r.Status != 200 {
		t.Errorf("key from the table output: %s", r)
	}
	// The secret is stored hashed: not in the store file in clear.
	if b, err := os.ReadFile(filepath.Join(n.DataDir, "store.db")); err == nil && strings.Contains(string(b), key.Secret) {
		t.Errorf("API key secret found in clear in store.db")
	}

	// Admin login with the initial admin password.
	pw, err := os.ReadFile(filepath.Join(n.DataDir, "initial-admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	wantAPIError(t, "login, wrong password",
		doAPI(t, n.API, apiCall{Method: "POST", Path: "/api/v1/login", Body: `{"username":"admin","password":"wrong"}`}), 401, "UNAUTHORIZED")
	wantAPIError(t, "login, unknown admin",
		doAPI(t, n.API, apiCall{Method: "POST", Path: "/api/v1/login", Body: `{"username":"root","password":` + jsonString(strings.TrimSpace(string(pw))) + `}`}), 401, "UNAUTHORIZED")
	wantAPIError(t, "login, no password",
		doAPI(t, n.API, apiCall{Method: "POST", Path: "/api/v1/login", Body: `{"username":"admin"}`}), 400, "BAD_REQUEST", `"password"`)
	r = doAPI(t, n.API, apiCall{Method: "POST", Path: "/api/v1/login",
		Body: `{"username":"admin","password":` + jsonString(strings.TrimSpace(string(pw))) + `}`})
	if r.Status != 200 {
		t.Fatalf("admin login with the initial password: %s", r)
	}
	var login struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
		Username  string    `json:"username"`
	}
	if err := json.Unmarshal(r.Body, &login); err != nil || login.Token == "" || login.Username != "admin" || !login.ExpiresAt.After(time.Now()) {
		t.Fatalf("login answer: %v %s", err, r.Body)
	}
	bearer := status
	bearer.Bearer = login.Token
	if r := doAPI(t, n.API, bearer); r.Status != 200 {
		t.Errorf("bearer token: %s", r)
	}
	tampered := status
	tampered.Bearer = login.Token[:len(login.Token)-2] + flip(login.Token[len(login.Token)-2:])
	wantAPIError(t, "tampered bearer token", doAPI(t, n.API, tampered), 401, "UNAUTHORIZED")

	// Malformed bodies: 400 naming the field.
	for _, c := range []struct {
		what, body string
		parts      []string
	}{
		{"user_id of the wrong type", `{"user_id":5,"password":"x"}`, []string{`"user_id"`, "string"}},
		{"is_superuser of the wrong type", `{"user_id":"u","password":"x","is_superuser":"yes"}`, []string{`"is_superuser"`, "boolean"}},
		{"missing password", `{"user_id":"u"}`, []string{`"password"`, "required"}},
		{"missing user_id", `{"password":"x"}`, []string{`"user_id"`, "required"}},
		{"unknown field", `{"user_id":"u","password":"x","pasword":"y"}`, []string{`"pasword"`, "unknown"}},
		{"bad kind", `{"user_id":"u","password":"x","kind":"email"}`, []string{`"kind"`, "email"}},
		{"not JSON", `{"user_id":`, []string{"JSON"}},
		{"syntax error", `{"user_id" "u"}`, []string{"malformed JSON"}},
	} {
		wantAPIError(t, c.what, doAPI(t, n.API, apiCall{Method: "POST", Path: "/api/v1/users", Body: c.body, Bearer: login.Token}),
			400, "BAD_REQUEST", c.parts...)
	}
	wantUsers(t, n) // none of those created anything

	// Unknown routes and methods still answer JSON errors.
	wantAPIError(t, "unknown route", doAPI(t, n.API, apiCall{Method: "GET", Path: "/api/v1/nope", Bearer: login.Token}), 404, "NOT_FOUND")

	// A deleted key stops working at once.
	n.mustCtl("apikeys", "del", key.Name)
	wantAPIError(t, "deleted key", doAPI(t, n.API, good), 401, "UNAUTHORIZED")
	if err := n.Stop(); err != nil {
		t.Fatalf("SIGTERM: exit %v\n%s", err, n.Logs())
	}
}

// secretFromTable finds the secret in `roost ctl apikeys create`'s table
// output ("secret:   S").
func secretFromTable(t *testing.T, out string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "secret:" {
			return f[1]
		}
	}
	t.Fatalf("no secret line in apikeys create output:\n%s", out)
	return ""
}

func flip(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
	}
	return string(b)
}

var restMQTTSeq atomic.Int64

// mqttConnect connects with paho.mqtt.golang (MQTT 3.1.1) and returns the
// client, or the CONNECT error.
func mqttConnect(t *testing.T, addr, user, pass string) (mqtt.Client, error) {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).
		SetClientID(fmt.Sprintf("node-e2e-%d", restMQTTSeq.Add(1))).
		SetUsername(user).SetPassword(pass).
		SetProtocolVersion(4).SetConnectRetry(false).SetAutoReconnect(false).
		SetConnectTimeout(5 * time.Second)
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("MQTT connect to %s as %q: no answer in 10s", addr, user)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

// wantMQTTLogin checks that user/pass can (ok) or cannot connect.
func wantMQTTLogin(t *testing.T, addr, user, pass string, ok bool) {
	t.Helper()
	c, err := mqttConnect(t, addr, user, pass)
	switch {
	case ok && err != nil:
		t.Errorf("MQTT login %s/%s refused: %v", user, pass, err)
	case !ok && err == nil:
		c.Disconnect(0)
		t.Errorf("MQTT login %s/%s accepted, want refused", user, pass)
	case !ok && !strings.Contains(err.Error(), "not Authorized") && !strings.Contains(err.Error(), "bad user name or password"):
		t.Errorf("MQTT login %s/%s: refused with %v, want a not-authorized CONNACK", user, pass, err)
	}
}

// TestNodeRESTUserCRUDAndMQTT: users created, read, listed, updated and
// deleted over REST (API key auth) take effect on MQTT logins at once.
func TestNodeRESTUserCRUDAndMQTT(t *testing.T) {
	t.Parallel()
	n := newNode(t)
	n.Start()
	var key struct {
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal([]byte(n.mustCtl("apikeys", "create", "crud", "--output", "json")), &key); err != nil {
		t.Fatal(err)
	}
	call := func(method, path, body string) apiResp {
		return doAPI(t, n.API, apiCall{Method: method, Path: path, Body: body, BasicUser: "crud", BasicPass: key.Secret})
	}

	wantMQTTLogin(t, n.MQTT, "", "", false) // authn is on by default
	wantMQTTLogin(t, n.MQTT, "bob", "pw-1", false)

	r := call("POST", "/api/v1/users", `{"user_id":"bob","password":"pw-1"}`)
	if r.Status != 201 {
		t.Fatalf("create bob: %s", r)
	}
	var u map[string]any
	if err := json.Unmarshal(r.Body, &u); err != nil {
		t.Fatal(err)
	}
	if u["user_id"] != "bob" || u["is_superuser"] != false || u["kind"] != "username" {
		t.Errorf("created user %s", r.Body)
	}
	for k := range u {
		if strings.Contains(k, "hash") || strings.Contains(k, "salt") || k == "password" {
			t.Errorf("user answer exposes %q: %s", k, r.Body)
		}
	}
	wantAPIError(t, "create bob again", call("POST", "/api/v1/users", `{"user_id":"bob","password":"x"}`), 409, "ALREADY_EXISTS")
	if r := call("POST", "/api/v1/users", `{"user_id":"carol","password":"pw-c","is_superuser":true}`); r.Status != 201 {
		t.Fatalf("create carol: %s", r)
	}

	// Read and list (with pagination).
	if r := call("GET", "/api/v1/users/bob", ""); r.Status != 200 || !strings.Contains(string(r.Body), `"user_id":"bob"`) {
		t.Errorf("get bob: %s", r)
	}
	if r := call("GET", "/api/v1/users/username/bob", ""); r.Status != 200 {
		t.Errorf("get username/bob: %s", r)
	}
	var page struct {
		Data []struct {
			UserID string `json:"user_id"`
		} `json:"data"`
		Meta struct {
			Page    int  `json:"page"`
			Limit   int  `json:"limit"`
			Count   int  `json:"count"`
			HasNext bool `json:"hasnext"`
		} `json:"meta"`
	}
	r = call("GET", "/api/v1/users?page=1&limit=1", "")
	if err := json.Unmarshal(r.Body, &page); r.Status != 200 || err != nil {
		t.Fatalf("list users: %s %v", r, err)
	}
	if len(page.Data) != 1 || page.Meta.Count != 2 || !page.Meta.HasNext || page.Meta.Limit != 1 || page.Meta.Page != 1 {
		t.Errorf("users page 1 limit 1: %s", r.Body)
	}
	r = call("GET", "/api/v1/users?page=2&limit=1", "")
	first := page.Data[0].UserID
	if err := json.Unmarshal(r.Body, &page); err != nil || len(page.Data) != 1 || page.Meta.HasNext || page.Data[0].UserID == first {
		t.Errorf("users page 2 limit 1: %s", r.Body)
	}
	wantUsers(t, n, "bob", "carol") // ctl sees the same table

	// The REST-made users log in over MQTT.
	wantMQTTLogin(t, n.MQTT, "bob", "pw-1", true)
	wantMQTTLogin(t, n.MQTT, "bob", "pw-wrong", false)
	wantMQTTLogin(t, n.MQTT, "carol", "pw-c", true)

	// Update the password: the old one stops working.
	if r := call("PUT", "/api/v1/users/bob", `{"password":"pw-2"}`); r.Status != 200 {
		t.Fatalf("update bob: %s", r)
	}
	wantMQTTLogin(t, n.MQTT, "bob", "pw-2", true)
	wantMQTTLogin(t, n.MQTT, "bob", "pw-1", false)
	wantAPIError(t, "update with a bad field", call("PUT", "/api/v1/users/bob", `{"password":7}`), 400, "BAD_REQUEST", `"password"`)
	wantAPIError(t, "update a missing user", call("PUT", "/api/v1/users/nobody", `{"password":"x"}`), 404, "NOT_FOUND")

	// Delete: gone from REST, ctl and MQTT.
	if r := call("DELETE", "/api/v1/users/bob", ""); r.Status != 204 && r.Status != 200 {
		t.Fatalf("delete bob: %s", r)
	}
	wantAPIError(t, "get deleted bob", call("GET", "/api/v1/users/bob", ""), 404, "NOT_FOUND")
	wantAPIError(t, "delete bob again", call("DELETE", "/api/v1/users/bob", ""), 404, "NOT_FOUND")
	wantUsers(t, n, "carol")
	wantMQTTLogin(t, n.MQTT, "bob", "pw-2", false)
	if err := n.Stop(); err != nil {
		t.Fatalf("SIGTERM: exit %v\n%s", err, n.Logs())
	}
}
