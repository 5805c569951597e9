package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	c := Default()
	checks := []struct {
		key       string
		got, want any
	}{
		{"node.name prefix", strings.HasPrefix(c.Node.Name, "roost@") && !strings.Contains(c.Node.Name, "."), true},
		{"listeners.tcp.default.bind", c.Listeners.TCP["default"].Bind, "0.0.0.0:1883"},
		{"listeners.ws.default.bind", c.Listeners.WS["default"].Bind, "0.0.0.0:8083"},
		{"listeners.ssl", len(c.Listeners.SSL), 0},
		{"api.bind", c.API.Bind, "0.0.0.0:18083"},
		{"api.metrics_auth", c.API.MetricsAuth, true},
		{"dashboard.default_username", c.Dashboard.DefaultUsername, "admin"},
		{"cluster.bind", c.Cluster.Bind, "0.0.0.0:4370"},
		{"authn.enable", c.Authn.Enable, true},
		{"authn.password_hash", c.Authn.PasswordHash, "sha256"},
		{"authn.salt_position", c.Authn.SaltPosition, "prefix"},
		{"authn.user_id_type", c.Authn.UserIDType, "username"},
		{"authz.no_match", c.Authz.NoMatch, "allow"},
		{"mqtt.max_pending_writes", c.MQTT.MaxPendingWrites, 1024},
		{"mqtt.max_queued_bytes", c.MQTT.MaxQueuedBytes, 4194304},
		{"mqtt.max_inflight", c.MQTT.MaxInflight, 1024},
		{"mqtt.max_session_expiry", c.MQTT.MaxSessionExpiry, Duration(2 * time.Hour)},
		{"mqtt.session_expiry_v3", c.MQTT.SessionExpiryV3, Duration(2 * time.Hour)},
		{"mqtt.max_packet_size", c.MQTT.MaxPacketSize, 1048576},
		{"mqtt.retained_batch_window", c.MQTT.RetainedBatchWindow, Duration(2 * time.Millisecond)},
		{"log.level", c.Log.Level, "info"},
		{"backup.keep", c.Backup.Keep, 7},
		{"backup.interval", c.Backup.Interval, Duration(0)},
		{"backup.target", c.Backup.Target, ""},
		{"backup.s3.path_style", c.Backup.S3.PathStyle, false},
		{"export.interval", c.Export.Interval, Duration(0)},
		{"export.keep", c.Export.Keep, 7},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.key, ch.got, ch.want)
		}
	}
	if err := c.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestLoadBuiltInDefaults(t *testing.T) {
	s := newSandbox(t)
	l := s.load()
	if l.ConfigFile != "" || l.ConfigRule != RuleConfigNone {
		t.Errorf("config = %q (%s), want none (built-in defaults)", l.ConfigFile, l.ConfigRule)
	}
	want := Default()
	want.Node.DataDir = filepath.Join(s.opts.WorkDir, "data")
	resolveEnables(&want.Listeners)
	if !reflect.DeepEqual(l.Config, want) {
		t.Errorf("config differs from defaults:\n got %+v\nwant %+v", l.Config, want)
	}
	if len(l.Warnings) != 0 {
		t.Errorf("warnings: %v", l.Warnings)
	}
	if l.NodeNameSet {
		t.Error("NodeNameSet with no file or env")
	}
}

func TestFileDottedKeysAndTables(t *testing.T) {
	s := newSandbox(t)
	s.withConfig(`
node.name = "roost@a"
node.data_dir = "/srv/roost"
listeners.tcp.internal.bind = "127.0.0.1:11883"
cluster.seeds = ["b.example:4370", "c.example:4370"]

[authn]
password_hash = "bcrypt"

[listeners.ws.default]
enable = false

[mqtt]
max_session_expiry = "30m"
retained_batch_window = 0
`)
	l := s.load()
	c := l.Config
	if c.Node.Name != "roost@a" || !l.NodeNameSet {
		t.Errorf("node.name = %q (set %v)", c.Node.Name, l.NodeNameSet)
	}
	if c.Node.DataDir != "/srv/roost" || l.DataDir != "/srv/roost" || l.DataDirRule != RuleDataDirConfig {
		t.Errorf("data dir = %q / %q (%s)", c.Node.DataDir, l.DataDir, l.DataDirRule)
	}
	if got := c.Listeners.TCP["internal"]; got.Bind != "127.0.0.1:11883" || !got.Enabled() {
		t.Errorf("listeners.tcp.internal = %+v", got)
	}
	if got := c.Listeners.TCP["default"]; got.Bind != DefaultTCPBind || !got.Enabled() {
		t.Errorf("listeners.tcp.default lost its default: %+v", got)
	}
	if got := c.Listeners.WS["default"]; got.Bind != DefaultWSBind || got.Enabled() {
		t.Errorf("listeners.ws.default = %+v, want default bind and disabled", got)
	}
	if !reflect.DeepEqual(c.Cluster.Seeds, []string{"b.example:4370", "c.example:4370"}) {
		t.Errorf("cluster.seeds = %q", c.Cluster.Seeds)
	}
	if c.Authn.PasswordHash != "bcrypt" || c.Authn.SaltPosition != "prefix" {
		t.Errorf("authn = %+v", c.Authn)
	}
	if c.MQTT.MaxSessionExpiry != Duration(30*time.Minute) || c.MQTT.RetainedBatchWindow != 0 || c.MQTT.MaxInflight != 1024 {
		t.Errorf("mqtt = %+v", c.MQTT)
	}
	var active []string
	for _, a := range c.Listeners.Active() {
		active = append(active, a.Transport+"."+a.Name)
	}
	if want := []string{"tcp.default", "tcp.internal"}; !reflect.DeepEqual(active, want) {
		t.Errorf("Active() = %v, want %v", active, want)
	}
}

func TestFileInlineTables(t *testing.T) {
	s := newSandbox(t)
	s.withConfig(`listeners.tcp = { default = { bind = "0.0.0.0:2883" }, lan = { bind = "10.0.0.1:1883" } }` + "\n")
	c := s.load().Config
	if c.Listeners.TCP["default"].Bind != "0.0.0.0:2883" || c.Listeners.TCP["lan"].Bind != "10.0.0.1:1883" {
		t.Errorf("listeners.tcp = %+v", c.Listeners.TCP)
	}
}

func TestSSLListener(t *testing.T) {
	s := newSandbox(t)
	s.withConfig(`
[listeners.ssl.default]
certfile = "/etc/roost/certs/cert.pem"
keyfile = "/etc/roost/certs/key.pem"
`)
	l := s.load()
	ssl := l.Config.Listeners.SSL["default"]
	if ssl.Bind != DefaultSSLBind || !ssl.Enabled() {
		t.Errorf("ssl default = %+v, want bind %s, enabled", ssl, DefaultSSLBind)
	}

	// Not configured: stays absent; explicitly off: needs nothing.
	s = newSandbox(t)
	s.withConfig("listeners.ssl.default.enable = false\n")
	if ssl := s.load().Config.Listeners.SSL["default"]; ssl.Enabled() {
		t.Errorf("disabled ssl listener enabled: %+v", ssl)
	}
}

func TestEnvBeatsFile(t *testing.T) {
	s := newSandbox(t)
	s.withConfig(`
node.name = "roost@file"
node.data_dir = "/from/file"
authn.enable = true
listeners.tcp.default.bind = "0.0.0.0:2883"
`)
	s.env("ROOST_NODE__NAME=roost@env", "ROOST_NODE__DATA_DIR=/from/env", "ROOST_AUTHN__ENABLE=false",
		"ROOST_LISTENERS__TCP__DEFAULT__BIND=127.0.0.1:3883")
	l := s.load()
	c := l.Config
	if c.Node.Name != "roost@env" || c.Authn.Enable || c.Listeners.TCP["default"].Bind != "127.0.0.1:3883" {
		t.Errorf("env did not win: %+v", c)
	}
	if l.DataDir != "/from/env" || l.DataDirRule != RuleDataDirEnv {
		t.Errorf("data dir = %q (%s), want /from/env (env)", l.DataDir, l.DataDirRule)
	}
}

func TestEnvValueTypes(t *testing.T) {
	s := newSandbox(t)
	s.env(
		"ROOST_DASHBOARD__DEFAULT_USERNAME=root",               // string
		"ROOST_AUTHN__ENABLE=no",                               // bool
		"ROOST_MQTT__MAX_INFLIGHT=32",                          // int
		"ROOST_MQTT__MAX_SESSION_EXPIRY=90m",                   // Duration
		"ROOST_BACKUP__INTERVAL=0",                             // Duration zero
		"ROOST_CLUSTER__SEEDS=b.example:4370, c.example:4370,", // list, comma-separated
		"ROOST_LISTENERS__WS__DEFAULT__ENABLE=false",           // *bool
		"ROOST_LISTENERS__TCP__INTERNAL__BIND=127.0.0.1:1884",  // new named listener
		"ROOST_LOG__FILE=",                                     // empty: unset
	)
	c := s.load().Config
	if c.Dashboard.DefaultUsername != "root" || c.Authn.Enable || c.MQTT.MaxInflight != 32 ||
		c.MQTT.MaxSessionExpiry != Duration(90*time.Minute) || c.Backup.Interval != 0 {
		t.Errorf("scalars: %+v %+v %+v", c.Dashboard, c.Authn, c.MQTT)
	}
	if !reflect.DeepEqual(c.Cluster.Seeds, []string{"b.example:4370", "c.example:4370"}) {
		t.Errorf("cluster.seeds = %q", c.Cluster.Seeds)
	}
	if ws := c.Listeners.WS["default"]; ws.Enabled() || ws.Bind != DefaultWSBind {
		t.Errorf("ws default = %+v", ws)
	}
	if in := c.Listeners.TCP["internal"]; in.Bind != "127.0.0.1:1884" || !in.Enabled() {
		t.Errorf("tcp internal = %+v", in)
	}
	if c.Log.File != "" {
		t.Errorf("empty env set log.file = %q", c.Log.File)
	}

	s = newSandbox(t)
	s.env(`ROOST_CLUSTER__SEEDS=["x.example:4370", "y.example:4370"]`)
	if got := s.load().Config.Cluster.Seeds; !reflect.DeepEqual(got, []string{"x.example:4370", "y.example:4370"}) {
		t.Errorf("TOML array seeds = %q", got)
	}
	s = newSandbox(t)
	s.withConfig(`cluster.seeds = ["roost@f"]` + "\n")
	s.env(`ROOST_CLUSTER__SEEDS=[]`)
	if got := s.load().Config.Cluster.Seeds; len(got) != 0 {
		t.Errorf("ROOST_CLUSTER__SEEDS=[] left %q", got)
	}
}

func TestEnvEveryKeyReachable(t *testing.T) {
	// Every key of the schema has an env var that maps back to it.
	c := Default()
	c.Listeners.SSL["default"] = ListenerConfig{}
	root := reflect.ValueOf(&c).Elem()
	for _, key := range leafKeys(root, "") {
		name := EnvName(key)
		parts := strings.Split(strings.ToLower(strings.TrimPrefix(name, EnvPrefix)), "__")
		var got string
		if r := atPath(root, parts, "", func(_ reflect.Value, k string) { got = k }); r != pathValue || got != key {
			t.Errorf("%s -> %q (%v), want %s", name, got, r, key)
		}
	}
}

func TestEnvWarnings(t *testing.T) {
	s := newSandbox(t)
	s.env("ROOST_NODE__NAMEX=x", "ROOST_NODE_DATA_DIR=/x", "ROOST_NODE=x", "ROOST_CONFIG=", "PATH=/bin", "ROOST_FOO=")
	l := s.load()
	all := strings.Join(l.Warnings, "\n")
	if len(l.Warnings) != 3 {
		t.Errorf("want 3 warnings, got %d:\n%s", len(l.Warnings), all)
	}
	wantContains(t, all, "ROOST_NODE__NAMEX", "ROOST_NODE_DATA_DIR", "did you mean ROOST_NODE__DATA_DIR?", "ROOST_NODE ignored: node is a table")
	if strings.Contains(all, "ROOST_CONFIG") || strings.Contains(all, "ROOST_FOO") {
		t.Errorf("ROOST_CONFIG or an empty variable warned:\n%s", all)
	}
}

func TestEnvWrongType(t *testing.T) {
	cases := []struct{ env, key, want string }{
		{"ROOST_AUTHN__ENABLE=maybe", "authn.enable", "expected a boolean (true or false), got \"maybe\""},
		{"ROOST_MQTT__MAX_INFLIGHT=lots", "mqtt.max_inflight", "expected an integer"},
		{"ROOST_MQTT__MAX_SESSION_EXPIRY=2", "mqtt.max_session_expiry", "expected a duration"},
		{"ROOST_LISTENERS__SSL__DEFAULT__ENABLE=sure", "listeners.ssl.default.enable", "expected a boolean"},
		{`ROOST_CLUSTER__SEEDS=["a", `, "cluster.seeds", "comma-separated list or a TOML array"},
		{`ROOST_CLUSTER__SEEDS=[1, 2]`, "cluster.seeds", "expected an array of strings"},
		{"ROOST_LISTENERS__TCP__DEFAULT__BIND=nonsense", "listeners.tcp.default.bind", "expected host:port"},
	}
	for _, c := range cases {
		s := newSandbox(t)
		s.env(c.env)
		name, _, _ := strings.Cut(c.env, "=")
		wantContains(t, s.loadErr(), name, c.key, c.want)
	}
}

func TestConfigFlagBeatsEnvAndDiscovery(t *testing.T) {
	s := newSandbox(t)
	s.opts.Executable = s.mkfile("roost/bin/roost", "binary")
	s.mkfile("roost/etc/roost.conf", `node.name = "roost@install"`)
	s.mkfile("etc/roost/roost.conf", `node.name = "roost@package"`)
	envFile := s.mkfile("env.conf", `node.name = "roost@envfile"`)
	s.env("ROOST_CONFIG=" + envFile)

	flag := s.mkfile("flag.conf", `node.name = "roost@flag"`)
	s.opts.ConfigFlag = flag
	l := s.load()
	if l.ConfigFile != flag || l.ConfigRule != RuleConfigFlag || l.Config.Node.Name != "roost@flag" {
		t.Errorf("flag: %q (%s) name %q", l.ConfigFile, l.ConfigRule, l.Config.Node.Name)
	}
	// An explicit file does not imply a layout: data dir falls to ./data.
	if l.DataDir != filepath.Join(s.opts.WorkDir, "data") || l.DataDirRule != RuleDataDirDefault {
		t.Errorf("flag data dir = %q (%s)", l.DataDir, l.DataDirRule)
	}

	s.opts.ConfigFlag = ""
	l = s.load()
	if l.ConfigFile != envFile || l.ConfigRule != RuleConfigEnv || l.Config.Node.Name != "roost@envfile" {
		t.Errorf("ROOST_CONFIG: %q (%s) name %q", l.ConfigFile, l.ConfigRule, l.Config.Node.Name)
	}
}

func TestConfigFlagRelative(t *testing.T) {
	s := newSandbox(t)
	s.mkfile("work/my.conf", `node.name = "roost@rel"`)
	s.opts.ConfigFlag = "my.conf"
	l := s.load()
	if l.ConfigFile != filepath.Join(s.opts.WorkDir, "my.conf") || l.Config.Node.Name != "roost@rel" {
		t.Errorf("relative --config: %q name %q", l.ConfigFile, l.Config.Node.Name)
	}
}

func TestExplicitConfigMissing(t *testing.T) {
	s := newSandbox(t)
	s.opts.ConfigFlag = s.path("nope.conf")
	wantContains(t, s.loadErr(), s.path("nope.conf"), "--config flag", "does not exist")

	s = newSandbox(t)
	s.env("ROOST_CONFIG=" + s.path("gone.conf"))
	wantContains(t, s.loadErr(), s.path("gone.conf"), "ROOST_CONFIG", "does not exist")

	s = newSandbox(t)
	s.opts.ConfigFlag = s.mkdir("adir")
	wantContains(t, s.loadErr(), "is a directory")
}

func TestFileErrors(t *testing.T) {
	cases := []struct {
		name, file string
		wants      []string
	}{
		{"syntax", "node.name = \"roost@a\"\nnode.cookie = \"unterminated\n", []string{":2:", "TOML syntax error"}},
		{"syntax garbage", "[node\nname = 1\n", []string{":1:", "TOML syntax error"}},
		{"duplicate key", "node.name = \"a\"\n[node]\nname = \"b\"\n", []string{":3:1: node.name: defined again (first at line 1)"}},
		{"duplicate table", "[node]\nname = \"a\"\n\n[node]\n", []string{":4:2: node: defined again (first at line 1)"}},
		{"unknown key", "\n[listeners.tcp.default]\nbnd = \"0.0.0.0:1\"\n", []string{":3:1: listeners.tcp.default.bnd: unknown key", `did you mean "bind"`}},
		{"unknown table", "[nodes]\nname = \"x\"\n", []string{":1:", "nodes: unknown key", `did you mean "node"`}},
		{"wrong type", "[authn]\nenable = \"yes\"\n", []string{":2:1: authn.enable: expected a boolean (true or false), got string \"yes\""}},
		{"wrong type int", "mqtt.max_inflight = \"10\"\n", []string{"mqtt.max_inflight: expected an integer, got string \"10\""}},
		{"wrong type list", "cluster.seeds = \"b.example:4370\"\n", []string{"cluster.seeds: expected an array of strings"}},
		{"wrong type list item", "cluster.seeds = [\"a\", 2]\n", []string{"cluster.seeds", "integer 2 at index 1"}},
		{"duration no unit", "mqtt.max_session_expiry = 7200\n", []string{"mqtt.max_session_expiry", "expected a duration", `"7200s"`}},
		{"duration garbage", "backup.interval = \"daily\"\n", []string{"backup.interval: expected a duration", `"daily"`}},
		{"listener not a table", "listeners.tcp.internal = \"0.0.0.0:1\"\n", []string{"listeners.tcp.internal: expected a table"}},
		{"bad address", "listeners.tcp.default.bind = \"nonsense\"\n", []string{":1:1: listeners.tcp.default.bind: expected host:port", `"nonsense"`}},
		{"port out of range", "api.bind = \"0.0.0.0:70000\"\n", []string{"api.bind", "expected host:port", "0 to 65535", `"0.0.0.0:70000"`}},
		{"bad host", "cluster.bind = \"a b:4370\"\n", []string{"cluster.bind", "expected host:port"}},
		{"empty bind", "listeners.ws.default.bind = \"\"\n", []string{"listeners.ws.default.bind: must be set"}},
		{"advertise wildcard", "cluster.advertise = \"0.0.0.0:4370\"\n", []string{"cluster.advertise", "wildcard"}},
		{"port clash", "listeners.ws.default.bind = \"127.0.0.1:1883\"\n", []string{"listeners.ws.default.bind", "clashes with listeners.tcp.default.bind"}},
		{"password_hash", "authn.password_hash = \"md5\"\n", []string{"authn.password_hash: expected one of plain|sha256|sha512|pbkdf2|bcrypt, got \"md5\""}},
		{"salt_position", "authn.salt_position = \"middle\"\n", []string{"authn.salt_position: expected one of prefix|suffix|disable"}},
		{"user_id_type", "authn.user_id_type = \"email\"\n", []string{"authn.user_id_type: expected one of username|clientid|both"}},
		{"no_match", "authz.no_match = \"ignore\"\n", []string{"authz.no_match: expected one of allow|deny"}},
		{"log level", "log.level = \"verbose\"\n", []string{"log.level: expected one of debug|info|warn|error"}},
		{"ssl without cert", "listeners.ssl.default.enable = true\n", []string{"listeners.ssl.default.certfile: must be set", "listeners.ssl.default.keyfile: must be set"}},
		{"ssl bind without cert", "[listeners.ssl.lan]\nbind = \"0.0.0.0:8884\"\n", []string{":1:2: listeners.ssl.lan.certfile: must be set"}},
		{"cert on tcp", "listeners.tcp.default.certfile = \"c.pem\"\n", []string{"listeners.tcp.default.certfile: only ssl listeners"}},
		{"negative int", "mqtt.max_pending_writes = -1\n", []string{"mqtt.max_pending_writes: must not be negative, got -1"}},
		{"zero inflight", "mqtt.max_inflight = 0\n", []string{"mqtt.max_inflight: expected an integer from 1 to 65535, got 0"}},
		{"zero queued bytes", "mqtt.max_queued_bytes = 0\n", []string{"mqtt.max_queued_bytes: expected an integer from 1 to 1073741824, got 0"}},
		{"negative duration", "mqtt.session_expiry_v3 = \"-1h\"\n", []string{"mqtt.session_expiry_v3: must be between 1s and"}},
		{"negative keep", "backup.keep = -3\n", []string{"backup.keep: must be at least 1, got -3"}},
		{"relative target", "backup.target = \"backups\"\n", []string{"backup.target: want an absolute directory path or s3://bucket/prefix"}},
		{"s3 target without bucket", "backup.target = \"s3:///p\"\n", []string{"backup.target: \"s3:///p\" names no bucket"}},
		{"other scheme", "backup.target = \"gs://b/p\"\n", []string{"backup.target: want an absolute directory path or s3://bucket/prefix"}},
		{"s3 endpoint scheme", "backup.s3.endpoint = \"ftp://h\"\n", []string{"backup.s3.endpoint: want https://host[:port]"}},
		{"zero export keep", "export.keep = 0\n", []string{"export.keep: must be at least 1, got 0"}},
		{"negative export interval", "export.interval = \"-1h\"\n", []string{"export.interval: must not be negative"}},
		{"bad node name", "node.name = \"roost at host\"\n", []string{"node.name: expected a name such as"}},
		{"bad listener name", "listeners.tcp.LAN.bind = \"0.0.0.0:1999\"\n", []string{"listeners.tcp.LAN", "lowercase"}},
		{"quoted listener name", "[listeners.tcp.\"my lan\"]\nbind = \"0.0.0.0:1999\"\n", []string{`:1:2: listeners.tcp."my lan": listener name "my lan"`}},
		{"empty key", "'' = 0\n", []string{`:1:1: "": unknown key`}},
		{"bad seed", "cluster.seeds = [\"a:4370\", \"a:4370\"]\n", []string{"cluster.seeds: entry 1", "twice"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSandbox(t)
			file := s.withConfig(c.file)
			msg := s.loadErr()
			wantContains(t, msg, append([]string{file}, c.wants...)...)
		})
	}
}

func TestFileErrorsAllReported(t *testing.T) {
	s := newSandbox(t)
	file := s.withConfig(`
node.nmae = "x"
authn.enable = "yes"
log.level = "loud"
backup.keep = 0
`)
	s.env("ROOST_MQTT__MAX_INFLIGHT=-5")
	msg := s.loadErr()
	wantContains(t, msg,
		file+":2:1: node.nmae: unknown key",
		file+":3:1: authn.enable: expected a boolean",
		file+":4:1: log.level: expected one of",
		file+":5:1: backup.keep: must be at least 1",
		"ROOST_MQTT__MAX_INFLIGHT (mqtt.max_inflight): must not be negative")
	if n := strings.Count(msg, "\n") + 1; n != 5 {
		t.Errorf("want 5 problems, got %d:\n%s", n, msg)
	}
}

func TestValidateNamesKeysWithoutSource(t *testing.T) {
	c := Default()
	c.Authz.NoMatch = "maybe"
	c.Listeners.TCP["default"] = ListenerConfig{Bind: "1.2.3.4"}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad config")
	}
	wantContains(t, err.Error(), "authz.no_match: expected one of allow|deny", "listeners.tcp.default.bind: expected host:port")
	if errs := unjoin(err); len(errs) != 2 {
		t.Errorf("want 2 errors, got %d: %v", len(errs), err)
	}
}

func TestPortZeroAllowed(t *testing.T) {
	s := newSandbox(t)
	s.withConfig("listeners.tcp.default.bind = \"127.0.0.1:0\"\nlisteners.ws.default.bind = \"127.0.0.1:0\"\napi.bind = \"127.0.0.1:0\"\ncluster.bind = \"127.0.0.1:0\"\n")
	s.load()
}

func TestShortCookieWarns(t *testing.T) {
	s := newSandbox(t)
	s.env("ROOST_NODE__COOKIE=secret")
	l := s.load()
	if l.Config.Node.Cookie != "secret" {
		t.Errorf("cookie = %q", l.Config.Node.Cookie)
	}
	wantContains(t, strings.Join(l.Warnings, "\n"), "node.cookie is shorter")
}

func FuzzDecodeFile(f *testing.F) {
	for _, seed := range []string{
		"",
		"node.name = \"roost@a\"\n",
		"[listeners.tcp.default]\nbind = \"0.0.0.0:1883\"\n",
		"listeners.tcp = { x = { bind = \"a:1\" } }\n",
		"cluster.seeds = [\"a\", \"b\"]\nmqtt.max_session_expiry = \"1h\"\n",
		"[node]\nname = 1\n[node]\n",
		"a.b.c = [[1], {x = 1}]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := Default()
		_, errs, err := decodeFile("fuzz.conf", data, &c)
		if err != nil {
			return
		}
		for _, e := range errs {
			if e.Key == "" {
				t.Errorf("key error without a key: %v", e)
			}
		}
		_ = c.Validate()
	})
}

// TestSyntaxErrorOutput: a file that is not TOML gets one header line
// (file:line:col and a message that says what is wrong), the bad line
// with its number, and a caret under the column; nothing else.
func TestSyntaxErrorOutput(t *testing.T) {
	cases := []struct {
		name, file string
		want       string // FILE stands for the config file's path
	}{
		{"value is another =", "[node]\nname = \"a\"\ncookie = =\n[api]\nbind = \"127.0.0.1:1\"\n",
			"FILE:3:10: TOML syntax error: expected a value, found \"=\"\n" +
				"    3 | cookie = =\n" +
				"      |          ^"},
		{"value missing", "node.cookie =\nlog.level = \"info\"\n",
			"FILE:1:14: TOML syntax error: expected a value after \"=\"\n" +
				"    1 | node.cookie =\n" +
				"      |              ^"},
		{"bare word", "\n\nlog.level = debug # the default is info\n",
			"FILE:3:13: TOML syntax error: expected a value, found debug (a string needs quotes: \"debug\")\n" +
				"    3 | log.level = debug # the default is info\n" +
				"      |             ^"},
		{"unterminated string", "node.name = \"roost@a\"\nnode.cookie = \"unterminated\nlog.level = \"info\"\n",
			"FILE:2:28: TOML syntax error: unterminated string: missing closing \" on this line\n" +
				"    2 | node.cookie = \"unterminated\n" +
				"      |                            ^"},
		{"unterminated literal string", "node.cookie = 'abc\n",
			"FILE:1:19: TOML syntax error: unterminated string: missing closing ' on this line\n" +
				"    1 | node.cookie = 'abc\n" +
				"      |                   ^"},
		{"missing ]", "[node\nname = \"a\"\n",
			"FILE:1:6: TOML syntax error: missing \"]\" to close the table header\n" +
				"    1 | [node\n" +
				"      |      ^"},
		{"unclosed array at the end", "cluster.seeds = [\"a:4370\"\n\n",
			"FILE:1:26: TOML syntax error: expected \"]\" before the end of the file\n" +
				"    1 | cluster.seeds = [\"a:4370\"\n" +
				"      |                          ^"},
		{"value missing at the end", "cluster.seeds = [\"a:4370\",\n",
			"FILE:1:27: TOML syntax error: expected a value before the end of the file\n" +
				"    1 | cluster.seeds = [\"a:4370\",\n" +
				"      |                           ^"},
		{"duplicate key", "[node]\nname = \"a\"\nname = \"b\"\n[api]\nbind = \"127.0.0.1:1\"\n",
			"FILE:3:1: node.name: defined again (first at line 2)\n" +
				"    3 | name = \"b\"\n" +
				"      | ^"},
		{"table over a dotted key", "node.x.y = 1\n\n[node.x]\n",
			"FILE:3:2: node.x: defined again (first at line 1)\n" +
				"    3 | [node.x]\n" +
				"      |  ^"},
		{"bad escape", "[node]\ndata_dir = \"D:\\data\"\n",
			"FILE:2:15: TOML syntax error: invalid escape \\d in a string; write \\\\ for a backslash, or use a 'literal string'\n" +
				"    2 | data_dir = \"D:\\data\"\n" +
				"      |               ^"},
		{"windows path", "node.data_dir = \"C:\\Users\\roost\"\n",
			"FILE:1:20: TOML syntax error: invalid escape \\U in a string (\\U needs 8 hex digits); write \\\\ for a backslash, or use a 'literal string'\n" +
				"    1 | node.data_dir = \"C:\\Users\\roost\"\n" +
				"      |                    ^"},
		{"two values", "mqtt.max_inflight = 10 20\n",
			"FILE:1:24: TOML syntax error: expected the end of the line after the value, found \"2\" (one key = value per line; comments start with #)\n" +
				"    1 | mqtt.max_inflight = 10 20\n" +
				"      |                        ^"},
		{"tab indent and wide characters", "[node]\n\tname = \"é\" =\n",
			"FILE:2:14: TOML syntax error: expected the end of the line after the value, found \"=\" (one key = value per line; comments start with #)\n" +
				"    2 | \tname = \"é\" =\n" +
				"      | \t           ^"},
		{"key missing", "= 1\n",
			"FILE:1:1: TOML syntax error: expected a key, found \"=\"\n" +
				"    1 | = 1\n" +
				"      | ^"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSandbox(t)
			file := s.withConfig(c.file)
			want := strings.ReplaceAll(c.want, "FILE", file)
			if got := s.loadErr(); got != want {
				t.Errorf("error:\n%s\nwant exactly:\n%s", got, want)
			}
		})
	}
}
