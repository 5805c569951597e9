package broker

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/roostmq/roost/internal/broker/authn"
	"github.com/roostmq/roost/internal/config"
	"github.com/roostmq/roost/internal/store"
)

func TestAuthnHashAlgorithms(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), nil)
	cases := []struct {
		user string
		p    authn.HashParams
	}{
		{"plain", authn.HashParams{Algorithm: "plain", SaltPosition: "disable"}},
		{"plain-salted", authn.HashParams{Algorithm: "plain", SaltPosition: "prefix"}},
		{"sha256-prefix", authn.HashParams{Algorithm: "sha256", SaltPosition: "prefix"}},
		{"sha256-suffix", authn.HashParams{Algorithm: "sha256", SaltPosition: "suffix"}},
		{"sha256-disable", authn.HashParams{Algorithm: "sha256", SaltPosition: "disable"}},
		{"sha512-prefix", authn.HashParams{Algorithm: "sha512", SaltPosition: "prefix"}},
		{"sha512-suffix", authn.HashParams{Algorithm: "sha512", SaltPosition: "suffix"}},
		{"pbkdf2-sha256", authn.HashParams{Algorithm: "pbkdf2", MacFun: "sha256", Iterations: 1000}},
		{"pbkdf2-sha512", authn.HashParams{Algorithm: "pbkdf2", MacFun: "sha512", Iterations: 1000, DKLength: 32}},
		{"bcrypt", authn.HashParams{Algorithm: "bcrypt", BcryptCost: 4}},
	}
	for _, c := range cases {
		n.addUser(store.KindUsername, c.user, "pw-"+c.user, c.p, false)
	}
	for _, c := range cases {
		t.Run(c.user, func(t *testing.T) {
			// MQTT 5: good password in, bad password CONNACK 0x86.
			mustV5(t, n.tcp(), "v5-"+c.user, c.user, "pw-"+c.user).close()
			_, ca, err := dialV5(t, n.tcp(), "v5bad-"+c.user, v5Opts{user: c.user, pass: "wrong", clean: true})
			if err == nil || ca == nil || ca.ReasonCode != 0x86 {
				t.Fatalf("bad password (v5): err %v, connack %+v; want reason 0x86", err, ca)
			}
			// MQTT 3.1.1: good password in, bad password return code 4.
			mustV3(t, n.tcp(), "v3-"+c.user, c.user, "pw-"+c.user).c.Disconnect(0)
			_, code, err := dialV3(t, "tcp://"+n.tcp(), "v3bad-"+c.user, c.user, "wrong", true, nil)
			if err == nil || code != 4 {
				t.Fatalf("bad password (v3): err %v, code %d; want 4", err, code)
			}
		})
	}
	t.Run("unknown user and missing credentials", func(t *testing.T) {
		if _, ca, err := dialV5(t, n.tcp(), "nobody", v5Opts{user: "nobody", pass: "x", clean: true}); err == nil || ca.ReasonCode != 0x86 {
			t.Fatalf("unknown user: %v %+v", err, ca)
		}
		if _, ca, err := dialV5(t, n.tcp(), "anon", v5Opts{noCreds: true, clean: true}); err == nil || ca.ReasonCode != 0x86 {
			t.Fatalf("anonymous: %v %+v", err, ca)
		}
		if _, code, err := dialV3(t, "tcp://"+n.tcp(), "anon3", "", "", true, nil); err == nil || code != 4 {
			t.Fatalf("anonymous v3: %v %d", err, code)
		}
	})
}

func TestAuthnCacheFollowsStore(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), nil)
	p := authn.HashParams{Algorithm: "sha256"}
	n.addUser(store.KindUsername, "alice", "one", p, false)
	mustV5(t, n.tcp(), "c1", "alice", "one").close()

	n.addUser(store.KindUsername, "alice", "two", p, false) // password change
	if _, _, err := dialV5(t, n.tcp(), "c2", v5Opts{user: "alice", pass: "one", clean: true}); err == nil {
		t.Fatal("old password still accepted after change")
	}
	mustV5(t, n.tcp(), "c3", "alice", "two").close()

	n.apply(store.Delete(store.TableUsers, store.UserKey(store.KindUsername, "alice")))
	if _, _, err := dialV5(t, n.tcp(), "c4", v5Opts{user: "alice", pass: "two", clean: true}); err == nil {
		t.Fatal("deleted user still accepted")
	}
	// A user created after a failed lookup (cached as absent) gets in.
	n.addUser(store.KindUsername, "bob", "pw", p, false)
	if _, _, err := dialV5(t, n.tcp(), "c5", v5Opts{user: "carol", pass: "pw", clean: true}); err == nil {
		t.Fatal("unknown user accepted")
	}
	n.addUser(store.KindUsername, "carol", "pw", p, false)
	mustV5(t, n.tcp(), "c6", "carol", "pw").close()

	// Clearing the table (e.g. an import) drops everyone.
	n.apply(store.Clear(store.TableUsers))
	if _, _, err := dialV5(t, n.tcp(), "c7", v5Opts{user: "carol", pass: "pw", clean: true}); err == nil {
		t.Fatal("user accepted after the table was cleared")
	}
}

func TestAuthnByClientID(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnUserIDType = UserIDClientID })
	n.addUser(store.KindClientID, "dev-1", "secret", authn.HashParams{Algorithm: "pbkdf2"}, false)
	// The user name does not matter; the client id and password do.
	mustV5(t, n.tcp(), "dev-1", "whatever", "secret").close()
	mustV3(t, n.tcp(), "dev-1", "any", "secret").c.Disconnect(0) // 3.1.1 needs a user name to send a password
	if _, ca, err := dialV5(t, n.tcp(), "dev-2", v5Opts{user: "whatever", pass: "secret", clean: true}); err == nil || ca.ReasonCode != 0x86 {
		t.Fatalf("unknown client id: %v %+v", err, ca)
	}
	if _, ca, err := dialV5(t, n.tcp(), "dev-1", v5Opts{user: "x", pass: "bad", clean: true}); err == nil || ca.ReasonCode != 0x86 {
		t.Fatalf("bad password: %v %+v", err, ca)
	}
}

func TestAuthnDisabled(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnEnable = false })
	mustV5(t, n.tcp(), "anyone", "", "").close()
	mustV5(t, n.tcp(), "someone", "who", "ever").close()
	mustV3(t, n.tcp(), "anyone3", "", "").c.Disconnect(0)
}

// With user_id_type both, a CONNECT is admitted as EMQX 4.3/4.4's
// emqx_auth_mnesia admits it: when the client id's record or the user
// name's matches the password. A client id record with another password
// does not stop the user name's from admitting the client.
func TestAuthnBoth(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), func(o *Options) { o.AuthnUserIDType = UserIDBoth })
	p := authn.HashParams{Algorithm: "sha256"}
	n.addUser(store.KindClientID, "dev-1", "client-secret", p, false)
	n.addUser(store.KindUsername, "alice", "user-secret", p, false)
	for _, c := range []struct {
		name, clientID, user, pass string
		ok                         bool
	}{
		{"client id record", "dev-1", "whoever", "client-secret", true},
		{"client id record, no user name", "dev-1", "", "client-secret", true},
		{"user name record", "other", "alice", "user-secret", true},
		{"both records, the user name's matches", "dev-1", "alice", "user-secret", true},
		{"both records, the client id's matches", "dev-1", "alice", "client-secret", true},
		{"both records, neither matches", "dev-1", "alice", "wrong", false},
		{"client id record, wrong password", "dev-1", "bob", "user-secret", false},
		{"user name record, wrong password", "other", "alice", "client-secret", false},
		{"no record", "other", "bob", "user-secret", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl, ca, err := dialV5(t, n.tcp(), c.clientID, v5Opts{user: c.user, pass: c.pass, noCreds: c.user == "" && c.pass == "", clean: true})
			if c.ok {
				if err != nil {
					t.Fatalf("refused: %v %+v", err, ca)
				}
				cl.close()
				return
			}
			if err == nil || ca == nil || ca.ReasonCode != 0x86 {
				t.Fatalf("err %v connack %+v, want reason 0x86", err, ca)
			}
		})
	}
	if v, override := n.b.UserIDType(); v != UserIDBoth || override {
		t.Errorf("UserIDType %q override %v, want both from the options", v, override)
	}
	if k := n.b.DefaultUserKind(); k != store.KindUsername {
		t.Errorf("default user kind %q under both, want username", k)
	}
}

// The cluster config override authn.user_id_type (config table) takes
// precedence over the broker's option while it exists, and is followed
// live: put, changed, deleted, cleared, and ignored when invalid.
func TestAuthnUserIDTypeOverride(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir(), nil) // username
	p := authn.HashParams{Algorithm: "sha256"}
	n.addUser(store.KindClientID, "dev-1", "client-secret", p, false)
	n.addUser(store.KindUsername, "alice", "user-secret", p, false)
	byClientID := func() bool {
		cl, _, err := dialV5(t, n.tcp(), "dev-1", v5Opts{user: "x", pass: "client-secret", clean: true})
		if err == nil {
			cl.close()
		}
		return err == nil
	}
	byUsername := func() bool {
		cl, _, err := dialV5(t, n.tcp(), "c-alice", v5Opts{user: "alice", pass: "user-secret", clean: true})
		if err == nil {
			cl.close()
		}
		return err == nil
	}
	override := func(v string) store.Op {
		return mustOp(t)(store.Put(store.TableConfig, config.OverrideUserIDType,
			store.ConfigOverride{V: 1, Key: config.OverrideUserIDType, Value: json.RawMessage(strconv.Quote(v))}))
	}
	check := func(what, want string, wantOverride, cid, user bool) {
		t.Helper()
		// The store notifies the broker before Apply returns on this
		// node: no waiting.
		if v, o := n.b.UserIDType(); v != want || o != wantOverride {
			t.Errorf("%s: UserIDType %q override %v, want %q %v", what, v, o, want, wantOverride)
		}
		if got := byClientID(); got != cid {
			t.Errorf("%s: client id user admitted %v, want %v", what, got, cid)
		}
		if got := byUsername(); got != user {
			t.Errorf("%s: user name user admitted %v, want %v", what, got, user)
		}
	}
	check("no override", "username", false, false, true)
	n.apply(override("both"))
	check("override both", "both", true, true, true)
	n.apply(override("clientid"))
	check("override clientid", "clientid", true, true, false)
	if k := n.b.DefaultUserKind(); k != store.KindClientID {
		t.Errorf("default user kind %q under clientid", k)
	}
	n.apply(override("email"))
	check("invalid override", "username", false, false, true)
	n.apply(override("both"))
	n.apply(store.Delete(store.TableConfig, config.OverrideUserIDType))
	check("override deleted", "username", false, false, true)
	n.apply(override("both"))
	n.apply(store.Clear(store.TableConfig))
	check("config table cleared", "username", false, false, true)
	// The override survives a restart (read at start).
	n.apply(override("both"))
	n.restart()
	check("after a restart", "both", true, true, true)
}
