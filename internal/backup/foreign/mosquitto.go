package foreign

// Mosquitto dynamic-security file (plugins/dynamic-security: config.c,
// clients.c, groups.c, roles.c; the file mosquitto_ctrl dynsec init
// creates and the plugin rewrites on every change):
//
//	{"defaultACLAccess": {"publishClientSend": false, "publishClientReceive": true,
//	                      "subscribe": false, "unsubscribe": true},
//	 "clients": [{"username", "clientid"?, "textname"?, "textdescription"?, "disabled"?: true,
//	              "roles": [{"rolename", "priority"?}],
//	              "password": base64 (64 bytes), "salt": base64, "iterations": N}],
//	 "groups":  [{"groupname", "roles": [{"rolename", "priority"?}],
//	              "clients": [{"username", "priority"?}]}],
//	 "roles":   [{"rolename", "acls": [{"acltype", "topic", "priority"?, "allow"?}]}],
//	 "anonymousGroup"?: "groupname"}
//
// password = PKCS5_PBKDF2_HMAC(password, salt, iterations, EVP_sha512(), 64).
// ACL checks (dynamic_security acl.c): a client's roles by priority, then
// its groups by priority and each group's roles by priority (highest
// first, ties by name); in each role its ACLs of the action's types by
// priority (ties in file order), a subscribeLiteral match before the
// subscribePattern ACLs; the first match decides; no match: the
// defaultACLAccess of the action (never for $CONTROL topics).

import (
	"cmp"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/roostmq/roost/internal/backup"
	"github.com/roostmq/roost/internal/broker"
	"github.com/roostmq/roost/internal/store"
)

// Dynsec ACL types, as mosquitto spells them (it compares ignoring case).
const (
	aclPubSend     = "publishClientSend"
	aclPubRecv     = "publishClientReceive"
	aclSubLiteral  = "subscribeLiteral"
	aclSubPattern  = "subscribePattern"
	aclUnsubLit    = "unsubscribeLiteral"
	aclUnsubPatt   = "unsubscribePattern"
	dynsecHashLen  = 64         // sizeof(pw.password_hash): sha512
	dynsecSaltMax  = 64         // sizeof(pw.salt)
	maxIterations  = 10_000_000 // above this every login would stall the broker
	dynsecDefPrio  = -1         // priority of a role or group given none
	dynsecImported = "mosquitto dynamic-security import"
)

var dynsecACLTypes = []string{aclPubSend, aclPubRecv, aclSubLiteral, aclSubPattern, aclUnsubLit, aclUnsubPatt}

type dsACL struct {
	typ      string
	topic    string
	priority int
	allow    bool
}

type dsRole struct {
	name        string
	n           int
	acls        []dsACL
	noWildcards bool
	recvDeny    int // publishClientReceive ACLs that deny: not enforced by Roost
	unsubDeny   int // unsubscribe ACLs that deny: not enforced by Roost
}

type dsRef struct {
	name     string
	priority int
}

type dsGroup struct {
	name    string
	n       int
	roles   []dsRef
	clients []dsRef
}

type dsClient struct {
	username string
	n        int
	clientid string
	disabled bool
	roles    []dsRef
	groups   []dsRef // from the groups' client lists
	user     *store.User
}

type dynsecReader struct {
	c        collector
	ds       *backup.Dataset
	defaults map[string]bool // publishClientSend, publishClientReceive, subscribe, unsubscribe
	roles    []*dsRole
	groups   []*dsGroup
	clients  []*dsClient
	anon     string
	hasAnon  bool
	textual  int             // records with textname/textdescription
	broken   map[string]bool // "role:"/"client:"/"group:" + name of records with problems
}

// markBroken remembers a record that had problems, so that references
// to it are not reported again as references to nothing.
func (rd *dynsecReader) markBroken(kind, name string) {
	if name == "" {
		return
	}
	if rd.broken == nil {
		rd.broken = map[string]bool{}
	}
	rd.broken[kind+":"+name] = true
}

// ReadMosquittoDynsec reads a Mosquitto dynamic-security file into Roost
// records: every client with a password becomes a username user whose
// PBKDF2-SHA512 hash Roost verifies as is (the client logs in with its
// password); roles, expanded through groups, become username ACL rules
// in Mosquitto's evaluation order, followed by rules for all clients
// that give defaultACLAccess's decisions; disabled clients keep their
// credential and get a username ban. ACL types Roost has no equivalent
// for (publishClientReceive, unsubscribe*) and the anonymous group are
// reported in Notes.
func ReadMosquittoDynsec(r io.Reader) (*backup.Dataset, error) {
	rd, err := readDynsec(r)
	if err != nil {
		return nil, err
	}
	return rd.ds, nil
}

func readDynsec(r io.Reader) (*dynsecReader, error) {
	ds := &backup.Dataset{}
	rd := &dynsecReader{c: collector{ds: ds}, ds: ds}
	const what = "Mosquitto dynamic-security file"
	err := readObject(r, what, func(key string, dec *json.Decoder) error {
		var err error
		switch key {
		case "defaultACLAccess":
			var raw json.RawMessage
			if err = dec.Decode(&raw); err != nil {
				return syntaxErr(what, dec, err)
			}
			rd.readDefaults(raw)
		case "anonymousGroup":
			var v any
			if err = dec.Decode(&v); err != nil {
				return syntaxErr(what, dec, err)
			}
			if s, ok := v.(string); ok {
				rd.anon, rd.hasAnon = s, true
			} else if v != nil {
				rd.c.problem(key, 0, "", "must be a group name, got %v", v)
			}
		case "clients":
			_, err = section(&rd.c, key, what, dec, func(n int, raw json.RawMessage) { rd.readClient(n, raw) })
		case "groups":
			_, err = section(&rd.c, key, what, dec, func(n int, raw json.RawMessage) { rd.readGroup(n, raw) })
		case "roles":
			_, err = section(&rd.c, key, what, dec, func(n int, raw json.RawMessage) { rd.readRole(n, raw) })
		default:
			err = skipSection(ds, key, what, "not part of Mosquitto's dynamic-security format; not imported", dec)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	rd.finish()
	return rd, nil
}

func (rd *dynsecReader) readDefaults(raw json.RawMessage) {
	const table = "defaultACLAccess"
	rd.defaults = map[string]bool{}
	if string(raw) == "null" {
		return
	}
	r, ok := newRecord(&rd.c, table, 0, raw)
	if !ok {
		return
	}
	for _, k := range []string{aclPubSend, aclPubRecv, "subscribe", "unsubscribe"} {
		v, _, _ := r.boolean(k) // missing: deny, as mosquitto reads it
		rd.defaults[k] = v
	}
}

// refs reads a list of {"<nameKey>": name, "priority": p} (a client's or
// group's roles, a group's clients).
func refs(r *record, field, nameKey string) ([]dsRef, bool) {
	raw, found := r.f[field]
	if !found || string(raw) == "null" {
		return nil, true
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		r.problem(field, "must be an array of {%q, \"priority\"} objects, got %s", nameKey, rawKind(raw))
		return nil, false
	}
	var out []dsRef
	good := true
	for i, item := range list {
		var m map[string]json.RawMessage
		if len(item) == 0 || item[0] != '{' || json.Unmarshal(item, &m) != nil {
			r.problem(field, "element %d must be an object with %q, got %s", i+1, nameKey, rawKind(item))
			good = false
			continue
		}
		sub := r.nested(fmt.Sprintf("%s[%d]", field, i+1), m)
		var name string
		if err := json.Unmarshal(m[nameKey], &name); err != nil || name == "" {
			r.problem(field, "element %d: %q must be a non-empty string", i+1, nameKey)
			good = false
			continue
		}
		p, present, ok := sub.integer("priority")
		if !ok {
			good = false
			continue
		}
		if !present {
			p = dynsecDefPrio
		}
		if p < -1<<31 || p > 1<<31-1 {
			r.problem(field, "element %d: priority %d is out of range", i+1, p)
			good = false
			continue
		}
		out = append(out, dsRef{name: name, priority: int(p)})
	}
	return out, good
}

func (rd *dynsecReader) readRole(n int, raw json.RawMessage) {
	const table = "roles"
	r, ok := newRecord(&rd.c, table, n, raw)
	if !ok {
		return
	}
	name, ok := r.str("rolename", true)
	if !ok {
		return
	}
	if name == "" {
		r.problem("rolename", "must not be empty")
		return
	}
	role := &dsRole{name: name, n: n}
	if r.has("textname") || r.has("textdescription") {
		rd.textual++
	}
	if v, present, ok := r.boolean("allowwildcardsubs"); ok && present && !v {
		role.noWildcards = true
	}
	good := true
	if raw, found := r.f["acls"]; found && string(raw) != "null" {
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			r.problem("acls", "must be an array of ACL objects, got %s", rawKind(raw))
			good = false
		}
		seen := map[string]bool{}
		for i, item := range list {
			field := fmt.Sprintf("acls[%d]", i+1)
			var m map[string]json.RawMessage
			if len(item) == 0 || item[0] != '{' || json.Unmarshal(item, &m) != nil {
				r.problem(field, "must be an object, got %s", rawKind(item))
				good = false
				continue
			}
			a := r.nested(field, m)
			typ, ok := a.str("acltype", false)
			if !ok {
				if !a.has("acltype") {
					a.problem("acltype", "required")
				}
				good = false
				continue
			}
			canon := ""
			for _, t := range dynsecACLTypes {
				if strings.EqualFold(t, typ) {
					canon = t
				}
			}
			if canon == "" {
				rd.c.note("role %q: ACL %d has an unknown acltype %q and is ignored, as Mosquitto ignores it", name, i+1, typ)
				continue
			}
			topic, ok := a.str("topic", false)
			if !ok {
				if !a.has("topic") {
					a.problem("topic", "required")
				}
				good = false
				continue
			}
			if topic == "" {
				rd.c.note("role %q: ACL %d has an empty topic and is ignored, as Mosquitto ignores it", name, i+1)
				continue
			}
			p, present, ok := a.integer("priority")
			if !ok || p < -1<<31 || p > 1<<31-1 {
				if ok {
					a.problem("priority", "%d is out of range", p)
				}
				good = false
				continue
			}
			if !present {
				p = 0
			}
			allow, _, ok := a.boolean("allow") // missing: deny, as mosquitto reads it
			if !ok {
				good = false
				continue
			}
			if seen[canon+"\x00"+topic] {
				rd.c.note("role %q: ACL %d repeats the %s topic %q; the first one counts, as in Mosquitto", name, i+1, canon, topic)
				continue
			}
			seen[canon+"\x00"+topic] = true
			switch canon {
			case aclPubRecv:
				if !allow {
					role.recvDeny++
				}
			case aclUnsubLit, aclUnsubPatt:
				if !allow {
					role.unsubDeny++
				}
			default:
				if msg := placeholderProblem(topic); msg != "" {
					a.problem("topic", "%s", msg)
					good = false
					continue
				}
				check := topic
				if canon == aclSubLiteral {
					check = "eq " + topic
				}
				if err := broker.ValidACLTopic(check); err != nil {
					rd.c.note("role %q: ACL %d (%s %q) is not a valid topic filter and can match nothing, in Mosquitto either; not imported (%v)",
						name, i+1, canon, topic, err)
					continue
				}
			}
			role.acls = append(role.acls, dsACL{typ: canon, topic: topic, priority: int(p), allow: allow})
		}
	}
	if good {
		rd.roles = append(rd.roles, role)
	} else {
		rd.markBroken("role", name)
	}
}

func (rd *dynsecReader) readGroup(n int, raw json.RawMessage) {
	const table = "groups"
	r, ok := newRecord(&rd.c, table, n, raw)
	if !ok {
		return
	}
	name, ok := r.str("groupname", true)
	if !ok {
		return
	}
	if name == "" {
		r.problem("groupname", "must not be empty")
		return
	}
	if r.has("textname") || r.has("textdescription") {
		rd.textual++
	}
	g := &dsGroup{name: name, n: n}
	var okR, okC bool
	g.roles, okR = refs(r, "roles", "rolename")
	g.clients, okC = refs(r, "clients", "username")
	if okR && okC {
		rd.groups = append(rd.groups, g)
	} else {
		rd.markBroken("group", name)
	}
}

func (rd *dynsecReader) readClient(n int, raw json.RawMessage) {
	const table = "clients"
	r, ok := newRecord(&rd.c, table, n, raw)
	if !ok {
		return
	}
	good := true
	name, ok := r.str("username", true)
	if ok {
		if msg := checkID(name); msg != "" {
			r.problem("username", "%s", msg)
			ok = false
		}
	}
	good = good && ok
	c := &dsClient{username: name, n: n}
	if r.has("clientid") {
		id, ok := r.str("clientid", false)
		good = good && ok
		c.clientid = id
	}
	disabled, _, ok := r.boolean("disabled")
	good = good && ok
	c.disabled = disabled
	if r.has("textname") || r.has("textdescription") {
		rd.textual++
	}
	roles, ok := refs(r, "roles", "rolename")
	good = good && ok
	c.roles = roles

	hasPW, hasSalt, hasIter := r.has("password"), r.has("salt"), r.has("iterations")
	switch {
	case hasPW && hasSalt && hasIter:
		u := &store.User{V: store.RecordVersion, Kind: store.KindUsername, ID: name,
			Algorithm: "pbkdf2", MacFun: "sha512", DKLength: dynsecHashLen}
		it, _, ok := r.integer("iterations")
		switch {
		case !ok:
			good = false
		case it < 1:
			r.problem("iterations", "must be at least 1, got %d", it)
			good = false
		case it > maxIterations:
			r.problem("iterations", "%d is more than %d: every login would stall the broker", it, maxIterations)
			good = false
		default:
			u.Iterations = int(it)
		}
		if s, ok := r.str("salt", true); ok {
			salt, err := base64.StdEncoding.DecodeString(s)
			switch {
			case err != nil:
				r.problem("salt", "not base64: %v", err)
				good = false
			case len(salt) > dynsecSaltMax:
				r.problem("salt", "%d bytes, more than Mosquitto's %d", len(salt), dynsecSaltMax)
				good = false
			default:
				setRawSalt(u, salt)
			}
		} else {
			good = false
		}
		if s, ok := r.str("password", true); ok {
			h, err := base64.StdEncoding.DecodeString(s)
			switch {
			case err != nil:
				r.problem("password", "not base64: %v", err)
				good = false
			case len(h) != dynsecHashLen:
				r.problem("password", "a PBKDF2-SHA512 hash of %d bytes, want %d", len(h), dynsecHashLen)
				good = false
			default:
				u.PasswordHash = hex.EncodeToString(h)
			}
		} else {
			good = false
		}
		c.user = u
	case hasPW || hasSalt || hasIter:
		r.problem("password", "incomplete credential: \"password\", \"salt\" and \"iterations\" go together")
		good = false
	}
	if good {
		rd.clients = append(rd.clients, c)
	} else {
		rd.markBroken("client", name)
	}
}

// sortRefs orders roles or groups as mosquitto evaluates them: priority
// descending, then name.
func sortRefs(refs []dsRef) []dsRef {
	out := slices.Clone(refs)
	slices.SortStableFunc(out, func(a, b dsRef) int {
		if c := cmp.Compare(b.priority, a.priority); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return out
}

func (rd *dynsecReader) finish() {
	// Index and check names.
	roles := map[string]*dsRole{}
	for _, r := range rd.roles {
		if prev, dup := roles[r.name]; dup {
			rd.c.problem("roles", r.n, "rolename", "duplicate role %q (also record %d)", r.name, prev.n)
			continue
		}
		roles[r.name] = r
	}
	clients := map[string]*dsClient{}
	var clientList []*dsClient
	for _, c := range rd.clients {
		if prev, dup := clients[c.username]; dup {
			rd.c.problem("clients", c.n, "username", "duplicate client %q (also record %d)", c.username, prev.n)
			continue
		}
		clients[c.username] = c
		clientList = append(clientList, c)
	}
	groups := map[string]*dsGroup{}
	var unknownRoles, unknownClients []string
	for _, g := range rd.groups {
		if prev, dup := groups[g.name]; dup {
			rd.c.problem("groups", g.n, "groupname", "duplicate group %q (also record %d)", g.name, prev.n)
			continue
		}
		groups[g.name] = g
		for _, ref := range g.roles {
			if roles[ref.name] == nil && !rd.broken["role:"+ref.name] {
				unknownRoles = append(unknownRoles, fmt.Sprintf("%s (group %s)", ref.name, g.name))
			}
		}
		for _, ref := range g.clients {
			c := clients[ref.name]
			if c == nil {
				if !rd.broken["client:"+ref.name] {
					unknownClients = append(unknownClients, fmt.Sprintf("%s (group %s)", ref.name, g.name))
				}
				continue
			}
			if !slices.ContainsFunc(c.groups, func(x dsRef) bool { return x.name == g.name }) {
				c.groups = append(c.groups, dsRef{name: g.name, priority: ref.priority})
			}
		}
	}
	for _, c := range clientList {
		for _, ref := range c.roles {
			if roles[ref.name] == nil && !rd.broken["role:"+ref.name] {
				unknownRoles = append(unknownRoles, fmt.Sprintf("%s (client %s)", ref.name, c.username))
			}
		}
	}
	if len(unknownRoles) > 0 {
		rd.c.note("references to roles that do not exist are ignored, as Mosquitto ignores them: %s", strings.Join(unknownRoles, ", "))
	}
	if len(unknownClients) > 0 {
		rd.c.note("group members that are not clients are ignored, as Mosquitto ignores them: %s", strings.Join(unknownClients, ", "))
	}

	// Users, and bans for disabled clients.
	var noPassword, disabled, boundID, unstorable []string
	var unstorableN []int
	for _, c := range clientList {
		if c.clientid != "" {
			boundID = append(boundID, c.username)
		}
		if c.disabled {
			disabled = append(disabled, c.username)
			rd.ds.Records = append(rd.ds.Records, banRecord(&store.Ban{V: store.RecordVersion, Kind: store.KindUsername,
				Value: c.username, Reason: "disabled in Mosquitto dynamic security", By: dynsecImported}))
		}
		if c.user == nil {
			noPassword = append(noPassword, c.username)
			continue
		}
		if !survivesStorage(c.user) {
			unstorable = append(unstorable, c.username)
			unstorableN = append(unstorableN, c.n)
			continue
		}
		rd.ds.Records = append(rd.ds.Records, userRecord(c.user))
	}
	if len(unstorable) > 0 {
		rd.c.problem("clients", unstorableN[0], "salt",
			"%s with a binary salt (records %s), which Roost's users table cannot hold yet (store.User.Salt is a JSON string, "+
				"so bytes that are not UTF-8 would be replaced and the client could never log in): not imported",
			plural(len(unstorable), "client"), numberList(unstorableN, 5))
	}

	// ACL rules per client, in mosquitto's order.
	nRules := 0
	for _, c := range clientList {
		var order []*dsRole
		seen := map[string]bool{}
		add := func(refs []dsRef) {
			for _, ref := range sortRefs(refs) {
				if r := roles[ref.name]; r != nil && !seen[r.name] {
					seen[r.name] = true
					order = append(order, r)
				}
			}
		}
		add(c.roles)
		for _, gref := range sortRefs(c.groups) {
			add(groups[gref.name].roles)
		}
		for _, r := range order {
			for _, a := range roleRules(r) {
				a.Kind, a.Value = store.KindUsername, c.username
				rd.ds.Records = append(rd.ds.Records, aclRecord(a))
				nRules++
			}
		}
	}

	// defaultACLAccess: rules for all clients after everything else.
	if rd.defaults == nil {
		rd.defaults = map[string]bool{}
	}
	perm := func(allow bool) string {
		if allow {
			return "allow"
		}
		return "deny"
	}
	for _, d := range []struct{ key, action string }{{aclPubSend, "publish"}, {"subscribe", "subscribe"}} {
		rd.ds.Records = append(rd.ds.Records, aclRecord(&store.ACLRule{V: store.RecordVersion, Kind: store.KindAll,
			Topic: "#", Action: d.action, Permission: perm(rd.defaults[d.key])}))
	}

	// Notes: what does not map exactly.
	if n := len(clientList) - len(noPassword) - len(unstorable); n > 0 {
		rd.c.note("clients: %s imported as username users with their PBKDF2-SHA512 hashes; Roost must authenticate by user name (authn.user_id_type = username, the default)",
			plural(n, "client"))
	}
	if nRules > 0 {
		rd.c.note("roles: %s for the clients holding them (directly or through groups), in Mosquitto's order; subscribeLiteral becomes an \"eq\" rule",
			plural(nRules, "ACL rule"))
	}
	rd.c.note("defaultACLAccess: publish %s, subscribe %s for all clients after the client rules (they also apply to Roost users not in this file); "+
		"a \"#\" rule does not cover topics starting with '$', which fall to authz.no_match",
		perm(rd.defaults[aclPubSend]), perm(rd.defaults["subscribe"]))
	if len(disabled) > 0 {
		rd.c.note("disabled clients keep their credential and ACLs and get a username ban, so they are refused at CONNECT as in Mosquitto; delete the ban to enable one: %s",
			quoteList(disabled, 10))
	}
	if len(noPassword) > 0 {
		rd.c.note("clients without a password cannot log in with one (in Mosquitto either); their ACLs are imported but no credential: %s", quoteList(noPassword, 10))
	}
	if len(boundID) > 0 {
		rd.c.note("client id restriction not mapped: in Mosquitto these clients may only connect with their configured client id; Roost does not bind a user name to a client id: %s",
			quoteList(boundID, 10))
	}
	var recv, unsub, noWild []string
	for _, r := range rd.roles {
		if r.recvDeny > 0 {
			recv = append(recv, r.name)
		}
		if r.unsubDeny > 0 {
			unsub = append(unsub, r.name)
		}
		if r.noWildcards {
			noWild = append(noWild, r.name)
		}
	}
	// Roost allows these always: only denials are lost.
	if len(recv) > 0 || !rd.defaults[aclPubRecv] {
		rd.c.note("publishClientReceive denials not enforced (roles with deny ACLs: %s; default %s): Roost does not check deliveries, a client receives whatever its authorised subscriptions match",
			orNone(recv), perm(rd.defaults[aclPubRecv]))
	}
	if len(unsub) > 0 || !rd.defaults["unsubscribe"] {
		rd.c.note("unsubscribeLiteral/unsubscribePattern denials not enforced (roles with deny ACLs: %s; default %s): Roost always lets a client unsubscribe",
			orNone(unsub), perm(rd.defaults["unsubscribe"]))
	}
	if len(noWild) > 0 {
		rd.c.note("allowwildcardsubs false not mapped (roles %s): Roost's rules decide wildcard subscriptions like any other", quoteList(noWild, 10))
	}
	if rd.hasAnon {
		rd.c.note("anonymousGroup %q not mapped: Roost has no anonymous principal (with authentication on, clients without a user name are refused)", rd.anon)
	}
	if rd.textual > 0 {
		rd.c.note("textname/textdescription of %s are not kept", plural(rd.textual, "client, group or role"))
	}
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return quoteList(names, 10)
}

// roleRules returns a role's rules for one client, kind and value unset:
// publishClientSend by priority, then subscribeLiteral (an exact match
// wins over the role's patterns whatever their priority), then
// subscribePattern by priority. Ties keep file order, as mosquitto's
// in-order insert does.
func roleRules(r *dsRole) []*store.ACLRule {
	byPrio := func(typ string) []dsACL {
		var out []dsACL
		for _, a := range r.acls {
			if a.typ == typ {
				out = append(out, a)
			}
		}
		slices.SortStableFunc(out, func(x, y dsACL) int { return cmp.Compare(y.priority, x.priority) })
		return out
	}
	var rules []*store.ACLRule
	emit := func(list []dsACL, action, prefix string) {
		for _, a := range list {
			p := "deny"
			if a.allow {
				p = "allow"
			}
			rules = append(rules, &store.ACLRule{V: store.RecordVersion, Topic: prefix + a.topic, Action: action, Permission: p})
		}
	}
	emit(byPrio(aclPubSend), "publish", "")
	emit(byPrio(aclSubLiteral), "subscribe", "eq ")
	emit(byPrio(aclSubPattern), "subscribe", "")
	return rules
}
