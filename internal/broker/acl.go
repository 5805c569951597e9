package broker

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/roostmq/roost/internal/store"
)

// ACL semantics (EMQX's built-in database authorization, with the
// decisions below written down):
//
//   - Rules are evaluated in ID (table key) order; the first rule whose
//     principal, action and topic match decides allow or deny. No match:
//     the configured no_match policy. Superusers bypass the rules.
//   - Principal: kind "username" (the CONNECT user name), "clientid" or
//     "all".
//   - Topic: an MQTT topic filter with + and #. The placeholders
//     ${username} and ${clientid} stand for the client's values; they are
//     matched inside one topic level and stand for the value literally (a
//     user name containing "/", "+" or "#" does not become a wildcard). A
//     rule with ${username} never matches a client without a user name.
//     "eq T" matches the topic or filter T literally, without wildcard or
//     placeholder meaning.
//   - Publish: the rule filter must match the topic name.
//   - Subscribe: the rule filter must cover the requested filter, i.e.
//     every topic the requested filter can match is matched by the rule
//     filter: rule "a/#" covers "a/b/+" and "a/#"; rule "a/+" covers
//     "a/b" but not "a/#"; rule "a/b" covers only "a/b". Shared
//     subscriptions ($share/group/F, $queue/F) are checked as F.
//   - A filter starting with a wildcard does not match topics starting
//     with "$" (MQTT 4.7.2), so "#" does not grant "$SYS/...".
//   - Subscriptions are authorised when made; deliveries are not checked
//     again (as in EMQX), and a rule change does not revoke existing
//     subscriptions.

const (
	actionPublish   uint8 = 1
	actionSubscribe uint8 = 2
)

// Filter and topic-name validation, for the broker and for input checks in
// the management API.

// ErrEmptyTopic and friends describe why a topic or filter is invalid.
var (
	errEmptyTopic   = errors.New("topic is empty")
	errTopicTooLong = errors.New("topic is longer than 65535 bytes")
	errTopicUTF8    = errors.New("topic is not valid UTF-8")
	errTopicNUL     = errors.New("topic contains a NUL character")
)

func validTopicText(s string) error {
	switch {
	case s == "":
		return errEmptyTopic
	case len(s) > 65535:
		return errTopicTooLong
	case !utf8.ValidString(s):
		return errTopicUTF8
	case strings.IndexByte(s, 0) >= 0:
		return errTopicNUL
	}
	return nil
}

// ValidFilter reports whether filter is a valid MQTT topic filter: not
// empty, at most 65535 bytes of UTF-8 without NUL, "+" and "#" only as a
// whole level, "#" only as the last level. ACL topics ("eq T", filters
// with ${username}/${clientid}) are valid filters too; ValidACLTopic
// checks them more strictly.
func ValidFilter(filter string) error {
	if err := validTopicText(filter); err != nil {
		return err
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		if strings.ContainsAny(l, "+#") && len(l) > 1 {
			return fmt.Errorf("topic filter %q: wildcard %q must be a whole level", filter, l)
		}
		if l == "#" && i != len(levels)-1 {
			return fmt.Errorf("topic filter %q: # must be the last level", filter)
		}
	}
	return nil
}

// ValidTopicName reports whether name is a valid MQTT topic name (what a
// PUBLISH or a retained message carries): a valid filter without
// wildcards.
func ValidTopicName(name string) error {
	if err := validTopicText(name); err != nil {
		return err
	}
	if strings.ContainsAny(name, "+#") {
		return fmt.Errorf("topic name %q must not contain wildcards (+ or #)", name)
	}
	return nil
}

// ValidACLTopic checks the topic of an ACL rule: a valid filter, or
// "eq " followed by one; placeholders other than ${username} and
// ${clientid} are refused.
func ValidACLTopic(topic string) error {
	if t, ok := strings.CutPrefix(topic, "eq "); ok {
		if err := ValidFilter(t); err != nil {
			return fmt.Errorf("eq topic: %w", err)
		}
		return nil
	}
	if err := ValidFilter(topic); err != nil {
		return err
	}
	_, err := compileFilter(topic)
	return err
}

// levelKind says how one level of a rule filter matches.
type levelKind uint8

const (
	levelLiteral  levelKind = iota
	levelPlus               // +
	levelHash               // # (always the last level)
	levelTemplate           // contains ${username} / ${clientid}
)

const (
	phUsername = "${username}"
	phClientID = "${clientid}"
)

type tplPart struct {
	lit string // literal text, when ph == 0
	ph  uint8  // 1: ${username}, 2: ${clientid}
}

type level struct {
	kind  levelKind
	lit   string
	parts []tplPart
}

// compileFilter splits a rule filter into levels and parses placeholders.
func compileFilter(filter string) ([]level, error) {
	raw := strings.Split(filter, "/")
	out := make([]level, len(raw))
	for i, l := range raw {
		switch {
		case l == "+":
			out[i] = level{kind: levelPlus}
		case l == "#":
			out[i] = level{kind: levelHash}
		case strings.Contains(l, "${"):
			parts, err := compileTemplate(l)
			if err != nil {
				return nil, fmt.Errorf("topic filter %q: %w", filter, err)
			}
			out[i] = level{kind: levelTemplate, parts: parts}
		default:
			out[i] = level{kind: levelLiteral, lit: l}
		}
	}
	return out, nil
}

func compileTemplate(l string) ([]tplPart, error) {
	var parts []tplPart
	for l != "" {
		i := strings.Index(l, "${")
		if i < 0 {
			parts = append(parts, tplPart{lit: l})
			break
		}
		if i > 0 {
			parts = append(parts, tplPart{lit: l[:i]})
		}
		l = l[i:]
		switch {
		case strings.HasPrefix(l, phUsername):
			parts = append(parts, tplPart{ph: 1})
			l = l[len(phUsername):]
		case strings.HasPrefix(l, phClientID):
			parts = append(parts, tplPart{ph: 2})
			l = l[len(phClientID):]
		default:
			end := strings.IndexByte(l, '}')
			if end < 0 {
				end = len(l) - 1
			}
			return nil, fmt.Errorf("unknown placeholder %q (want ${username} or ${clientid})", l[:end+1])
		}
	}
	return parts, nil
}

// who is the client an ACL check is about.
type who struct {
	username    string
	hasUsername bool
	clientID    string
}

func (w *who) placeholder(ph uint8) (string, bool) {
	if ph == 1 {
		return w.username, w.hasUsername && w.username != ""
	}
	return w.clientID, w.clientID != ""
}

// matchTemplate reports whether one topic level equals the template with
// the client's values substituted.
func (lv *level) matchTemplate(seg string, w *who) bool {
	for _, p := range lv.parts {
		s := p.lit
		if p.ph != 0 {
			v, ok := w.placeholder(p.ph)
			if !ok {
				return false
			}
			s = v
		}
		if !strings.HasPrefix(seg, s) {
			return false
		}
		seg = seg[len(s):]
	}
	return seg == ""
}

// covers reports whether the rule filter matches every topic matched by
// req, which is a topic name (publish) or a topic filter (subscribe).
func covers(rule []level, req string, w *who) bool {
	rest, more := req, true
	for i := range rule {
		lv := &rule[i]
		if lv.kind == levelHash {
			// "a/#" matches "a" and everything below it.
			return !(i == 0 && strings.HasPrefix(req, "$"))
		}
		if !more {
			return false
		}
		var seg string
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			seg, rest = rest[:j], rest[j+1:]
		} else {
			seg, more = rest, false
		}
		switch lv.kind {
		case levelPlus:
			if seg == "#" || (i == 0 && strings.HasPrefix(seg, "$")) {
				return false
			}
		case levelLiteral:
			if seg != lv.lit {
				return false
			}
		case levelTemplate:
			if seg == "+" || seg == "#" || !lv.matchTemplate(seg, w) {
				return false
			}
		}
	}
	return !more
}

// aclRule is a compiled store.ACLRule.
type aclRule struct {
	key     string
	kind    string // username | clientid | all
	value   string
	actions uint8
	allow   bool
	eq      bool
	eqTopic string
	filter  []level
}

func compileRule(key string, r *store.ACLRule) (*aclRule, error) {
	c := &aclRule{key: key, kind: r.Kind, value: r.Value}
	switch r.Kind {
	case store.KindUsername, store.KindClientID:
		if r.Value == "" {
			return nil, fmt.Errorf("rule of kind %s has no value", r.Kind)
		}
	case store.KindAll:
	default:
		return nil, fmt.Errorf("unknown rule kind %q", r.Kind)
	}
	switch r.Action {
	case "publish":
		c.actions = actionPublish
	case "subscribe":
		c.actions = actionSubscribe
	case "all":
		c.actions = actionPublish | actionSubscribe
	default:
		return nil, fmt.Errorf("unknown action %q", r.Action)
	}
	switch r.Permission {
	case "allow":
		c.allow = true
	case "deny":
	default:
		return nil, fmt.Errorf("unknown permission %q", r.Permission)
	}
	if err := ValidACLTopic(r.Topic); err != nil {
		return nil, err
	}
	if t, ok := strings.CutPrefix(r.Topic, "eq "); ok {
		c.eq, c.eqTopic = true, t
		return c, nil
	}
	f, err := compileFilter(r.Topic)
	if err != nil {
		return nil, err
	}
	c.filter = f
	return c, nil
}

func (r *aclRule) matches(action uint8, topic string, w *who) bool {
	if r.actions&action == 0 {
		return false
	}
	switch r.kind {
	case store.KindUsername:
		if !w.hasUsername || w.username != r.value {
			return false
		}
	case store.KindClientID:
		if w.clientID != r.value {
			return false
		}
	}
	if r.eq {
		return topic == r.eqTopic
	}
	return covers(r.filter, topic, w)
}

// stripShare returns the filter of a shared subscription ($share/g/F,
// $queue/F) or the filter itself.
func stripShare(filter string) string {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			return rest[i+1:]
		}
		return filter
	}
	if rest, ok := strings.CutPrefix(filter, "$queue/"); ok {
		return rest
	}
	return filter
}

// aclSet holds the compiled rules in evaluation order, rebuilt from the
// acl table on every change (never decoded per check).
type aclSet struct {
	log     *slog.Logger
	noMatch bool // allow when no rule matches

	byKey map[string]*aclRule        // source of truth, guarded by the mirror
	rules atomic.Pointer[[]*aclRule] // sorted snapshot read by checks
}

func newACLSet(log *slog.Logger, noMatchAllow bool) *aclSet {
	a := &aclSet{log: log, noMatch: noMatchAllow, byKey: map[string]*aclRule{}}
	a.publish()
	return a
}

// authorize decides whether w may do action on topic (a topic name for
// publish, a filter for subscribe).
func (a *aclSet) authorize(action uint8, topic string, w *who) bool {
	if action == actionSubscribe {
		topic = stripShare(topic)
	}
	for _, r := range *a.rules.Load() {
		if r.matches(action, topic, w) {
			return r.allow
		}
	}
	return a.noMatch
}

func (a *aclSet) publish() {
	rules := make([]*aclRule, 0, len(a.byKey))
	for _, r := range a.byKey {
		rules = append(rules, r)
	}
	slices.SortFunc(rules, func(x, y *aclRule) int { return cmp.Compare(x.key, y.key) })
	a.rules.Store(&rules)
}

func (a *aclSet) put(key string, val []byte) {
	var rec store.ACLRule
	if err := json.Unmarshal(val, &rec); err != nil {
		a.log.Warn("ignoring undecodable ACL rule", "key", key, "err", err)
		delete(a.byKey, key)
		return
	}
	r, err := compileRule(key, &rec)
	if err != nil {
		a.log.Warn("ignoring invalid ACL rule", "key", key, "err", err)
		delete(a.byKey, key)
		return
	}
	a.byKey[key] = r
}

// apply is the mirror's incremental update.
func (a *aclSet) apply(changes []store.Change) {
	for _, c := range changes {
		switch c.Type {
		case store.OpPut, store.OpAppend:
			a.put(c.Key, c.Value)
		case store.OpDelete:
			delete(a.byKey, c.Key)
		case store.OpClear:
			clear(a.byKey)
		}
	}
	a.publish()
}

// load is the mirror's full read.
func (a *aclSet) load(tx *store.Tx) (func(), error) {
	fresh := &aclSet{log: a.log, byKey: map[string]*aclRule{}}
	err := tx.ForEach(store.TableACL, func(key string, val []byte) error {
		fresh.put(key, val)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return func() {
		a.byKey = fresh.byKey
		a.publish()
	}, nil
}
