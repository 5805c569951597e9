package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// SyntaxError is a config file that is not valid TOML (or defines a key
// twice). It prints as one header line, the bad line with its number,
// and a caret under the column:
//
//	/etc/roost/roost.conf:3:10: TOML syntax error: expected a value, found "="
//	    3 | cookie = =
//	      |          ^
type SyntaxError struct {
	File string
	Line int // 1-based
	Col  int // 1-based, in bytes, as go-toml counts
	Msg  string
	Text string // the bad line, without its newline
}

func (e *SyntaxError) Error() string {
	num := strconv.Itoa(e.Line)
	pad := strings.Repeat(" ", len(num))
	return fmt.Sprintf("%s:%d:%d: %s\n    %s | %s\n    %s | %s^", e.File, e.Line, e.Col, e.Msg,
		num, e.Text, pad, caretIndent(e.Text, e.Col))
}

// caretIndent is the white space that puts a caret under byte column col
// of line: one space per character before it, tabs kept as tabs.
func caretIndent(line string, col int) string {
	before := line[:min(max(col-1, 0), len(line))]
	var b strings.Builder
	for _, r := range before {
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
	}
	if col-1 > len(line) {
		b.WriteString(strings.Repeat(" ", col-1-len(line)))
	}
	return b.String()
}

// newSyntaxError places a go-toml parse error on its line of data. An
// error at the very end of the document (an unclosed array or string:
// nothing but blank lines from it on) is shown at the end of the last
// line that has text, where the fix goes.
func newSyntaxError(file string, data []byte, line, col int, msg string) *SyntaxError {
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	if line > len(lines) || line >= 1 && blankFrom(lines, line-1) {
		line = len(lines)
		for line > 1 && strings.TrimSpace(lines[line-1]) == "" {
			line--
		}
		col = len(strings.TrimRight(lines[line-1], " \t")) + 1
	}
	text := ""
	if line >= 1 && line <= len(lines) {
		text = lines[line-1]
	}
	msg, col = friendlySyntax(msg, text, col)
	return &SyntaxError{File: file, Line: line, Col: col, Msg: "TOML syntax error: " + msg,
		Text: strings.TrimRight(text, " \t")}
}

// blankFrom reports whether lines[i:] are all blank.
func blankFrom(lines []string, i int) bool {
	for _, l := range lines[i:] {
		if strings.TrimSpace(l) != "" {
			return false
		}
	}
	return true
}

// go-toml's messages, of v2.2 and of v2.4 (which reworded many).
var (
	expectedChar = regexp.MustCompile(`^expected character (.)( but the document ended here)?$`)
	gotRune      = regexp.MustCompile(`^expected newline but got U\+[0-9A-F]+ '(.+)'$`)
	badEscape    = regexp.MustCompile(`^invalid escaped? character U\+[0-9A-F]+ '(.+)'$`)
	noValue      = regexp.MustCompile(`^unexpected character U\+[0-9A-F]+( '.*')? at start of value$`)
	quotedRune   = regexp.MustCompile(`^U\+[0-9A-F]+ '(.+)'$`)
)

const escapeHint = `; write \\ for a backslash, or use a 'literal string'`

// friendlySyntax rewords go-toml's parser messages that would mislead an
// operator ("incomplete number" for a missing value) and moves the
// column of an escape error to its backslash. Others pass unchanged.
func friendlySyntax(msg, line string, col int) (string, int) {
	at := ""
	if col >= 1 && col <= len(line) {
		at = line[col-1:]
	}
	switch {
	case msg == "incomplete number" || noValue.MatchString(msg):
		// go-toml (v2.2) tries a number when nothing else fits: the
		// value is missing or is not a TOML value at all.
		tok := token(at)
		switch {
		case tok == "":
			return `expected a value after "="`, col
		case bareWord.MatchString(tok):
			return fmt.Sprintf("expected a value, found %s (a string needs quotes: %q)", tok, tok), col
		}
		return fmt.Sprintf("expected a value, found %q", tok), col
	case msg == "basic strings cannot have new lines" || strings.HasPrefix(msg, "basic string not terminated"):
		return `unterminated string: missing closing " on this line`, col
	case msg == "literal strings cannot have new lines" || msg == "unterminated literal string":
		return `unterminated string: missing closing ' on this line`, col
	case strings.HasPrefix(msg, "multiline basic string not terminated"):
		return `unterminated multi-line string: missing closing """`, col
	case strings.HasPrefix(msg, "multiline literal string not terminated"):
		return `unterminated multi-line string: missing closing '''`, col
	case msg == "expected value, not eof":
		return "expected a value before the end of the file", col
	case msg == "array is incomplete": // v2.4, at the end of the document
		if before := strings.TrimSpace(line[:min(max(col-1, 0), len(line))]); strings.HasSuffix(before, ",") || strings.HasSuffix(before, "[") {
			return "expected a value before the end of the file", col
		}
		return `expected "]" before the end of the file`, col
	case msg == "expected ']' to close table name" && strings.HasPrefix(strings.TrimSpace(line), "["):
		return `missing "]" to close the table header`, col
	case strings.HasPrefix(msg, "unicode point needs") || msg == "non-hex character" ||
		msg == "invalid hexadecimal digit in unicode escape sequence":
		col = backslashBefore(line, col)
		esc := `\u`
		if col >= 1 && col < len(line) {
			esc = line[col-1 : col+1]
		}
		digits := 4
		if esc == `\U` {
			digits = 8
		}
		return fmt.Sprintf("invalid escape %s in a string (%s needs %d hex digits)%s", esc, esc, digits, escapeHint), col
	}
	if m := badEscape.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf(`invalid escape \%s in a string%s`, m[1], escapeHint), backslashBefore(line, col)
	}
	if m := expectedChar.FindStringSubmatch(msg); m != nil {
		if m[2] != "" {
			return fmt.Sprintf("expected %q before the end of the file", m[1]), col
		}
		if m[1] == "]" && strings.HasPrefix(strings.TrimSpace(line), "[") {
			return `missing "]" to close the table header`, col
		}
		return fmt.Sprintf("expected %q", m[1]), col
	}
	if m := gotRune.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("expected the end of the line after the value, found %q (one key = value per line; comments start with #)", m[1]), col
	}
	if r, ok := strings.CutPrefix(msg, "invalid character at start of key: "); ok {
		if m := quotedRune.FindStringSubmatch(r); m != nil {
			r = m[1]
		}
		return fmt.Sprintf("expected a key, found %q", r), col
	}
	return msg, col
}

var bareWord = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.:@/-]*$`)

// token is the text from the start of s up to white space or a comment.
func token(s string) string {
	end := strings.IndexAny(s, " \t#")
	if end < 0 {
		end = len(s)
	}
	tok := s[:end]
	if !utf8.ValidString(tok) {
		return strconv.Quote(tok)
	}
	return tok
}

// backslashBefore is the column of the last backslash at or before col.
func backslashBefore(line string, col int) int {
	end := min(max(col, 0), len(line))
	if i := strings.LastIndexByte(line[:end], '\\'); i >= 0 {
		return i + 1
	}
	return col
}
