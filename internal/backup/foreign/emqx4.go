package foreign

// EMQX 4.x export, as emqx_mgmt_data_backup writes it (EMQX 4.1 to 4.4;
// 4.0.13+ and 4.2.11+ files have the same shape):
//
//	{"version": "4.3", "date": "2022-05-24 10:51:39",
//	 "rules": [...], "resources": [...],
//	 "blacklist":  [{"who": {"clientid"|"username"|"peerhost": V}, "by", "reason", "at", "until"}],
//	 "apps":       [{"id", "secret", "name", "desc", "status", "expired"}],
//	 "users":      [{"username", "password", "tags"}],
//	 "auth_clientid": [{"clientid", "password"}],          (4.0-4.2 plugins)
//	 "auth_username": [{"username", "password"}],          (4.0-4.2 plugins)
//	 "auth_mnesia": [{"login", "type", "password", "created_at"}],   (4.3+)
//	                [{"login", "password", "is_superuser"}],         (4.1, 4.2)
//	 "acl_mnesia":  [{"type", "type_value", "topic", "action", "access", "created_at"}], (4.3+)
//	                [{"login", "topic", "action", "allow"}],         (4.1, 4.2)
//	 "modules", "schemas", "configs", "listeners_state": Enterprise only}
//
// Times: blacklist at/until and apps expired in seconds, created_at in
// milliseconds. Stored secrets are base64 of the emqx_user password
// field: 4 random salt bytes then emqx_passwd:hash(Type, Salt+Password),
// a lowercase hex digest for sha256/sha512 (Salt+Password itself for
// plain); users from EMQX 4.1/4.2 auth_mnesia carry an unsalted hex
// digest, which the 4.2 export wrote without base64. Dashboard users:
// base64 of 4 salt bytes then the raw md5(Salt+Password).

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/roostmq/roost/internal/backup"
	"github.com/roostmq/roost/internal/broker"
	"github.com/roostmq/roost/internal/broker/authn"
	"github.com/roostmq/roost/internal/config"
	"github.com/roostmq/roost/internal/store"
)

// EMQX4Options tune ReadEMQX4.
type EMQX4Options struct {
	// AuthAs is the kind, "username" or "clientid", of the auth_mnesia
	// and acl_mnesia records of EMQX before 4.3, which carry none: the
	// value of auth.mnesia.as in the source's emqx_auth_mnesia.conf (the
	// option --emqx-auth-as). Empty: taken from an "auth.mnesia.as" key
	// of the file if there is one, else such records are problems.
	AuthAs string
}

// emqxAuthAsOption is how the option is spelled for the operator.
const emqxAuthAsOption = "--emqx-auth-as username|clientid"

// ReadEMQX4 reads an EMQX 4.x data export (emqx_ctl data export) into
// Roost records: built-in database users (auth_mnesia, and the
// auth_username / auth_clientid plugins of 4.0-4.2) with their salted
// hashes, so that clients keep their passwords (with users by client id,
// the cluster config override authn.user_id_type = both, which
// authenticates as EMQX 4 did); ACL rules (acl_mnesia) in EMQX's
// evaluation order; bans (blacklist); API keys (apps, whose plaintext
// secrets are stored hashed); and dashboard admins (users) with their
// salted md5 passwords, re-hashed with bcrypt at their first login.
// Sections Roost does not support are listed in Skipped.
func ReadEMQX4(r io.Reader, opts EMQX4Options) (*backup.Dataset, error) {
	rd, err := readEMQX4(r, opts)
	if err != nil {
		return nil, err
	}
	return rd.ds, nil
}

func readEMQX4(r io.Reader, opts EMQX4Options) (*emqxReader, error) {
	switch opts.AuthAs {
	case "", store.KindUsername, store.KindClientID:
	default:
		return nil, fmt.Errorf("EMQX auth-as must be %q or %q, got %q", store.KindUsername, store.KindClientID, opts.AuthAs)
	}
	ds := &backup.Dataset{}
	rd := &emqxReader{c: collector{ds: ds}, ds: ds, authAs: opts.AuthAs}
	const what = "EMQX 4 export"
	err := readObject(r, what, func(key string, dec *json.Decoder) error {
		var err error
		switch key {
		case "version":
			err = rd.readVersion(dec)
		case "date":
			var v any
			if err = dec.Decode(&v); err != nil {
				err = syntaxErr(what, dec, err)
			}
		case "auth.mnesia.as": // an emqx_ctl data import --env override merged into the file
			var v any
			if err = dec.Decode(&v); err != nil {
				return syntaxErr(what, dec, err)
			}
			s, _ := v.(string)
			if s != store.KindUsername && s != store.KindClientID {
				rd.c.problem(key, 0, "", "must be %q or %q, got %v", store.KindUsername, store.KindClientID, v)
			} else {
				rd.fileAuthAs = s
			}
		case "auth_mnesia":
			_, err = section(&rd.c, key, what, dec, func(n int, raw json.RawMessage) { rd.authMnesia(n, raw) })
		case "auth_username":
			_, err = section(&rd.c, key, what, dec, func(n int, raw json.RawMessage) {
				rd.pluginUser(key, store.KindUsername, n, raw, &rd.usernameUsers)
			})
		case "auth_clientid":
			_, err = section(&rd.c, key, what, dec, func(n int, raw json.RawMessage) {
				rd.pluginUser(key, store.KindClientID, n, raw, &rd.clientidUsers)
			})
		case "acl_mnesia":
			_, err = section(&rd.c, key, what, dec, func(n int, raw json.RawMessage) { rd.aclMnesia(n, raw) })
		case "blacklist":
			_, err = section(&rd.c, key, what, dec, func(n int, raw json.RawMessage) { rd.blacklist(n, raw) })
		case "apps":
			_, err = section(&rd.c, key, what, dec, func(n int, raw json.RawMessage) { rd.app(n, raw) })
		case "users":
			_, err = section(&rd.c, key, what, dec, func(n int, raw json.RawMessage) { rd.admin(n, raw) })
		case "rules", "resources":
			err = skipSection(ds, key, what, "the rule engine is not supported by Roost", dec)
		case "modules":
			err = skipSection(ds, key, what, "EMQX Enterprise modules are not supported by Roost", dec)
		case "schemas":
			err = skipSection(ds, key, what, "the schema registry is not supported by Roost", dec)
		case "configs", "listeners_state":
			err = skipSection(ds, key, what, "EMQX configuration is not imported; configure Roost's roost.conf instead", dec)
		default:
			err = skipSection(ds, key, what, "not supported by Roost", dec)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if !rd.hasVersion {
		return nil, fmt.Errorf("%s: no \"version\" key: not an EMQX 4.x data export", what)
	}
	rd.finish()
	return rd, nil
}

type emqxUser struct {
	table string
	n     int
	u     *store.User
	old   bool // pre-4.3 auth_mnesia record: kind from auth-as
}

type emqxACL struct {
	n       int
	rule    *store.ACLRule // Kind "" for pre-4.3 records: from auth-as
	created int64          // ms; missing: newest, as EMQX's import stamps it now
	topic   string         // as in the file, for EMQX's tie order
	action  string         // pub | sub | pubsub
	access  string         // allow | deny
	old     bool
}

// emqxApp is an application of the file as an API key, with its secret
// (to recognise a stored key that already has it: settleAPIKey).
type emqxApp struct {
	key    *store.APIKey
	secret string
}

type emqxReader struct {
	c          collector
	ds         *backup.Dataset
	authAs     string
	fileAuthAs string
	hasVersion bool

	clientidUsers, usernameUsers, mnesiaUsers []emqxUser
	acls                                      []emqxACL
	bans                                      []*store.Ban
	banN                                      []int
	apps                                      []emqxApp
	admins                                    []*store.Admin
	unstorable                                map[string][]int // section -> records whose salt the store cannot hold
	oldUsers, oldACLs                         []int            // record numbers of pre-4.3 records
	userIDBoth                                bool             // users by client id: override authn.user_id_type
}

func (rd *emqxReader) readVersion(dec *json.Decoder) error {
	var v any
	if err := dec.Decode(&v); err != nil {
		return syntaxErr("EMQX 4 export", dec, err)
	}
	var s string
	switch t := v.(type) {
	case string:
		s = t
	case json.Number:
		s = t.String()
	default:
		return fmt.Errorf("EMQX 4 export: \"version\" must be a string like \"4.3\", got %v", v)
	}
	if !strings.HasPrefix(s, "4.") && s != "4" {
		if strings.HasPrefix(s, "5") {
			return fmt.Errorf("EMQX 4 export: the file is from EMQX %s; only EMQX 4.x JSON exports are supported (EMQX 5 backups are tar.gz archives)", s)
		}
		return fmt.Errorf("EMQX 4 export: unsupported version %q (this reads EMQX 4.x exports)", s)
	}
	rd.hasVersion = true
	return nil
}

// --- users ----------------------------------------------------------------

func (rd *emqxReader) authMnesia(n int, raw json.RawMessage) {
	const table = "auth_mnesia"
	r, ok := newRecord(&rd.c, table, n, raw)
	if !ok {
		return
	}
	login, okLogin := r.str("login", true)
	if okLogin {
		if msg := checkID(login); msg != "" {
			r.problem("login", "%s", msg)
			okLogin = false
		}
	}
	u := &store.User{V: store.RecordVersion, ID: login}
	old := !r.has("type")
	if old {
		// EMQX 4.1/4.2: {login, password, is_superuser}; the kind is the
		// source's auth.mnesia.as.
		rd.oldUsers = append(rd.oldUsers, n)
		su, _, okSU := r.boolean("is_superuser")
		if !okSU {
			okLogin = false
		}
		u.Superuser = su
	} else {
		kind, _ := r.str("type", true)
		switch kind {
		case store.KindUsername, store.KindClientID:
			u.Kind = kind
		case "":
			okLogin = false
		default:
			r.problem("type", "must be %q or %q, got %q", store.KindUsername, store.KindClientID, kind)
			okLogin = false
		}
		t, ok := r.epoch("created_at", time.Millisecond)
		okLogin = okLogin && ok
		u.CreatedAt = t
	}
	pw, okPW := r.str("password", true)
	if !okPW {
		return
	}
	secret, err := decodeSecret(pw, true)
	if err != nil {
		r.problem("password", "%v", err)
		return
	}
	if msg := emqxCredential(u, secret, old); msg != "" {
		r.problem("password", "%s", msg)
		return
	}
	if okLogin {
		rd.mnesiaUsers = append(rd.mnesiaUsers, emqxUser{table: table, n: n, u: u, old: old})
	}
}

// pluginUser reads a record of auth_username / auth_clientid, the
// sections of the emqx_auth_username / emqx_auth_clientid plugins of
// EMQX 4.0-4.2: {username|clientid, password}, the password salted
// exactly like auth_mnesia's (EMQX 4.3 imports them into auth_mnesia
// unchanged).
func (rd *emqxReader) pluginUser(table, kind string, n int, raw json.RawMessage, into *[]emqxUser) {
	r, ok := newRecord(&rd.c, table, n, raw)
	if !ok {
		return
	}
	id, okID := r.str(kind, true)
	if okID {
		if msg := checkID(id); msg != "" {
			r.problem(kind, "%s", msg)
			okID = false
		}
	}
	pw, okPW := r.str("password", true)
	if !okPW {
		return
	}
	secret, err := decodeSecret(pw, false)
	if err != nil {
		r.problem("password", "%v", err)
		return
	}
	u := &store.User{V: store.RecordVersion, Kind: kind, ID: id}
	if msg := emqxCredential(u, secret, false); msg != "" {
		r.problem("password", "%s", msg)
		return
	}
	if okID {
		*into = append(*into, emqxUser{table: table, n: n, u: u})
	}
}

// decodeSecret decodes the password field of an exported user: base64 of
// the stored secret. The EMQX 4.2 export wrote auth_mnesia secrets (an
// unsalted hex digest) without base64; a field that is exactly such a
// digest is taken as is.
func decodeSecret(s string, maybeHex bool) ([]byte, error) {
	if maybeHex && isLowerHex(s) {
		switch len(s) {
		case 32, 40, 64, 128:
			return []byte(s), nil
		}
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		var err2 error
		if b, err2 = base64.RawStdEncoding.DecodeString(s); err2 != nil {
			return nil, fmt.Errorf("not base64 (the export encodes stored passwords in base64): %v", err)
		}
	}
	return b, nil
}

func isLowerHex[T string | []byte](s T) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// emqxCredential sets u's algorithm, salt and hash from the stored
// secret of an EMQX 4 user, recognised by its shape as EMQX's own check
// does (emqx_auth_mnesia:match_password): a secret exactly as long as a
// hex digest is an unsalted digest; otherwise 4 salt bytes then
// emqx_passwd:hash(Type, Salt+Password). old is for EMQX 4.1/4.2
// auth_mnesia records, which were never salted. It returns a problem
// message, or "".
func emqxCredential(u *store.User, secret []byte, old bool) string {
	unsupported := func(alg string, salted bool) string {
		s := "an unsalted"
		if salted {
			s = "a salted"
		}
		return fmt.Sprintf("the stored password is %s %s hash (the source's password_hash = %s); "+
			"Roost supports plain, sha256, sha512, pbkdf2 and bcrypt, so this user cannot keep its password: "+
			"remove the record from the file and re-create the user in Roost", s, alg, alg)
	}
	n := len(secret)
	if isLowerHex(secret) {
		switch n {
		case 64, 128:
			u.Algorithm, u.SaltPosition, u.PasswordHash = "sha256", "disable", string(secret)
			if n == 128 {
				u.Algorithm = "sha512"
			}
			return ""
		case 32:
			return unsupported("md5", false)
		case 40:
			return unsupported("sha", false)
		}
	}
	if old {
		// EMQX 4.1/4.2 auth_mnesia with password_hash = plain: the
		// password itself.
		u.Algorithm, u.SaltPosition, u.PasswordHash = "plain", "disable", string(secret)
		return ""
	}
	if n > 4 && isLowerHex(secret[4:]) {
		switch n - 4 {
		case 64, 128:
			u.Algorithm, u.SaltPosition, u.PasswordHash = "sha256", "prefix", string(secret[4:])
			if n-4 == 128 {
				u.Algorithm = "sha512"
			}
			setRawSalt(u, secret[:4])
			return ""
		case 32:
			return unsupported("md5", true)
		case 40:
			return unsupported("sha", true)
		}
	}
	if n >= 8 && bytes.Equal(secret[:4], secret[4:8]) {
		// password_hash = plain: Salt then hash(plain, Salt+Password),
		// i.e. the salt twice, then the password. Comparing Salt+Password
		// is comparing the password: kept without the salt.
		u.Algorithm, u.SaltPosition, u.PasswordHash = "plain", "disable", string(secret[8:])
		return ""
	}
	return fmt.Sprintf("unrecognised stored password (%d bytes): not a salted or unsalted sha256/sha512 hex digest "+
		"nor a salted plain password, the forms EMQX 4's built-in database stores", n)
}

// --- ACL ------------------------------------------------------------------

func (rd *emqxReader) aclMnesia(n int, raw json.RawMessage) {
	const table = "acl_mnesia"
	r, ok := newRecord(&rd.c, table, n, raw)
	if !ok {
		return
	}
	a := emqxACL{n: n, created: math.MaxInt64, rule: &store.ACLRule{V: store.RecordVersion}}
	good := true
	a.old = !r.has("type") && r.has("login")
	if a.old {
		// EMQX 4.1/4.2: {login, topic, action, allow}.
		rd.oldACLs = append(rd.oldACLs, n)
		login, ok := r.str("login", true)
		if msg := checkID(login); ok && msg != "" {
			r.problem("login", "%s", msg)
			ok = false
		}
		good = good && ok
		a.rule.Value = login
		allow, present, ok := r.boolean("allow")
		switch {
		case !ok:
			good = false
		case !present:
			r.problem("allow", "required")
			good = false
		case allow:
			a.access = "allow"
		default:
			a.access = "deny"
		}
	} else {
		kind, ok := r.str("type", true)
		good = good && ok
		switch kind {
		case store.KindUsername, store.KindClientID:
			a.rule.Kind = kind
			v, ok := r.str("type_value", true)
			if msg := checkID(v); ok && msg != "" {
				r.problem("type_value", "%s", msg)
				ok = false
			}
			good = good && ok
			a.rule.Value = v
		case store.KindAll:
			a.rule.Kind = kind
		case "":
		default:
			r.problem("type", "must be %q, %q or %q, got %q", store.KindUsername, store.KindClientID, store.KindAll, kind)
			good = false
		}
		access, ok := r.str("access", true)
		switch access {
		case "allow", "deny":
			a.access = access
		case "":
			good = false
		default:
			r.problem("access", "must be \"allow\" or \"deny\", got %q", access)
			good = false
		}
		if !ok {
			good = false
		}
		t, ok := r.epoch("created_at", time.Millisecond)
		good = good && ok
		if ok && !t.IsZero() {
			a.created = t.UnixMilli()
			a.rule.CreatedAt = t
		}
	}
	a.rule.Permission = a.access
	action, ok := r.str("action", true)
	a.action = action
	switch action {
	case "pub":
		a.rule.Action = "publish"
	case "sub":
		a.rule.Action = "subscribe"
	case "pubsub":
		a.rule.Action = "all"
	case "":
		good = false
	default:
		r.problem("action", "must be \"pub\", \"sub\" or \"pubsub\", got %q", action)
		good = false
	}
	good = good && ok
	topic, ok := r.str("topic", true)
	a.topic = topic
	if ok {
		t, msg := emqxACLTopic(topic)
		if msg != "" {
			r.problem("topic", "%s", msg)
			good = false
		}
		a.rule.Topic = t
	} else {
		good = false
	}
	if good {
		rd.acls = append(rd.acls, a)
	}
}

// emqxACLTopic translates an acl_mnesia topic filter: EMQX substitutes
// the whole levels %u and %c with the client's user name and client id;
// Roost's placeholders are ${username} and ${clientid}.
func emqxACLTopic(topic string) (string, string) {
	if strings.HasPrefix(topic, "eq ") {
		return "", "starts with \"eq \", which Roost reads as an exact-match marker while EMQX's built-in ACL matched it as a filter"
	}
	if msg := placeholderProblem(topic); msg != "" {
		return "", msg
	}
	levels := strings.Split(topic, "/")
	for i, l := range levels {
		switch l {
		case "%u":
			levels[i] = "${username}"
		case "%c":
			levels[i] = "${clientid}"
		}
	}
	t := strings.Join(levels, "/")
	if err := broker.ValidACLTopic(t); err != nil {
		return "", fmt.Sprintf("not a valid topic filter: %v", err)
	}
	return t, ""
}

// --- bans, API keys, admins -----------------------------------------------

func (rd *emqxReader) blacklist(n int, raw json.RawMessage) {
	const table = "blacklist"
	r, ok := newRecord(&rd.c, table, n, raw)
	if !ok {
		return
	}
	b := &store.Ban{V: store.RecordVersion}
	good := true
	// {"who": {"clientid": V}} as the export writes it; also
	// {"who": V, "as": "clientid"}, the shape of EMQX's REST API.
	whoRaw, found := r.f["who"]
	var kind, value string
	switch {
	case !found || string(whoRaw) == "null":
		r.problem("who", "required")
		good = false
	case whoRaw[0] == '{':
		var who map[string]json.RawMessage
		if err := json.Unmarshal(whoRaw, &who); err != nil || len(who) != 1 {
			r.problem("who", "must be an object with one key (clientid, username or peerhost)")
			good = false
			break
		}
		for k, v := range who {
			kind = k
			if err := json.Unmarshal(v, &value); err != nil {
				r.problem("who", "the %s must be a string", k)
				good = false
			}
		}
	case whoRaw[0] == '"':
		value, _ = r.str("who", true)
		as, ok := r.str("as", true)
		kind = as
		good = good && ok
	default:
		r.problem("who", "must be an object like {\"clientid\": \"c1\"}, got %s", rawKind(whoRaw))
		good = false
	}
	if good {
		switch kind {
		case "clientid", "client_id":
			b.Kind = store.KindClientID
		case "username":
			b.Kind = store.KindUsername
		case "peerhost":
			b.Kind = store.KindPeerhost
		default:
			r.problem("who", "unknown kind %q (want clientid, username or peerhost)", kind)
			good = false
		}
	}
	if good {
		if b.Kind == store.KindPeerhost {
			v, err := canonicalPeerhost(value)
			if err != nil {
				r.problem("who", "%v", err)
				good = false
			}
			value = v
		} else if msg := checkID(value); msg != "" {
			r.problem("who", "%s: %s", kind, msg)
			good = false
		}
	}
	b.Value = value
	var okS bool
	if b.By, okS = r.str("by", false); !okS && r.has("by") {
		good = false
	}
	if b.Reason, okS = r.str("reason", false); !okS && r.has("reason") {
		good = false
	}
	var okT bool
	b.At, okT = r.epoch("at", time.Second)
	good = good && okT
	b.Until, okT = r.epoch("until", time.Second)
	good = good && okT
	if good {
		rd.bans = append(rd.bans, b)
		rd.banN = append(rd.banN, n)
	}
}

// apiKeyName is the rule of Roost's REST API for API key names (the user
// name of HTTP basic auth); internal/api keeps it unexported.
var apiKeyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func (rd *emqxReader) app(n int, raw json.RawMessage) {
	const table = "apps"
	r, ok := newRecord(&rd.c, table, n, raw)
	if !ok {
		return
	}
	good := true
	id, ok := r.str("id", true)
	if ok && !apiKeyName.MatchString(id) {
		r.problem("id", "%q cannot be a Roost API key name (1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit)", id)
		ok = false
	}
	good = good && ok
	secret, ok := r.str("secret", true)
	if ok && secret == "" {
		r.problem("secret", "must not be empty")
		ok = false
	}
	good = good && ok
	name, okN := r.str("name", false)
	desc, okD := r.str("desc", false)
	if (!okN && r.has("name")) || (!okD && r.has("desc")) {
		good = false
	}
	if name != "" && name != id {
		if desc != "" {
			desc = name + ": " + desc
		} else {
			desc = name
		}
	}
	enabled, present, ok := r.boolean("status")
	if !present {
		enabled = true
	}
	good = good && ok
	k := &store.APIKey{V: store.RecordVersion, Name: id, Enabled: enabled, Desc: desc}
	var okT bool
	k.ExpiresAt, okT = r.epoch("expired", time.Second)
	good = good && okT
	if !good {
		return
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	k.Salt, k.SecretHash = hex.EncodeToString(salt), hashAPIKeySecret(salt, secret)
	rd.apps = append(rd.apps, emqxApp{key: k, secret: secret})
}

// hashAPIKeySecret hashes an API key secret the way Roost's REST API
// does (internal/api: a random 16-byte salt, hex; hex sha256(salt ||
// secret)), so the key keeps working with its EMQX secret.
func hashAPIKeySecret(salt []byte, secret string) string {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(secret))
	return hex.EncodeToString(h.Sum(nil))
}

// settleAPIKey keeps the salt and hash of the stored key when its hash
// already verifies the secret of the file: a re-import of the same file
// then changes nothing, and the salt stays the random one made at the
// first import (a salt derived from the name or the secret would be
// predictable). A stored key whose hash does not verify the secret gets
// the fresh salt.
func settleAPIKey(k *store.APIKey, secret string) func([]byte) any {
	return func(cur []byte) any {
		var c store.APIKey
		if json.Unmarshal(cur, &c) != nil {
			return nil
		}
		salt, err := hex.DecodeString(c.Salt)
		if err != nil || len(salt) == 0 ||
			subtle.ConstantTimeCompare([]byte(hashAPIKeySecret(salt, secret)), []byte(c.SecretHash)) != 1 {
			return nil
		}
		next := *k
		next.Salt, next.SecretHash = c.Salt, c.SecretHash
		return &next
	}
}

// settleAdmin keeps the bcrypt hash that replaced the imported one at the
// admin's first login (store.Admin.UpgradedFrom names the hash it
// replaced): importing the same file again neither changes the admin nor
// brings the md5 hash back.
func settleAdmin(a *store.Admin) func([]byte) any {
	want := authn.LegacyHashPrint(a.PasswordHash)
	return func(cur []byte) any {
		var c store.Admin
		if json.Unmarshal(cur, &c) != nil || c.UpgradedFrom != want {
			return nil
		}
		next := *a
		next.PasswordHash, next.UpgradedFrom = c.PasswordHash, c.UpgradedFrom
		return &next
	}
}

// settleOverride keeps the stored config override (and so its time)
// when it already holds the value.
func settleOverride(o *store.ConfigOverride) func([]byte) any {
	return func(cur []byte) any {
		var c store.ConfigOverride
		if json.Unmarshal(cur, &c) != nil || c.Key != o.Key || !jsonEqual(c.Value, o.Value) {
			return nil
		}
		return &c
	}
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y bytes.Buffer
	return json.Compact(&x, a) == nil && json.Compact(&y, b) == nil && bytes.Equal(x.Bytes(), y.Bytes())
}

func (rd *emqxReader) admin(n int, raw json.RawMessage) {
	const table = "users"
	r, ok := newRecord(&rd.c, table, n, raw)
	if !ok {
		return
	}
	name, okName := r.str("username", true)
	if msg := checkID(name); okName && msg != "" {
		r.problem("username", "%s", msg)
		okName = false
	}
	pw, ok := r.str("password", true)
	if !ok {
		okName = false
	}
	var hash string
	if ok {
		var err error
		if hash, err = authn.EMQX4AdminHash(pw); err != nil {
			r.problem("password", "%v", err)
			okName = false
		}
	}
	tags, ok := r.str("tags", false)
	if !ok && r.has("tags") {
		okName = false
	}
	if !okName {
		return
	}
	desc := "imported from EMQX 4"
	if tags != "" {
		desc = tags + " (" + desc + ")"
	}
	rd.admins = append(rd.admins, &store.Admin{V: store.RecordVersion, Username: name,
		PasswordHash: hash, Role: "administrator", Desc: desc})
}

// --- assembly -------------------------------------------------------------

func (rd *emqxReader) finish() {
	authAs := rd.authAs
	if authAs == "" && rd.fileAuthAs != "" {
		authAs = rd.fileAuthAs
		rd.c.note("pre-4.3 auth_mnesia/acl_mnesia records are imported as %s records (the file's \"auth.mnesia.as\")", authAs)
	}
	if authAs == "" {
		if len(rd.oldUsers) > 0 {
			rd.c.problem("auth_mnesia", rd.oldUsers[0], "type",
				"%s without \"type\" (%s): the file is from EMQX before 4.3, where the kind was the setting auth.mnesia.as; "+
					"give %s as it was set in the source's etc/plugins/emqx_auth_mnesia.conf",
				plural(len(rd.oldUsers), "record"), numberList(rd.oldUsers, 5), emqxAuthAsOption)
		}
		if len(rd.oldACLs) > 0 {
			rd.c.problem("acl_mnesia", rd.oldACLs[0], "type",
				"%s without \"type\" (%s): the file is from EMQX before 4.3, where the kind was the setting auth.mnesia.as; "+
					"give %s as it was set in the source's etc/plugins/emqx_auth_mnesia.conf",
				plural(len(rd.oldACLs), "record"), numberList(rd.oldACLs, 5), emqxAuthAsOption)
		}
	}

	// Users: EMQX imports auth_clientid, then auth_username, then
	// auth_mnesia, each write replacing an earlier one with the same key.
	at := map[string]int{} // key -> index in users
	var users []emqxUser
	replaced := 0
	for _, list := range [][]emqxUser{rd.clientidUsers, rd.usernameUsers, rd.mnesiaUsers} {
		for _, eu := range list {
			if eu.old {
				if authAs == "" {
					continue
				}
				eu.u.Kind = authAs
			}
			key := store.UserKey(eu.u.Kind, eu.u.ID)
			i, dup := at[key]
			switch {
			case !dup:
				at[key] = len(users)
				users = append(users, eu)
			case users[i].table == eu.table:
				rd.c.problem(eu.table, eu.n, "", "duplicate user %s %q (also record %d)", eu.u.Kind, eu.u.ID, users[i].n)
			default:
				replaced++
				users[i] = eu
			}
		}
	}
	if replaced > 0 {
		rd.c.note("%s of auth_clientid/auth_username are replaced by the auth_mnesia (or auth_username) record of the same name, as EMQX's import does",
			plural(replaced, "user"))
	}
	kinds := map[string]int{}
	for _, eu := range users {
		if !survivesStorage(eu.u) {
			if rd.unstorable == nil {
				rd.unstorable = map[string][]int{}
			}
			rd.unstorable[eu.table] = append(rd.unstorable[eu.table], eu.n)
			continue
		}
		kinds[eu.u.Kind]++
		rd.ds.Records = append(rd.ds.Records, userRecord(eu.u))
	}
	for _, table := range []string{"auth_clientid", "auth_username", "auth_mnesia"} {
		if ns := rd.unstorable[table]; len(ns) > 0 {
			rd.c.problem(table, ns[0], "password",
				"%s with a binary salt (records %s), which Roost's users table cannot hold yet (store.User.Salt is a JSON string, "+
					"so bytes that are not UTF-8 would be replaced and the user could never log in): not imported",
				plural(len(ns), "user"), numberList(ns, 5))
		}
	}
	if n := kinds[store.KindClientID]; n > 0 {
		// EMQX 4.3/4.4 admits a CONNECT when the client id's record or the
		// user name's matches (emqx_auth_mnesia:check): so does Roost with
		// user_id_type both, set for the whole cluster by the import.
		rd.userIDBoth = true
		which := plural(n, "user") + " by client id"
		if u := kinds[store.KindUsername]; u > 0 {
			which = plural(u, "user") + " by user name and " + which
		}
		rd.c.note("users: %s; EMQX 4 admits a CONNECT when the client id's record or the user name's matches the password, "+
			"so the import sets the cluster config override authn.user_id_type = \"both\" (table config), which every node follows at once, "+
			"before its own config file: every imported user logs in with its EMQX password. "+
			"Undo: roost ctl config unset %s (each node then follows its authn.user_id_type again). "+
			"Importing without the config table (--tables)? Then set authn.user_id_type = \"both\" in every node's config instead",
			which, config.OverrideUserIDType)
	}

	// ACL rules, in the order EMQX 4.3+ evaluates them for a client: its
	// client id's rules, then its user name's, then the rules for all,
	// each newest first (emqx_acl_mnesia_db:lookup_acl, comparing/2).
	// Pre-4.3 records have no time and keep their file order.
	var rules []emqxACL
	for _, a := range rd.acls {
		if a.old {
			if authAs == "" {
				continue
			}
			a.rule.Kind = authAs
		}
		rules = append(rules, a)
	}
	rank := map[string]int{store.KindClientID: 0, store.KindUsername: 1, store.KindAll: 2}
	slices.SortStableFunc(rules, func(x, y emqxACL) int {
		if c := cmp.Compare(rank[x.rule.Kind], rank[y.rule.Kind]); c != 0 {
			return c
		}
		if x.old || y.old {
			return 0
		}
		// Descending: created_at, then the record tuple (topic, action, access).
		if c := cmp.Compare(y.created, x.created); c != 0 {
			return c
		}
		if c := strings.Compare(y.topic, x.topic); c != 0 {
			return c
		}
		if c := strings.Compare(y.action, x.action); c != 0 {
			return c
		}
		return strings.Compare(y.access, x.access)
	})
	for i := range rules {
		rd.ds.Records = append(rd.ds.Records, aclRecord(rules[i].rule))
	}
	if len(rules) > 0 {
		rd.c.note("acl_mnesia: %s in EMQX's evaluation order (per client: its client id's rules, its user name's, then the rules for all, newest first); "+
			"EMQX's acl_nomatch is not in the export: set Roost's authz.no_match to match it", plural(len(rules), "rule"))
		if len(rd.oldACLs) > 0 && authAs != "" {
			rd.c.note("acl_mnesia: %s from before EMQX 4.3 carry no creation time and keep their file order", plural(len(rd.oldACLs), "rule"))
		}
	}

	banKeys := map[string]int{}
	for i, b := range rd.bans {
		key := store.BanKey(b.Kind, b.Value)
		if prev, dup := banKeys[key]; dup {
			rd.c.problem("blacklist", rd.banN[i], "who", "duplicate ban of %s %q (also record %d)", b.Kind, b.Value, prev)
			continue
		}
		banKeys[key] = rd.banN[i]
		rd.ds.Records = append(rd.ds.Records, banRecord(b))
	}
	for _, a := range rd.apps {
		rd.ds.Records = append(rd.ds.Records, backup.Record{Table: store.TableAPIKeys, Key: a.key.Name, Value: a.key,
			Settle: settleAPIKey(a.key, a.secret)})
	}
	if len(rd.apps) > 0 {
		rd.c.note("apps: %s imported as API keys (name = EMQX AppID, secret unchanged, stored salted and hashed as Roost does)", plural(len(rd.apps), "application"))
	}
	var names []string
	for _, a := range rd.admins {
		rd.ds.Records = append(rd.ds.Records, backup.Record{Table: store.TableAdmins, Key: a.Username, Value: a, Settle: settleAdmin(a)})
		names = append(names, a.Username)
	}
	if len(names) > 0 {
		rd.c.note("users: %s (%s) imported with their EMQX 4 passwords: the salted MD5 hash EMQX kept is accepted at login "+
			"(POST /api/v1/login) and replaced by bcrypt at each admin's first successful login",
			plural(len(names), "dashboard admin"), quoteList(names, 10))
	}
	if rd.userIDBoth {
		o := &store.ConfigOverride{V: store.RecordVersion, Key: config.OverrideUserIDType,
			Value: json.RawMessage(`"both"`), UpdatedAt: time.Now().UTC()}
		rd.ds.Records = append(rd.ds.Records, backup.Record{Table: store.TableConfig, Key: o.Key, Value: o, Settle: settleOverride(o)})
	}
	if len(rd.ds.Records) == 0 && len(rd.ds.Problems) == 0 {
		rd.c.note("the file has no records Roost imports")
	}
}

// numberList renders record numbers for a message: "3, 7, 9 and 12 more".
func numberList(ns []int, max int) string {
	var b strings.Builder
	for i, n := range ns {
		if i == max {
			fmt.Fprintf(&b, " and %d more", len(ns)-max)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d", n)
	}
	return b.String()
}
