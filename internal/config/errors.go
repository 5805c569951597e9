package config

import (
	"fmt"
	"sort"
	"strings"
)

// KeyError is one problem with one config key. Its message names where the
// value came from (file and line, or env var), the dotted key and what was
// expected, so an operator can fix it without reading code.
type KeyError struct {
	Key  string // dotted key, e.g. "listeners.tcp.default.bind"
	Msg  string // what is wrong, e.g. `expected host:port such as "0.0.0.0:1883", got "x"`
	File string // config file the value came from, if any
	Line int    // 1-based position in File; 0 when unknown
	Col  int
	Env  string // env var the value came from, if any (wins over File)
}

func (e *KeyError) Error() string {
	switch {
	case e.Env != "":
		return fmt.Sprintf("%s (%s): %s", e.Env, e.Key, e.Msg)
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d:%d: %s: %s", e.File, e.Line, e.Col, e.Key, e.Msg)
	case e.File != "":
		return fmt.Sprintf("%s: %s: %s", e.File, e.Key, e.Msg)
	}
	return e.Key + ": " + e.Msg
}

// position is where a key is written in a config file.
type position struct{ line, col int }

// origins remembers where each key's value came from, to point errors found
// after decoding (validation) at the file line or env var to fix.
type origins struct {
	file string
	pos  map[string]position // keys written in file, and every prefix of them
	env  map[string]string   // key -> env var that set it
}

// decorate fills e's origin from the closest key that has one: the key
// itself, else a key below it (an ssl listener's certfile), else above it.
func (o *origins) decorate(e *KeyError) {
	if e.Env != "" || e.File != "" {
		return
	}
	if o.env != nil {
		if v, ok := o.env[e.Key]; ok {
			e.Env = v
			return
		}
	}
	if o.pos == nil {
		return
	}
	if p, ok := o.pos[e.Key]; ok {
		e.File, e.Line, e.Col = o.file, p.line, p.col
		return
	}
	var below []string
	for k := range o.pos {
		if strings.HasPrefix(k, e.Key+".") {
			below = append(below, k)
		}
	}
	if len(below) > 0 {
		sort.Slice(below, func(i, j int) bool {
			a, b := o.pos[below[i]], o.pos[below[j]]
			return a.line < b.line || a.line == b.line && a.col < b.col
		})
		p := o.pos[below[0]]
		e.File, e.Line, e.Col = o.file, p.line, p.col
		return
	}
	for k := e.Key; strings.Contains(k, "."); {
		k = k[:strings.LastIndex(k, ".")]
		if p, ok := o.pos[k]; ok {
			e.File, e.Line, e.Col = o.file, p.line, p.col
			return
		}
	}
}
