package broker

import (
	"testing"

	"github.com/roostmq/roost/internal/store"
)

func TestValidFilterAndTopicName(t *testing.T) {
	for _, f := range []string{"a", "a/b", "+", "#", "a/+/b", "a/#", "+/+", "/", "a//b", "$SYS/#",
		"users/${username}/#", "eq a/+", "$share/g/a/#"} {
		if err := ValidFilter(f); err != nil {
			t.Errorf("ValidFilter(%q): %v", f, err)
		}
	}
	for _, f := range []string{"", "a/#/b", "a#", "a/b+", "#/a", "a\x00b", string([]byte{0xff})} {
		if err := ValidFilter(f); err == nil {
			t.Errorf("ValidFilter(%q): want an error", f)
		}
	}
	for _, n := range []string{"a", "a/b", "/x", "$SYS/x"} {
		if err := ValidTopicName(n); err != nil {
			t.Errorf("ValidTopicName(%q): %v", n, err)
		}
	}
	for _, n := range []string{"", "a/+", "#", "a\x00"} {
		if err := ValidTopicName(n); err == nil {
			t.Errorf("ValidTopicName(%q): want an error", n)
		}
	}
	for _, a := range []string{"eq a/+/#", "x/${clientid}/${username}", "dev-${clientid}/#"} {
		if err := ValidACLTopic(a); err != nil {
			t.Errorf("ValidACLTopic(%q): %v", a, err)
		}
	}
	for _, a := range []string{"x/${peerhost}", "eq ", "a/#/b", "x/${username"} {
		if err := ValidACLTopic(a); err == nil {
			t.Errorf("ValidACLTopic(%q): want an error", a)
		}
	}
}

func TestCovers(t *testing.T) {
	w := &who{username: "alice", hasUsername: true, clientID: "c1"}
	cases := []struct {
		rule, req string
		want      bool
	}{
		// topic names (publish)
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a", false},
		{"a/+", "a/b/c", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"#", "anything/at/all", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"a/+/c", "a//c", true},
		// filters (subscribe): the rule must cover the requested filter
		{"a/#", "a/b/+", true},
		{"a/#", "a/#", true},
		{"a/#", "#", false},
		{"a/+", "a/+", true},
		{"a/+", "a/#", false},
		{"a/b", "a/+", false},
		{"+/b", "+/b", true},
		{"a/+/c", "a/+/#", false},
		// placeholders
		{"users/${username}/#", "users/alice/x", true},
		{"users/${username}/#", "users/bob/x", false},
		{"users/${username}/#", "users/+/x", false},
		{"dev-${clientid}", "dev-c1", true},
		{"dev-${clientid}", "dev-c2", false},
		{"${clientid}/${username}", "c1/alice", true},
	}
	for _, c := range cases {
		lv, err := compileFilter(c.rule)
		if err != nil {
			t.Fatal(err)
		}
		if got := covers(lv, c.req, w); got != c.want {
			t.Errorf("covers(%q, %q) = %v, want %v", c.rule, c.req, got, c.want)
		}
	}
	// A user name is a value, not a pattern.
	lv, _ := compileFilter("users/${username}")
	if covers(lv, "users/x", &who{username: "+", hasUsername: true}) {
		t.Error("a user name '+' matched as a wildcard")
	}
	if covers(lv, "users/", &who{}) {
		t.Error("${username} matched a client without a user name")
	}
}

func TestACLSetOrderAndKinds(t *testing.T) {
	a := newACLSet(testLogger(), false)
	rule := func(key, kind, value, topic, action, perm string) store.Change {
		r := store.ACLRule{V: 1, Kind: kind, Value: value, Topic: topic, Action: action, Permission: perm}
		op, err := store.Put(store.TableACL, key, r)
		if err != nil {
			t.Fatal(err)
		}
		return store.Change{Type: store.OpPut, Table: store.TableACL, Key: key, Value: op.Value}
	}
	a.apply([]store.Change{
		rule(store.ACLKey(3), store.KindAll, "", "#", "subscribe", "allow"),
		rule(store.ACLKey(1), store.KindUsername, "alice", "secret/#", "all", "deny"),
		rule(store.ACLKey(2), store.KindAll, "", "secret/#", "publish", "allow"),
		rule(store.ACLKey(4), store.KindClientID, "c9", "eq x/+", "subscribe", "deny"),
		rule(store.ACLKey(5), store.KindAll, "", "bad/#/filter", "all", "allow"), // invalid: ignored
		rule(store.ACLKey(6), store.KindAll, "", "x/#", "subscribe", "allow"),
	})
	alice := &who{username: "alice", hasUsername: true, clientID: "c1"}
	bob := &who{username: "bob", hasUsername: true, clientID: "c9"}
	checks := []struct {
		w      *who
		action uint8
		topic  string
		want   bool
	}{
		{alice, actionPublish, "secret/a", false}, // rule 1 before rule 2
		{bob, actionPublish, "secret/a", true},    // rule 2
		{alice, actionSubscribe, "x", true},       // rule 3
		{bob, actionSubscribe, "x/+", true},       // rule 3 comes before rule 4
		{bob, actionPublish, "other", false},      // no match: deny
		{alice, actionSubscribe, "$share/g/secret/x", false},
	}
	for i, c := range checks {
		if got := a.authorize(c.action, c.topic, c.w); got != c.want {
			t.Errorf("check %d (%s %d %s): got %v", i, c.w.username, c.action, c.topic, got)
		}
	}
	if n := len(*a.rules.Load()); n != 5 {
		t.Errorf("%d rules compiled, want 5 (the invalid one skipped)", n)
	}
	a.apply([]store.Change{{Type: store.OpDelete, Table: store.TableACL, Key: store.ACLKey(3)}})
	if a.authorize(actionSubscribe, "y", alice) {
		t.Error("deleted rule still applies")
	}
	// eq: the literal filter "x/+" is denied, a topic it would match is not.
	if a.authorize(actionSubscribe, "x/+", bob) {
		t.Error("eq rule did not deny the literal filter")
	}
	if !a.authorize(actionSubscribe, "x/a", bob) {
		t.Error("eq rule matched with wildcard semantics")
	}
	a.apply([]store.Change{{Type: store.OpClear, Table: store.TableACL}})
	if len(*a.rules.Load()) != 0 {
		t.Error("clear left rules")
	}
}
