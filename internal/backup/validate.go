package backup

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/roostmq/roost/internal/broker"
	"github.com/roostmq/roost/internal/broker/authn"
	"github.com/roostmq/roost/internal/config"
	"github.com/roostmq/roost/internal/store"
	"golang.org/x/crypto/bcrypt"
)

// Record validation: every record of every table is decoded strictly
// (unknown fields and wrong types are problems) into its store type and
// checked the way the REST API checks what it stores, so that what an
// import commits is something the broker can use.

// strictUnmarshal decodes one JSON value into v, refusing unknown fields.
func strictUnmarshal(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("more than one JSON value")
	}
	return nil
}

// fieldOf names the field a decode error is about ("" for the record).
func fieldOf(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return strings.Trim(name, `"`)
	}
	return ""
}

// messageOf says what is wrong in a decode error, without Go type names.
func messageOf(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return fmt.Sprintf("expected a JSON object, got JSON %s", te.Value)
		}
		return fmt.Sprintf("expected %s, got JSON %s", jsonKind(te.Type.Kind().String(), te.Type.String()), te.Value)
	}
	if strings.HasPrefix(err.Error(), "json: unknown field ") {
		return "unknown field"
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d of the record: %v", se.Offset, se)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonKind(kind, typ string) string {
	switch {
	case typ == "time.Time":
		return "an RFC 3339 time string"
	case typ == "[]uint8":
		return "a base64 string"
	case kind == "string":
		return "a string"
	case kind == "bool":
		return "a boolean"
	case kind == "slice" || kind == "array":
		return "an array"
	case kind == "struct" || kind == "map" || kind == "ptr":
		return "an object"
	case strings.HasPrefix(kind, "uint"):
		return "a non-negative integer"
	}
	return "a number"
}

// locateField finds the member of the object raw that fails to decode
// into a value of v's type, for errors that do not name their field
// (a bad time, bad base64): each member is decoded on its own.
func locateField(raw []byte, v any) string {
	var members map[string]json.RawMessage
	if json.Unmarshal(raw, &members) != nil {
		return ""
	}
	typ := reflect.TypeOf(v).Elem()
	names := make([]string, 0, len(members))
	for k := range members {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		one, _ := json.Marshal(map[string]json.RawMessage{k: members[k]})
		if strictUnmarshal(one, reflect.New(typ).Interface()) != nil {
			return k
		}
	}
	return ""
}

// keyField is the field a table's key comes from, for duplicate reports.
func keyField(table string) string {
	switch table {
	case store.TableUsers, store.TableACL:
		return "id"
	case store.TableBanned:
		return "value"
	case store.TableRetained:
		return "topic"
	case store.TableAPIKeys:
		return "name"
	case store.TableAdmins:
		return "username"
	case store.TableConfig:
		return "key"
	}
	return ""
}

// checked is a valid record: its key (an ACL rule's from its id, which
// may be 0: assigned at import) and, for ACL rules, the rule.
type checked struct {
	key  string
	rule *store.ACLRule
}

// checkRecord validates one record of table; problems go to p with the
// record number. ok is false when the record has any problem.
func checkRecord(table string, num int, raw []byte, p *problems) (c checked, ok bool) {
	bad := false
	fail := func(field, format string, args ...any) {
		p.add(table, num, field, format, args...)
		bad = true
	}
	decode := func(v any) bool {
		if err := strictUnmarshal(raw, v); err != nil {
			field := fieldOf(err)
			if field == "" {
				field = locateField(raw, v)
			}
			fail(field, "%s", messageOf(err))
			return false
		}
		return true
	}
	version := func(v int) {
		switch {
		case v == 0:
			fail("v", "required: the record version (1)")
		case v < 0 || v > store.RecordVersion:
			fail("v", "record version %d is not one this roost reads (1 to %d)", v, store.RecordVersion)
		}
	}
	switch table {
	case store.TableUsers:
		var ur userRecord
		if !decode(&ur) {
			return c, false
		}
		u, err := ur.user()
		if err != nil {
			fail("salt_b64", "%v", err)
			return c, false
		}
		version(u.V)
		oneOf(fail, "kind", u.Kind, store.KindUsername, store.KindClientID)
		checkID(fail, "id", u.ID)
		checkHash(fail, &u)
		c.key = store.UserKey(u.Kind, u.ID)
	case store.TableACL:
		var r store.ACLRule
		if !decode(&r) {
			return c, false
		}
		version(r.V)
		oneOf(fail, "kind", r.Kind, store.KindUsername, store.KindClientID, store.KindAll)
		if r.Kind == store.KindAll {
			if r.Value != "" {
				fail("value", "must be empty for kind all")
			}
		} else if r.Kind != "" {
			checkID(fail, "value", r.Value)
		}
		if err := broker.ValidACLTopic(r.Topic); err != nil {
			fail("topic", "invalid topic filter: %v", err)
		}
		oneOf(fail, "action", r.Action, "publish", "subscribe", "all")
		oneOf(fail, "permission", r.Permission, "allow", "deny")
		c.rule = &r
		c.key = store.ACLKey(r.ID)
	case store.TableBanned:
		var b store.Ban
		if !decode(&b) {
			return c, false
		}
		version(b.V)
		oneOf(fail, "kind", b.Kind, store.KindClientID, store.KindUsername, store.KindPeerhost)
		if b.Kind == store.KindPeerhost {
			if canon, err := CanonicalPeerhost(b.Value); err != nil {
				fail("value", "%v", err)
			} else if canon != b.Value {
				fail("value", "peerhost %q is not in canonical form: write %q", b.Value, canon)
			}
		} else {
			checkID(fail, "value", b.Value)
		}
		if !b.Until.IsZero() && !b.At.IsZero() && b.Until.Before(b.At) {
			fail("until", "is before \"at\"")
		}
		c.key = store.BanKey(b.Kind, b.Value)
	case store.TableRetained:
		var r store.Retained
		if !decode(&r) {
			return c, false
		}
		version(r.V)
		if err := broker.ValidTopicName(r.Topic); err != nil {
			fail("topic", "invalid topic name: %v", err)
		}
		if r.QoS > 2 {
			fail("qos", "must be 0, 1 or 2, got %d", r.QoS)
		}
		if r.PayloadFormat != nil && *r.PayloadFormat > 1 {
			fail("payload_format", "must be 0 or 1, got %d", *r.PayloadFormat)
		}
		if r.PayloadFormat != nil && *r.PayloadFormat == 1 && !utf8.Valid(r.Payload) {
			fail("payload", "payload format 1 (UTF-8) but the payload is not valid UTF-8")
		}
		if r.ResponseTopic != "" {
			if err := broker.ValidTopicName(r.ResponseTopic); err != nil {
				fail("response_topic", "invalid topic name: %v", err)
			}
		}
		c.key = r.Topic
	case store.TableAPIKeys:
		var k store.APIKey
		if !decode(&k) {
			return c, false
		}
		version(k.V)
		if !apiKeyName.MatchString(k.Name) {
			fail("name", "must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit, got %q", k.Name)
		}
		checkHex(fail, "secret_hash", k.SecretHash, 32)
		checkHex(fail, "salt", k.Salt, 16)
		c.key = k.Name
	case store.TableAdmins:
		var a store.Admin
		if !decode(&a) {
			return c, false
		}
		version(a.V)
		checkID(fail, "username", a.Username)
		if a.PasswordHash == "" {
			fail("password_hash", "required (a bcrypt hash)")
		} else if err := authn.CheckAdminHash(a.PasswordHash); err != nil {
			fail("password_hash", "%v", err)
		}
		oneOf(fail, "role", a.Role, "administrator", "viewer")
		c.key = a.Username
	case store.TableConfig:
		var o store.ConfigOverride
		if !decode(&o) {
			return c, false
		}
		version(o.V)
		if !configKey.MatchString(o.Key) {
			fail("key", "must be a dotted config key (such as mqtt.max_inflight), got %q", o.Key)
		}
		if len(o.Value) == 0 {
			fail("value", "required")
		} else if _, followed := config.RuntimeOverrides[o.Key]; followed {
			// The nodes act on this key: a bad value would be ignored
			// with a warning on every node, so it is refused here.
			if _, err := config.ParseOverride(o.Key, o.Value); err != nil {
				fail("value", "%v", err)
			}
		}
		c.key = o.Key
	default:
		fail("", "unknown table")
	}
	return c, !bad
}

// userRecord mirrors store.User's JSON form field by field: store.User
// decodes itself (binary salts in salt_b64), which would let unknown
// fields through a strict decode. TestUserRecordMirrorsStoreUser keeps
// the two in step.
type userRecord struct {
	V            int       `json:"v"`
	Kind         string    `json:"kind"`
	ID           string    `json:"id"`
	PasswordHash string    `json:"password_hash"`
	Salt         string    `json:"salt,omitempty"`
	SaltB64      string    `json:"salt_b64,omitempty"`
	Algorithm    string    `json:"algorithm"`
	SaltPosition string    `json:"salt_position,omitempty"`
	MacFun       string    `json:"mac_fun,omitempty"`
	Iterations   int       `json:"iterations,omitempty"`
	DKLength     int       `json:"dk_length,omitempty"`
	Superuser    bool      `json:"superuser"`
	CreatedAt    time.Time `json:"created_at"`
}

func (r *userRecord) user() (store.User, error) {
	u := store.User{V: r.V, Kind: r.Kind, ID: r.ID, PasswordHash: r.PasswordHash, Salt: r.Salt, Algorithm: r.Algorithm,
		SaltPosition: r.SaltPosition, MacFun: r.MacFun, Iterations: r.Iterations, DKLength: r.DKLength,
		Superuser: r.Superuser, CreatedAt: r.CreatedAt}
	if r.SaltB64 != "" {
		b, err := base64.StdEncoding.DecodeString(r.SaltB64)
		if err != nil {
			return u, fmt.Errorf("not base64: %v", err)
		}
		u.Salt = string(b)
	}
	return u, nil
}

var (
	apiKeyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	configKey  = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)*$`)
)

func oneOf(fail func(string, string, ...any), field, v string, allowed ...string) {
	if slices.Contains(allowed, v) {
		return
	}
	if v == "" {
		fail(field, "required (one of %s)", strings.Join(allowed, ", "))
		return
	}
	fail(field, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
}

// checkID checks a user id, ACL or ban value, or admin name.
func checkID(fail func(string, string, ...any), field, id string) {
	switch {
	case id == "":
		fail(field, "required")
	case len(id) > 65535:
		fail(field, "longer than 65535 bytes")
	case strings.IndexByte(id, 0) >= 0:
		fail(field, "contains a NUL character")
	case !utf8.ValidString(id):
		fail(field, "not valid UTF-8")
	}
}

func checkHex(fail func(string, string, ...any), field, v string, size int) {
	b, err := hex.DecodeString(v)
	switch {
	case v == "":
		fail(field, "required")
	case err != nil || strings.ToLower(v) != v:
		fail(field, "must be lowercase hex, got %q", clip([]byte(v)))
	case size > 0 && len(b) != size:
		fail(field, "must be %d bytes (%d hex digits), got %d", size, 2*size, len(b))
	}
}

// checkHash checks that a user's password hash is one the broker can
// verify: a known algorithm with its parameters and a hash of the right form.
func checkHash(fail func(string, string, ...any), u *store.User) {
	if !slices.Contains(authn.Algorithms, u.Algorithm) {
		if u.Algorithm == "" {
			fail("algorithm", "required (one of %s)", strings.Join(authn.Algorithms, ", "))
		} else {
			fail("algorithm", "unknown password hash algorithm %q (known: %s)", u.Algorithm, strings.Join(authn.Algorithms, ", "))
		}
		return
	}
	if u.PasswordHash == "" {
		fail("password_hash", "required")
		return
	}
	switch u.Algorithm {
	case "plain", "sha256", "sha512":
		if u.SaltPosition != "" && !slices.Contains(authn.SaltPositions, u.SaltPosition) {
			fail("salt_position", "must be one of %s, got %q", strings.Join(authn.SaltPositions, ", "), u.SaltPosition)
		}
		switch u.Algorithm {
		case "sha256":
			checkHex(fail, "password_hash", u.PasswordHash, 32)
		case "sha512":
			checkHex(fail, "password_hash", u.PasswordHash, 64)
		}
	case "pbkdf2":
		if u.MacFun != "" && u.MacFun != "sha256" && u.MacFun != "sha512" {
			fail("mac_fun", "must be sha256 or sha512, got %q", u.MacFun)
		}
		if u.Iterations <= 0 {
			fail("iterations", "must be a positive number for pbkdf2, got %d", u.Iterations)
		}
		if u.DKLength < 0 {
			fail("dk_length", "must not be negative, got %d", u.DKLength)
		}
		size := u.DKLength
		if size == 0 {
			size = 32
			if u.MacFun == "sha512" {
				size = 64
			}
		}
		checkHex(fail, "password_hash", u.PasswordHash, size)
	case "bcrypt":
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			fail("password_hash", "not a bcrypt hash: %v", err)
		}
	}
}

// CanonicalPeerhost returns the one spelling of an IP address or CIDR
// block under which a ban is stored (as the REST API stores it).
func CanonicalPeerhost(v string) (string, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return "", fmt.Errorf("not a CIDR block: %q", v)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			if p.Bits() < 0 {
				return "", fmt.Errorf("not a CIDR block: %q (an IPv4-mapped prefix shorter than /96)", v)
			}
		}
		return p.Masked().String(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return "", fmt.Errorf("not an IP address or CIDR block: %q", v)
	}
	if a.Zone() != "" {
		return "", fmt.Errorf("an IP address with a zone (%q) cannot be banned", v)
	}
	return a.Unmap().String(), nil
}
