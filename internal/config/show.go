package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// secretKeys are never printed by Entries: `roost config show` output
// ends up in tickets and chat.
var secretKeys = map[string]bool{"node.cookie": true, "dashboard.default_password": true, "backup.s3.secret_access_key": true}

// defaultNotes say what an empty or computed default means at run time.
var defaultNotes = map[string]string{
	"node.name":                  "roost@<short hostname>; a name already in <data_dir>/node.json wins",
	"node.data_dir":              "found by the install layout, see roost paths",
	"node.cookie":                "generated and kept in <data_dir>/cookie",
	"dashboard.default_password": "random, written to <data_dir>/initial-admin-password",
	"log.file":                   "standard error",
}

// Entry is one config key as `roost config show` prints it.
type Entry struct {
	Key    string // dotted key: listeners.tcp.default.bind
	Value  string // TOML value: "0.0.0.0:1883", true, 1024, "2h", ["a:4370"]
	Source string // "default", "<file>:<line>", or the ROOST_* variable that set it
	Secret bool   // set, but not shown
	Note   string // what a default means (defaultNotes)
}

// Entries lists every key of the loaded configuration with its value and
// where the value came from.
func (l *Loaded) Entries() []Entry {
	return entries(&l.Config, func(key string) string {
		if l.origins != nil {
			if env, ok := l.origins.env[key]; ok {
				return env
			}
			if p, ok := l.origins.pos[key]; ok {
				return fmt.Sprintf("%s:%d", l.origins.file, p.line)
			}
		}
		if key == "node.data_dir" {
			return "install layout: " + l.DataDirRule
		}
		return "default"
	})
}

// DefaultEntries lists every key of the built-in configuration (Default).
func DefaultEntries() []Entry {
	c := Default()
	resolveEnables(&c.Listeners)
	return entries(&c, func(string) string { return "default" })
}

func entries(c *Config, source func(key string) string) []Entry {
	var out []Entry
	walkLeaves(reflect.ValueOf(c).Elem(), "", "", func(key string, v reflect.Value) {
		e := Entry{Key: key, Source: source(key), Value: tomlValue(v)}
		if secretKeys[key] && v.String() != "" {
			e.Secret, e.Value = true, ""
		}
		if e.Source == "default" {
			e.Note = defaultNotes[key]
		}
		out = append(out, e)
	})
	return out
}

// walkLeaves calls fn for every value under v, map entries (named
// listeners) by name. tcp and ws listeners take no certificate keys, so
// those are not listed for them.
func walkLeaves(v reflect.Value, prefix, transport string, fn func(key string, v reflect.Value)) {
	t := v.Type()
	if isLeaf(t) {
		fn(prefix, v)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			name := tagName(t.Field(i))
			if name == "" {
				continue
			}
			if t == reflect.TypeOf(ListenerConfig{}) && transport != "ssl" && name != "enable" && name != "bind" {
				continue
			}
			walkLeaves(v.Field(i), joinKey(prefix, name), transport, fn)
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		if prefix == "listeners.tcp" || prefix == "listeners.ws" || prefix == "listeners.ssl" {
			transport = strings.TrimPrefix(prefix, "listeners.")
		}
		for _, k := range keys {
			walkLeaves(v.MapIndex(k), joinKey(prefix, k.String()), transport, fn)
		}
	}
}

// tomlValue writes a leaf as a TOML value.
func tomlValue(v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return tomlString(shortDuration(time.Duration(v.Int())))
	case v.Type() == boolPtrType:
		return strconv.FormatBool(v.IsNil() || v.Elem().Bool())
	case v.Type() == stringsType:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = tomlString(v.Index(i).String())
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	switch v.Kind() {
	case reflect.String:
		return tomlString(v.String())
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int:
		return strconv.FormatInt(v.Int(), 10)
	}
	return fmt.Sprintf("%q", fmt.Sprint(v.Interface()))
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// shortDuration is d as an operator writes it: 2h, 2m, 1h30m, 2ms.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// FormatEntries renders entries as a TOML document of dotted keys, one
// per line, each with its source as a comment. Secrets are commented out.
func FormatEntries(header string, es []Entry) string {
	lines := make([]string, len(es))
	width := 0
	for i, e := range es {
		if e.Secret {
			lines[i] = fmt.Sprintf("# %s = (set, not shown)", e.Key)
		} else {
			lines[i] = e.Key + " = " + e.Value
		}
		width = max(width, min(len(lines[i]), 60))
	}
	var b strings.Builder
	for _, h := range strings.Split(header, "\n") {
		b.WriteString(strings.TrimRight("# "+h, " ") + "\n")
	}
	for i, e := range es {
		comment := e.Source
		if e.Note != "" {
			comment += ": " + e.Note
		}
		fmt.Fprintf(&b, "%-*s  # %s\n", width, lines[i], comment)
	}
	return b.String()
}
