package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Env var names: ROOST_ + the key's parts in upper case joined by "__"
// (node.data_dir -> ROOST_NODE__DATA_DIR).
const (
	EnvPrefix = "ROOST_"
	EnvConfig = "ROOST_CONFIG" // config file path; not a key
)

// nonKeyEnv are ROOST_ variables that are not config keys, so no warning.
var nonKeyEnv = map[string]bool{EnvConfig: true, "ROOST_API_KEY": true}

// EnvName returns the env var that overrides a dotted key.
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "__"))
}

// envMap turns os.Environ()-style pairs into a map; the first of duplicate
// names wins, as with os.Getenv.
func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		if _, dup := m[k]; !dup {
			m[k] = v
		}
	}
	return m
}

// applyEnv applies every ROOST_* variable that names a key to c, recording
// which key each set in setBy. Variables naming no key become warnings; an
// empty value counts as unset, so `ROOST_X=` in a compose file is harmless.
func applyEnv(c *Config, env map[string]string, setBy map[string]string) (warnings []string, errs []*KeyError) {
	names := make([]string, 0, len(env))
	for k := range env {
		if strings.HasPrefix(k, EnvPrefix) && !nonKeyEnv[k] {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	root := reflect.ValueOf(c).Elem()
	for _, name := range names {
		val := env[name]
		if val == "" {
			continue
		}
		parts := strings.Split(strings.ToLower(strings.TrimPrefix(name, EnvPrefix)), "__")
		var keyErrs []*KeyError
		var key string
		r := atPath(root, parts, "", func(leaf reflect.Value, k string) {
			key = k
			raw, kerr := envValue(leaf.Type(), k, val)
			if kerr != nil {
				keyErrs = append(keyErrs, kerr)
				return
			}
			keyErrs = append(keyErrs, assign(leaf, k, raw)...)
		})
		switch r {
		case pathValue:
			setBy[key] = name
			for _, e := range keyErrs {
				e.Env = name
			}
			errs = append(errs, keyErrs...)
		case pathTable:
			warnings = append(warnings, fmt.Sprintf("env %s ignored: %s is a table, not a key; set its keys instead (e.g. %s)",
				name, strings.Join(parts, "."), suggestEnvUnder(root, strings.Join(parts, "."))))
		default:
			w := fmt.Sprintf("env %s ignored: it names no config key", name)
			if s := suggestEnv(root, name); s != "" {
				w += fmt.Sprintf(" (did you mean %s?)", s)
			}
			warnings = append(warnings, w)
		}
	}
	return warnings, errs
}

// envValue converts an env string to what assign expects for type t.
func envValue(t reflect.Type, key, s string) (any, *KeyError) {
	bad := func() *KeyError {
		return &KeyError{Key: key, Msg: fmt.Sprintf("expected %s, got %q", expected(t), s)}
	}
	switch {
	case t == durationType:
		return strings.TrimSpace(s), nil
	case t == boolPtrType:
		b, ok := parseBool(s)
		if !ok {
			return nil, bad()
		}
		return b, nil
	case t == stringsType:
		return envList(key, s)
	}
	switch t.Kind() {
	case reflect.String:
		return s, nil
	case reflect.Bool:
		b, ok := parseBool(s)
		if !ok {
			return nil, bad()
		}
		return b, nil
	case reflect.Int:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, bad()
		}
		return n, nil
	}
	return nil, bad()
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes", "on":
		return true, true
	case "false", "0", "no", "off":
		return false, true
	}
	return false, false
}

// envList reads `a:4370, b:4370` or a TOML array literal `["a:4370"]`.
func envList(key, s string) (any, *KeyError) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "[") {
		var doc struct {
			V []any `toml:"v"`
		}
		if err := toml.Unmarshal([]byte("v = "+s), &doc); err != nil {
			return nil, &KeyError{Key: key, Msg: fmt.Sprintf("expected a comma-separated list or a TOML array of strings, got %q", s)}
		}
		return doc.V, nil
	}
	out := []any{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out, nil
}

// suggestEnv finds the key env var that differs from name only in
// underscores (ROOST_NODE_DATA_DIR -> ROOST_NODE__DATA_DIR).
func suggestEnv(root reflect.Value, name string) string {
	squash := func(s string) string { return strings.ReplaceAll(strings.ToUpper(s), "_", "") }
	want := squash(name)
	for _, k := range leafKeys(root, "") {
		if e := EnvName(k); squash(e) == want {
			return e
		}
	}
	return ""
}

func suggestEnvUnder(root reflect.Value, table string) string {
	for _, k := range leafKeys(root, "") {
		if strings.HasPrefix(k, table+".") {
			return EnvName(k)
		}
	}
	return EnvName(table + ".<key>")
}
