package config

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Accepted values of the enum keys.
var (
	PasswordHashes = []string{"plain", "sha256", "sha512", "pbkdf2", "bcrypt"}
	SaltPositions  = []string{"prefix", "suffix", "disable"}
	UserIDTypes    = []string{"username", "clientid", "both"}
	NoMatchActions = []string{"allow", "deny"}
	LogLevels      = []string{"debug", "info", "warn", "error"}
)

// MaxPacketSizeLimit is MQTT's largest packet: 1+4 header bytes plus a
// 268435455-byte remaining length.
const MaxPacketSizeLimit = 268435460

// MaxQueuedBytesLimit bounds mqtt.max_queued_bytes: 1 GiB per connection.
const MaxQueuedBytesLimit = 1 << 30

var (
	nodeNameRe     = regexp.MustCompile(`^[A-Za-z0-9_.@:-]+$`)
	listenerNameRe = regexp.MustCompile(`^[a-z0-9_-]+$`)
	hostRe         = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
)

// Validate checks every key and returns all problems at once (errors.Join
// of *KeyError), so an operator fixes a file in one round.
func (c *Config) Validate() error {
	var v validator

	switch {
	case c.Node.Name == "":
		v.add("node.name", "must not be empty (e.g. \"roost@host1\")")
	case len(c.Node.Name) > 255 || !nodeNameRe.MatchString(c.Node.Name):
		v.add("node.name", fmt.Sprintf("expected a name such as \"roost@host1\" (letters, digits and _ . @ : -), got %q", c.Node.Name))
	}

	binds := &bindSet{} // to catch two listeners on one port
	v.listeners("tcp", c.Listeners.TCP, DefaultTCPBind, binds)
	v.listeners("ws", c.Listeners.WS, DefaultWSBind, binds)
	v.listeners("ssl", c.Listeners.SSL, DefaultSSLBind, binds)
	if v.addr("api.bind", c.API.Bind, DefaultAPIBind) {
		v.uniqueBind("api.bind", c.API.Bind, binds)
	}
	if v.addr("cluster.bind", c.Cluster.Bind, DefaultClusterBind) {
		v.uniqueBind("cluster.bind", c.Cluster.Bind, binds)
	}

	if c.Dashboard.DefaultUsername == "" {
		v.add("dashboard.default_username", "must not be empty")
	}

	if a := c.Cluster.Advertise; a != "" && v.addr("cluster.advertise", a, "10.0.0.5:4370") {
		if h, _, _ := net.SplitHostPort(a); isWildcard(h) {
			v.add("cluster.advertise", fmt.Sprintf("expected an address other nodes can dial, not the wildcard %q", a))
		}
	}
	seen := map[string]bool{}
	for i, s := range c.Cluster.Seeds {
		switch {
		case strings.TrimSpace(s) == "" || strings.ContainsAny(s, " \t\r\n"):
			v.add("cluster.seeds", fmt.Sprintf("entry %d: expected a node address without spaces, got %q", i, s))
		case !validHostPort(s):
			v.add("cluster.seeds", fmt.Sprintf("entry %d: expected host:port (a node's cluster.bind address), got %q", i, s))
		case seen[s]:
			v.add("cluster.seeds", fmt.Sprintf("entry %d: %q is listed twice", i, s))
		}
		seen[s] = true
	}

	if t := c.Cluster.TLS; t.Enable {
		for key, val := range map[string]string{"cluster.tls.certfile": t.CertFile, "cluster.tls.keyfile": t.KeyFile, "cluster.tls.cacertfile": t.CACertFile} {
			if val == "" {
				v.add(key, "required when cluster.tls.enable is true")
			}
		}
	}
	v.intRange("cluster.snapshot_threshold", c.Cluster.SnapshotThreshold, 16, 1<<30)
	v.intRange("cluster.trailing_logs", c.Cluster.TrailingLogs, 0, 1<<30)
	v.durationRange("cluster.snapshot_interval", c.Cluster.SnapshotInterval, 100*time.Millisecond, 24*time.Hour)

	v.enum("authn.password_hash", c.Authn.PasswordHash, PasswordHashes)
	v.enum("authn.salt_position", c.Authn.SaltPosition, SaltPositions)
	v.enum("authn.user_id_type", c.Authn.UserIDType, UserIDTypes)
	v.enum("authz.no_match", c.Authz.NoMatch, NoMatchActions)
	v.enum("log.level", c.Log.Level, LogLevels)

	v.intRange("mqtt.max_pending_writes", c.MQTT.MaxPendingWrites, 1, 1<<20)
	v.intRange("mqtt.max_queued_bytes", c.MQTT.MaxQueuedBytes, 1, MaxQueuedBytesLimit)
	v.intRange("mqtt.max_inflight", c.MQTT.MaxInflight, 1, 65535) // MQTT receive maximum is 16 bits
	v.intRange("mqtt.max_packet_size", c.MQTT.MaxPacketSize, 1, MaxPacketSizeLimit)
	v.durationRange("mqtt.max_session_expiry", c.MQTT.MaxSessionExpiry, time.Second, 0xFFFFFFFF*time.Second)
	v.durationRange("mqtt.session_expiry_v3", c.MQTT.SessionExpiryV3, time.Second, 0xFFFFFFFF*time.Second)
	v.nonNegative("mqtt.retained_batch_window", c.MQTT.RetainedBatchWindow)
	v.nonNegative("backup.interval", c.Backup.Interval)
	if c.Backup.Keep < 1 {
		v.add("backup.keep", fmt.Sprintf("must be at least 1, got %d", c.Backup.Keep))
	}
	switch t := c.Backup.Target; {
	case t == "", strings.HasPrefix(t, "/"):
	case strings.HasPrefix(t, "s3://"):
		if b, _, _ := strings.Cut(strings.TrimPrefix(t, "s3://"), "/"); b == "" {
			v.add("backup.target", fmt.Sprintf("%q names no bucket: want s3://bucket/prefix", t))
		}
	default:
		v.add("backup.target", fmt.Sprintf("want an absolute directory path or s3://bucket/prefix, got %q", t))
	}
	if e := c.Backup.S3.Endpoint; e != "" && strings.Contains(e, "://") && !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
		v.add("backup.s3.endpoint", fmt.Sprintf("want https://host[:port] or http://host[:port], got %q", e))
	}
	v.nonNegative("export.interval", c.Export.Interval)
	if c.Export.Keep < 1 {
		v.add("export.keep", fmt.Sprintf("must be at least 1, got %d", c.Export.Keep))
	}

	return v.err()
}

type validator struct{ errs []error }

func (v *validator) add(key, msg string) { v.errs = append(v.errs, &KeyError{Key: key, Msg: msg}) }

func (v *validator) err() error { return errors.Join(v.errs...) }

func (v *validator) enum(key, val string, allowed []string) {
	if !slices.Contains(allowed, val) {
		v.add(key, fmt.Sprintf("expected one of %s, got %q", strings.Join(allowed, "|"), val))
	}
}

func (v *validator) intRange(key string, n, lo, hi int) {
	switch {
	case n < 0:
		v.add(key, fmt.Sprintf("must not be negative, got %d", n))
	case n < lo || n > hi:
		v.add(key, fmt.Sprintf("expected an integer from %d to %d, got %d", lo, hi, n))
	}
}

// durationRange checks min <= d <= max (MQTT expiry intervals are whole
// seconds in 32 bits).
func (v *validator) durationRange(key string, d Duration, min, max time.Duration) {
	if time.Duration(d) < min || time.Duration(d) > max {
		v.add(key, fmt.Sprintf("must be between %s and %s, got %s", min, max, time.Duration(d)))
	}
}

func validHostPort(s string) bool {
	h, p, err := net.SplitHostPort(s)
	if err != nil || h == "" {
		return false
	}
	n, err := strconv.Atoi(p)
	return err == nil && n > 0 && n < 65536
}

func (v *validator) nonNegative(key string, d Duration) {
	if d < 0 {
		v.add(key, fmt.Sprintf("must not be negative, got %s", time.Duration(d)))
	}
}

// addr checks a bind address; the example is shown in the message.
// Port 0 (any free port) is allowed, which tests rely on.
func (v *validator) addr(key, val, example string) bool {
	if val == "" {
		v.add(key, fmt.Sprintf("must be set: expected host:port such as %q", example))
		return false
	}
	host, port, err := net.SplitHostPort(val)
	if err != nil {
		v.add(key, fmt.Sprintf("expected host:port such as %q, got %q", example, val))
		return false
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		v.add(key, fmt.Sprintf("expected host:port with a port from 0 to 65535 (e.g. %q), got %q", example, val))
		return false
	}
	if host != "" && net.ParseIP(host) == nil && !hostRe.MatchString(host) {
		v.add(key, fmt.Sprintf("expected host:port with an IP address or host name (e.g. %q), got %q", example, val))
		return false
	}
	return true
}

func (v *validator) listeners(transport string, ls map[string]ListenerConfig, example string, binds *bindSet) {
	names := make([]string, 0, len(ls))
	for n := range ls {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		l := ls[name]
		key := joinKey("listeners."+transport, name)
		if !listenerNameRe.MatchString(name) || strings.Contains(name, "__") {
			v.add(key, fmt.Sprintf("listener name %q: use lowercase letters, digits, _ and - (it is part of env var names)", name))
			continue
		}
		if transport != "ssl" {
			for _, f := range []struct{ k, val string }{{"certfile", l.CertFile}, {"keyfile", l.KeyFile}, {"cacertfile", l.CACertFile}} {
				if f.val != "" {
					v.add(key+"."+f.k, fmt.Sprintf("only ssl listeners take %s; use listeners.ssl.%s for MQTT over TLS", f.k, name))
				}
			}
		}
		if !l.configured(transport) {
			continue
		}
		if v.addr(key+".bind", l.Bind, example) {
			v.uniqueBind(key+".bind", l.Bind, binds)
		}
		if transport == "ssl" {
			if l.CertFile == "" {
				v.add(key+".certfile", "must be set for an enabled ssl listener (PEM certificate chain); or set enable = false")
			}
			if l.KeyFile == "" {
				v.add(key+".keyfile", "must be set for an enabled ssl listener (PEM private key); or set enable = false")
			}
		}
	}
}

// uniqueBind reports a second listener on a port already taken. A wildcard
// host overlaps every host on the same port.
type bindSet []struct{ bind, key string }

func (v *validator) uniqueBind(key, bind string, binds *bindSet) {
	host, port, _ := net.SplitHostPort(bind)
	if port == "0" {
		return
	}
	for _, o := range *binds {
		oh, op, _ := net.SplitHostPort(o.bind)
		if op == port && (oh == host || isWildcard(oh) || isWildcard(host)) {
			v.add(key, fmt.Sprintf("%q clashes with %s = %q (same port)", bind, o.key, o.bind))
			return
		}
	}
	*binds = append(*binds, struct{ bind, key string }{bind, key})
}

func isWildcard(host string) bool {
	return host == "" || host == "0.0.0.0" || host == "::" || host == "[::]"
}
