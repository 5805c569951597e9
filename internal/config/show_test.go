package config

import (
	"reflect"
	"strings"
	"testing"
)

func entryMap(es []Entry) map[string]Entry {
	m := make(map[string]Entry, len(es))
	for _, e := range es {
		m[e.Key] = e
	}
	return m
}

// TestEntriesSourcesAndSecrets: each key names where its value came from
// (file line, env var, default), secrets are never printed, and the
// printed document, loaded back as a config file, gives the same values.
func TestEntriesSourcesAndSecrets(t *testing.T) {
	s := newSandbox(t)
	conf := s.withConfig(`node.cookie = "a-long-cluster-secret-0123456789"
dashboard.default_password = "first-admin-pw"

[authn]
password_hash = "bcrypt"

[backup.s3]
secret_access_key = "s3-secret-key-0123456789"

[listeners.ssl.default]
certfile = "/etc/roost/certs/s.pem"
keyfile = "/etc/roost/certs/s.key"
`)
	s.env("ROOST_CLUSTER__SEEDS=a:4370, b:4370", "ROOST_MQTT__MAX_SESSION_EXPIRY=1h30m",
		"ROOST_LISTENERS__TCP__INTERNAL__BIND=127.0.0.1:1884", "ROOST_NODE__DATA_DIR="+s.path("d"))
	l := s.load()
	got := entryMap(l.Entries())

	want := map[string][2]string{ // key -> value, source
		"authn.password_hash":            {`"bcrypt"`, conf + ":5"},
		"listeners.ssl.default.certfile": {`"/etc/roost/certs/s.pem"`, conf + ":11"},
		"listeners.ssl.default.bind":     {`"0.0.0.0:8883"`, "default"},
		"listeners.ssl.default.enable":   {"true", "default"},
		"cluster.seeds":                  {`["a:4370", "b:4370"]`, "ROOST_CLUSTER__SEEDS"},
		"mqtt.max_session_expiry":        {`"1h30m"`, "ROOST_MQTT__MAX_SESSION_EXPIRY"},
		"listeners.tcp.internal.bind":    {`"127.0.0.1:1884"`, "ROOST_LISTENERS__TCP__INTERNAL__BIND"},
		"listeners.tcp.internal.enable":  {"true", "default"},
		"node.data_dir":                  {`"` + s.path("d") + `"`, "ROOST_NODE__DATA_DIR"},
		"cluster.snapshot_interval":      {`"2m"`, "default"},
		"mqtt.retained_batch_window":     {`"2ms"`, "default"},
	}
	for k, w := range want {
		e, ok := got[k]
		if !ok {
			t.Errorf("%s missing from Entries", k)
			continue
		}
		if e.Value != w[0] || e.Source != w[1] {
			t.Errorf("%s = %s (%s), want %s (%s)", k, e.Value, e.Source, w[0], w[1])
		}
	}
	if _, ok := got["listeners.tcp.default.certfile"]; ok {
		t.Error("tcp listeners take no certfile, but Entries lists listeners.tcp.default.certfile")
	}

	out := FormatEntries("header", l.Entries())
	for _, secret := range []string{"a-long-cluster-secret", "first-admin-pw", "s3-secret-key"} {
		if strings.Contains(out, secret) {
			t.Errorf("output shows a secret %q:\n%s", secret, out)
		}
	}
	for _, k := range []string{"node.cookie", "dashboard.default_password", "backup.s3.secret_access_key"} {
		if e := got[k]; !e.Secret || e.Value != "" {
			t.Errorf("%s: %+v, want a secret without value", k, e)
		}
	}

	// The output is a config file: loaded back, every value is the same.
	s2 := newSandbox(t)
	s2.withConfig(out)
	back := entryMap(s2.load().Entries())
	for k, e := range got {
		if e.Secret {
			continue
		}
		if back[k].Value != e.Value {
			t.Errorf("%s: %s after loading the output back, want %s", k, back[k].Value, e.Value)
		}
	}
}

// TestDefaultEntriesAreDefault: --defaults lists Default() key by key,
// every source "default", with enables resolved by the transport's rule.
func TestDefaultEntriesAreDefault(t *testing.T) {
	es := DefaultEntries()
	var keys []string
	for _, e := range es {
		if e.Source != "default" {
			t.Errorf("%s: source %q", e.Key, e.Source)
		}
		keys = append(keys, e.Key)
	}
	c := Default()
	var all []string
	for _, k := range leafKeys(reflect.ValueOf(&c).Elem(), "") {
		if strings.HasPrefix(k, "listeners.tcp.") || strings.HasPrefix(k, "listeners.ws.") {
			if !strings.HasSuffix(k, ".enable") && !strings.HasSuffix(k, ".bind") {
				continue
			}
		}
		all = append(all, k)
	}
	if !reflect.DeepEqual(keys, all) {
		t.Errorf("DefaultEntries keys\n%v\nwant\n%v", keys, all)
	}
	m := entryMap(es)
	if m["listeners.tcp.default.enable"].Value != "true" || m["api.bind"].Value != `"`+DefaultAPIBind+`"` {
		t.Errorf("defaults: %+v %+v", m["listeners.tcp.default.enable"], m["api.bind"])
	}
}
