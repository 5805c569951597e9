package foreign

import (
	"bytes"
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"github.com/roostmq/roost/internal/backup"
	"github.com/roostmq/roost/internal/broker/authn"
	"github.com/roostmq/roost/internal/store"
)

func readDyn(t *testing.T, doc obj) *backup.Dataset {
	t.Helper()
	ds, err := ReadMosquittoDynsec(bytes.NewReader(mustJSON(t, doc)))
	if err != nil {
		t.Fatalf("ReadMosquittoDynsec: %v", err)
	}
	return ds
}

// dynClient is a client record as the plugin writes it.
func dynClient(username, password, salt string, iterations int, roles ...obj) obj {
	rs := arr{}
	for _, r := range roles {
		rs = append(rs, r)
	}
	return obj{"username": username, "roles": rs,
		"password":   dynsecHash(password, []byte(salt), iterations),
		"salt":       base64.StdEncoding.EncodeToString([]byte(salt)),
		"iterations": iterations}
}

func ref(key, name string, prio ...int) obj {
	o := obj{key: name}
	if len(prio) > 0 {
		o["priority"] = prio[0]
	}
	return o
}

func acl(typ, topic string, allow bool, prio ...int) obj {
	o := obj{"acltype": typ, "topic": topic, "allow": allow}
	if len(prio) > 0 {
		o["priority"] = prio[0]
	}
	return o
}

func TestDynsecUsers(t *testing.T) {
	ds := readDyn(t, obj{
		"defaultACLAccess": obj{"publishClientSend": false, "publishClientReceive": true, "subscribe": false, "unsubscribe": true},
		"clients": arr{
			dynClient("alice", "alicepw", "printableSal", 101),
			dynClient("bob", "bøb pw", "other-salt-0", 1000),
			dynClient("empty", "", "s", 1),
		},
	})
	noProblems(t, ds)
	for _, c := range []struct{ name, pw string }{{"alice", "alicepw"}, {"bob", "bøb pw"}, {"empty", ""}} {
		u := findUser(t, ds, "username:"+c.name)
		if u.Algorithm != "pbkdf2" || u.MacFun != "sha512" || u.DKLength != 64 || len(u.PasswordHash) != 128 {
			t.Errorf("%s: %+v", c.name, u)
		}
		checkLogin(t, u, c.pw)
	}
	if it := findUser(t, ds, "username:bob").Iterations; it != 1000 {
		t.Errorf("iterations %d", it)
	}
}

// TestDynsecACLOrder: roles and groups expanded per client, in the order
// mosquitto's acl check walks them.
func TestDynsecACLOrder(t *testing.T) {
	ds := readDyn(t, obj{
		"defaultACLAccess": obj{"publishClientSend": true, "publishClientReceive": true, "subscribe": false, "unsubscribe": true},
		"roles": arr{
			obj{"rolename": "low", "acls": arr{acl("publishClientSend", "a/#", false)}},
			obj{"rolename": "high", "acls": arr{
				acl("publishClientSend", "a/low", true, 1),
				acl("publishClientSend", "a/high", false, 9),
				acl("subscribePattern", "s/+", true, 2),
				acl("subscribeLiteral", "s/lit", false, 0), // checked before the patterns
				acl("publishClientReceive", "r/#", false),
				acl("unsubscribePattern", "#", true),
			}},
			obj{"rolename": "grp", "acls": arr{acl("SUBSCRIBEPATTERN", "g/#", true)}}, // mosquitto ignores case
			obj{"rolename": "grp2", "acls": arr{acl("publishClientSend", "g2", true)}},
		},
		"groups": arr{
			obj{"groupname": "g-a", "roles": arr{ref("rolename", "grp")}, "clients": arr{ref("username", "carol", 1)}},
			obj{"groupname": "g-b", "roles": arr{ref("rolename", "grp2"), ref("rolename", "high")}, "clients": arr{ref("username", "carol", 5)}},
		},
		"clients": arr{
			dynClient("carol", "pw", "saltsaltsalt", 101, ref("rolename", "low", 1), ref("rolename", "high", 3)),
			dynClient("dave", "pw", "saltsaltsalt", 101),
		},
	})
	noProblems(t, ds)
	if hasNote(ds, "unsubscribe") {
		t.Errorf("unsubscribe allowed by every ACL and the default, as in Roost, yet noted: %q", ds.Notes)
	}
	want := []string{
		// carol's own roles, by priority: high (3), then low (1).
		"username carol publish a/high deny",
		"username carol publish a/low allow",
		"username carol subscribe eq s/lit deny",
		"username carol subscribe s/+ allow",
		"username carol publish a/# deny",
		// her groups by priority: g-b (5) with grp2 (and high, already seen), then g-a (1).
		"username carol publish g2 allow",
		"username carol subscribe g/# allow",
		// defaultACLAccess for everyone else.
		"all publish # allow",
		"all subscribe # deny",
	}
	if got := ruleStrings(ds); !slices.Equal(got, want) {
		t.Errorf("rules\n got %q\nwant %q", got, want)
	}
	for _, r := range records(ds, store.TableACL) {
		if r.Key != "" || r.Value.(*store.ACLRule).V != store.RecordVersion {
			t.Errorf("rule record %+v", r)
		}
	}
	for _, n := range []string{`publishClientReceive denials not enforced (roles with deny ACLs: "high"; default allow)`,
		"defaultACLAccess: publish allow, subscribe deny"} {
		if !hasNote(ds, n) {
			t.Errorf("no note %q in %q", n, ds.Notes)
		}
	}
}

func TestDynsecDisabledAndOthers(t *testing.T) {
	bob := dynClient("bob", "bobpw", "saltsaltsalt", 101)
	bob["disabled"] = true
	bob["clientid"] = "bob-dev"
	bob["textname"] = "Bob"
	ds := readDyn(t, obj{
		"clients":        arr{bob, obj{"username": "nopw", "roles": arr{ref("rolename", "r")}}},
		"roles":          arr{obj{"rolename": "r", "acls": arr{acl("publishClientSend", "x", true)}}},
		"groups":         arr{obj{"groupname": "anon", "roles": arr{ref("rolename", "r")}, "clients": arr{ref("username", "ghost")}}},
		"anonymousGroup": "anon",
	})
	noProblems(t, ds)
	checkLogin(t, findUser(t, ds, "username:bob"), "bobpw")
	bans := records(ds, store.TableBanned)
	if len(bans) != 1 || bans[0].Key != "username:bob" || !strings.Contains(bans[0].Value.(*store.Ban).Reason, "disabled") {
		t.Errorf("bans %+v", bans)
	}
	if got := keys(ds, store.TableUsers); !slices.Equal(got, []string{"username:bob"}) {
		t.Errorf("users %q (a client without password gets no credential)", got)
	}
	if got := ruleStrings(ds); !slices.Contains(got, "username nopw publish x allow") {
		t.Errorf("rules %q", got)
	}
	// No defaultACLAccess: mosquitto denies.
	if got := ruleStrings(ds); !slices.Equal(got[len(got)-2:], []string{"all publish # deny", "all subscribe # deny"}) {
		t.Errorf("default rules %q", got)
	}
	for _, n := range []string{`username ban`, `"bob"`, `without a password`, `"nopw"`, `client id restriction not mapped`,
		`anonymousGroup "anon" not mapped`, `group members that are not clients are ignored, as Mosquitto ignores them: ghost (group anon)`,
		`textname/textdescription of 1 client, group or role`} {
		if !hasNote(ds, n) {
			t.Errorf("no note %q in %q", n, ds.Notes)
		}
	}
}

func TestDynsecProblems(t *testing.T) {
	good := dynClient("x", "pw", "saltsaltsalt", 101)
	with := func(k string, v any) obj {
		c := obj{}
		for kk, vv := range good {
			c[kk] = vv
		}
		c["username"] = "u-" + k
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	doc := obj{
		"clients": arr{
			obj{"roles": arr{}},            // 1
			with("iterations", 0),          // 2
			with("iterations", 20_000_000), // 3
			with("salt", "***"),            // 4
			with("password", base64.StdEncoding.EncodeToString(make([]byte, 32))), // 5
			with("salt", nil),                      // 6
			with("disabled", "yes"),                // 7
			with("roles", obj{}),                   // 8
			with("roles", arr{obj{"priority": 1}}), // 9
			good,                                   // 10
			good,                                   // 11: duplicate
			"client",                               // 12
			with("iterations", "101"),              // 13
		},
		"roles": arr{
			obj{"acls": arr{}}, // 1
			obj{"rolename": "r", "acls": arr{
				acl("publishClientSend", "a/${username}", true), // placeholder
				obj{"topic": "x"}, // no acltype
				obj{"acltype": "subscribePattern", "topic": "x", "priority": "high"},
				obj{"acltype": "subscribePattern", "topic": "y", "allow": "sure"},
				acl("bogusType", "x", true),            // ignored with a note
				acl("subscribeLiteral", "a/#/b", true), // invalid filter: note
				acl("publishClientSend", "", true),     // empty: note
			}},
			obj{"rolename": "r", "acls": arr{}}, // duplicate
		},
		"groups":           arr{obj{"groupname": 5}, obj{"groupname": "g", "clients": arr{ref("username", "")}}},
		"defaultACLAccess": arr{},
		"anonymousGroup":   7,
	}
	ds, err := ReadMosquittoDynsec(bytes.NewReader(mustJSON(t, doc)))
	if err != nil {
		t.Fatal(err)
	}
	checkProblems(t, ds.Problems, []wantProblem{
		{"clients", 1, "username", "required"},
		{"clients", 2, "iterations", "at least 1"},
		{"clients", 3, "iterations", "stall"},
		{"clients", 4, "salt", "not base64"},
		{"clients", 5, "password", "32 bytes, want 64"},
		{"clients", 6, "password", "incomplete credential"},
		{"clients", 7, "disabled", "must be true or false"},
		{"clients", 8, "roles", "must be an array"},
		{"clients", 9, "roles", `element 1: "rolename" must be a non-empty string`},
		{"clients", 11, "username", `duplicate client "x" (also record 10)`},
		{"clients", 12, "", "must be a JSON object"},
		{"clients", 13, "iterations", "must be an integer"},
		{"roles", 1, "rolename", "required"},
		{"roles", 2, "acls[1].topic", "placeholder"},
		{"roles", 2, "acls[2].acltype", "required"},
		{"roles", 2, "acls[3].priority", "must be an integer"},
		{"roles", 2, "acls[4].allow", "must be true or false"},
		{"groups", 1, "groupname", "must be a string"},
		{"groups", 2, "clients", `element 1: "username" must be a non-empty string`},
		{"defaultACLAccess", 0, "", "must be a JSON object, got an array"},
		{"anonymousGroup", 0, "", "must be a group name"},
	})
	for _, n := range []string{`unknown acltype "bogusType"`, `(subscribeLiteral "a/#/b") is not a valid topic filter`, `empty topic`} {
		if !hasNote(ds, n) {
			t.Errorf("no note %q in %q", n, ds.Notes)
		}
	}
}

func TestDynsecUnreadable(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"empty", "", "the file is empty"},
		{"not JSON", "clients: []", "not JSON"},
		{"array", "[]", "must be a JSON object, got an array"},
		{"truncated", `{"clients":[{"username":"a"`, "unexpected EOF"},
		{"trailing", `{} x`, "not valid JSON after the top-level object"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ds, err := ReadMosquittoDynsec(strings.NewReader(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) || ds != nil {
				t.Fatalf("err %v, want ...%s...", err, c.want)
			}
		})
	}
}

func TestDynsecSkipsUnknownKeys(t *testing.T) {
	ds := readDyn(t, obj{"clients": arr{}, "extra": arr{1, 2, 3}, "version": 2})
	noProblems(t, ds)
	if !hasSkipped(ds, "extra (3 records): not part of Mosquitto's dynamic-security format; not imported") ||
		!hasSkipped(ds, "version: not part of Mosquitto's dynamic-security format; not imported") {
		t.Errorf("skipped %q", ds.Skipped)
	}
}

// TestDynsecBinarySalt: mosquitto's salts are random bytes; they are
// reported while the users table cannot hold them, and the credential
// the reader builds verifies.
func TestDynsecBinarySalt(t *testing.T) {
	salt := []byte{0xe9, 0x4f, 0x2f, 0x79, 0xe9, 0x21, 0x96, 0x88, 0xc0, 0x7f, 0xdd, 0x3c}
	doc := obj{"clients": arr{obj{"username": "alice", "password": dynsecHash("alicepw", salt, 101),
		"salt": base64.StdEncoding.EncodeToString(salt), "iterations": 101}}}
	rd, err := readDynsec(bytes.NewReader(mustJSON(t, doc)))
	if err != nil {
		t.Fatal(err)
	}
	u := rd.clients[0].user
	if !authn.Verify(u, "alicepw") || authn.Verify(u, "alicepw ") {
		t.Fatalf("credential %+v does not verify", u)
	}
	if survivesStorage(u) {
		noProblems(t, rd.ds)
		checkLogin(t, findUser(t, rd.ds, "username:alice"), "alicepw")
		return
	}
	checkProblems(t, rd.ds.Problems, []wantProblem{{"clients", 1, "salt", "binary salt (records 1)"}})
}
