package config

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The file and the env both go through assign, so they agree on which keys
// exist and what type each has, and every error names the dotted key.
// (go-toml's own strict decoding stops at the first error and names Go
// struct fields, not keys.)

var (
	durationType = reflect.TypeOf(Duration(0))
	boolPtrType  = reflect.TypeOf((*bool)(nil))
	stringsType  = reflect.TypeOf([]string(nil))
)

// isLeaf reports whether t holds a value rather than a table of keys.
func isLeaf(t reflect.Type) bool {
	switch {
	case t == durationType, t == boolPtrType, t == stringsType:
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int:
		return true
	}
	return false
}

// expected describes the TOML value a field of type t takes.
func expected(t reflect.Type) string {
	switch {
	case t == durationType:
		return `a duration such as "30s" or "1h"`
	case t == boolPtrType:
		return "a boolean (true or false)"
	case t == stringsType:
		return `an array of strings such as ["a", "b"]`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Int:
		return "an integer"
	}
	return "a table"
}

// describe names the TOML type (and short value) of a decoded value.
func describe(raw any) string {
	switch x := raw.(type) {
	case string:
		return fmt.Sprintf("string %q", x)
	case int64:
		return fmt.Sprintf("integer %d", x)
	case float64:
		return fmt.Sprintf("float %v", x)
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date-time"
	}
	return fmt.Sprintf("a %T", raw)
}

func mismatch(key string, t reflect.Type, raw any) *KeyError {
	return &KeyError{Key: key, Msg: fmt.Sprintf("expected %s, got %s", expected(t), describe(raw))}
}

// assign stores raw (as go-toml decodes into map[string]any) into v, the
// value of key. Tables merge into what v holds, so a file that sets
// listeners.tcp.default.bind keeps the other defaults.
func assign(v reflect.Value, key string, raw any) []*KeyError {
	t := v.Type()
	switch {
	case t == durationType:
		switch x := raw.(type) {
		case string:
			d, err := time.ParseDuration(x)
			if err != nil {
				return []*KeyError{mismatch(key, t, raw)}
			}
			v.SetInt(int64(d))
		case int64:
			if x != 0 { // 0 is unambiguous; any other bare number lacks a unit
				return []*KeyError{{Key: key, Msg: fmt.Sprintf(`expected %s, got integer %d (add a unit, e.g. "%ds")`, expected(t), x, x)}}
			}
			v.SetInt(0)
		default:
			return []*KeyError{mismatch(key, t, raw)}
		}
		return nil
	case t == boolPtrType:
		b, ok := raw.(bool)
		if !ok {
			return []*KeyError{mismatch(key, t, raw)}
		}
		v.Set(reflect.ValueOf(&b))
		return nil
	case t == stringsType:
		arr, ok := raw.([]any)
		if !ok {
			return []*KeyError{mismatch(key, t, raw)}
		}
		out := make([]string, 0, len(arr))
		for i, el := range arr {
			s, ok := el.(string)
			if !ok {
				return []*KeyError{{Key: key, Msg: fmt.Sprintf("expected %s, got %s at index %d", expected(t), describe(el), i)}}
			}
			out = append(out, s)
		}
		v.Set(reflect.ValueOf(out))
		return nil
	}
	switch t.Kind() {
	case reflect.String:
		s, ok := raw.(string)
		if !ok {
			return []*KeyError{mismatch(key, t, raw)}
		}
		v.SetString(s)
	case reflect.Bool:
		b, ok := raw.(bool)
		if !ok {
			return []*KeyError{mismatch(key, t, raw)}
		}
		v.SetBool(b)
	case reflect.Int:
		n, ok := raw.(int64)
		if !ok {
			return []*KeyError{mismatch(key, t, raw)}
		}
		if v.OverflowInt(n) {
			return []*KeyError{{Key: key, Msg: fmt.Sprintf("integer %d is out of range", n)}}
		}
		v.SetInt(n)
	case reflect.Struct:
		m, ok := raw.(map[string]any)
		if !ok {
			return []*KeyError{mismatch(key, t, raw)}
		}
		var errs []*KeyError
		for _, k := range sortedKeys(m) {
			sub := joinKey(key, k)
			i, ok := fieldIndex(t, k)
			if !ok {
				errs = append(errs, unknownKey(sub, k, tableKeys(t)))
				continue
			}
			errs = append(errs, assign(v.Field(i), sub, m[k])...)
		}
		return errs
	case reflect.Map:
		m, ok := raw.(map[string]any)
		if !ok {
			return []*KeyError{mismatch(key, t, raw)}
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(t))
		}
		var errs []*KeyError
		for _, k := range sortedKeys(m) {
			el := reflect.New(t.Elem()).Elem()
			if old := v.MapIndex(reflect.ValueOf(k)); old.IsValid() {
				el.Set(old)
			}
			errs = append(errs, assign(el, joinKey(key, k), m[k])...)
			v.SetMapIndex(reflect.ValueOf(k), el)
		}
		return errs
	default:
		panic("config: unsupported field type " + t.String() + " at " + key)
	}
	return nil
}

// pathResult says what a dotted path names in Config.
type pathResult int

const (
	pathValue    pathResult = iota // a key holding a value
	pathTable                      // a table (struct or listener map), not a value
	pathNotFound                   // nothing
)

// atPath walks parts from v and calls set on the leaf value, creating map
// entries (named listeners) on the way. Nothing is created unless the whole
// path names a value.
func atPath(v reflect.Value, parts []string, key string, set func(leaf reflect.Value, key string)) pathResult {
	t := v.Type()
	if len(parts) == 0 {
		if isLeaf(t) {
			set(v, key)
			return pathValue
		}
		return pathTable
	}
	if isLeaf(t) {
		return pathNotFound
	}
	switch t.Kind() {
	case reflect.Struct:
		i, ok := fieldIndex(t, parts[0])
		if !ok {
			return pathNotFound
		}
		return atPath(v.Field(i), parts[1:], joinKey(key, parts[0]), set)
	case reflect.Map:
		if parts[0] == "" {
			return pathNotFound
		}
		k := reflect.ValueOf(parts[0])
		el := reflect.New(t.Elem()).Elem()
		if old := v.MapIndex(k); old.IsValid() {
			el.Set(old)
		}
		r := atPath(el, parts[1:], joinKey(key, parts[0]), set)
		if r == pathValue {
			if v.IsNil() {
				v.Set(reflect.MakeMap(t))
			}
			v.SetMapIndex(k, el)
		}
		return r
	}
	return pathNotFound
}

// leafKeys lists the dotted keys of every value under v, with map entries
// by their current names (listeners.tcp.default.bind).
func leafKeys(v reflect.Value, prefix string) []string {
	t := v.Type()
	if isLeaf(t) {
		return []string{prefix}
	}
	var out []string
	switch t.Kind() {
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if name := tagName(t.Field(i)); name != "" {
				out = append(out, leafKeys(v.Field(i), joinKey(prefix, name))...)
			}
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			out = append(out, leafKeys(v.MapIndex(k), joinKey(prefix, k.String()))...)
		}
	}
	return out
}

func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

func fieldIndex(t reflect.Type, name string) (int, bool) {
	for i := 0; i < t.NumField(); i++ {
		if tagName(t.Field(i)) == name {
			return i, true
		}
	}
	return 0, false
}

func tableKeys(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		if n := tagName(t.Field(i)); n != "" {
			out = append(out, n)
		}
	}
	return out
}

func unknownKey(key, name string, known []string) *KeyError {
	msg := "unknown key"
	if s := closest(name, known); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return &KeyError{Key: key, Msg: msg}
}

// closest returns the candidate within a small edit distance of name, if any.
func closest(name string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(name), c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// joinKey appends one part to a dotted key, quoting it as TOML would when
// it is not a bare key (listeners.tcp."my listener").
func joinKey(prefix, k string) string {
	if !bareKeyRe.MatchString(k) {
		k = strconv.Quote(k)
	}
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

var bareKeyRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
