package config

import (
	"strconv"
	"strings"
)

// keyLines finds the line of every table and key defined in a TOML text, so
// that problems can name it: BurntSushi/toml keeps key positions private.
//
// It is a scanner, not a parser: it follows table headers (`[a.b]`,
// `[[a]]`), assignments (`k = v`, `a.b = v`, quoted keys) and skips values
// that span lines (arrays and multi-line strings). It is only used for error
// messages on text that BurntSushi/toml has already accepted.
type keyLines map[string]int

// lineKey joins key pieces; NUL cannot occur in a TOML key.
func lineKey(pieces []string) string { return strings.Join(pieces, "\x00") }

func scanKeyLines(text string) keyLines {
	kl := keyLines{}
	var (
		table []string
		vs    valueState
	)
	for n, line := range strings.Split(text, "\n") {
		if vs.open() {
			vs.scan(line)
			continue
		}
		s := strings.Trim(line, " \t\r")
		if s == "" || s[0] == '#' {
			continue
		}
		if s[0] == '[' {
			inner := strings.TrimPrefix(s[1:], "[")
			if keys, rest, ok := parseKey(inner); ok && strings.HasPrefix(rest, "]") {
				table = keys
				kl.record(nil, keys, n+1)
			}
			continue
		}
		keys, rest, ok := parseKey(s)
		if !ok || !strings.HasPrefix(rest, "=") {
			continue
		}
		kl.record(table, keys, n+1)
		vs.scan(rest[1:])
	}
	return kl
}

// record notes line for table+keys and each of its prefixes longer than
// table, keeping the first line seen.
func (kl keyLines) record(table, keys []string, line int) {
	full := append(append([]string(nil), table...), keys...)
	for i := len(table) + 1; i <= len(full); i++ {
		k := lineKey(full[:i])
		if _, seen := kl[k]; !seen {
			kl[k] = line
		}
	}
}

// line returns the line of key, or of its closest defined parent; 0 when
// none is known.
func (kl keyLines) line(key []string) int {
	for i := len(key); i > 0; i-- {
		if l, ok := kl[lineKey(key[:i])]; ok {
			return l
		}
	}
	return 0
}

// parseKey reads a dotted key at the start of s and returns its pieces and
// the rest of s with leading blanks removed.
func parseKey(s string) ([]string, string, bool) {
	var keys []string
	for {
		s = strings.TrimLeft(s, " \t")
		var (
			piece string
			ok    bool
		)
		piece, s, ok = keyPiece(s)
		if !ok {
			return nil, "", false
		}
		keys = append(keys, piece)
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, ".") {
			return keys, s, true
		}
		s = s[1:]
	}
}

func keyPiece(s string) (string, string, bool) {
	if s == "" {
		return "", "", false
	}
	switch s[0] {
	case '"':
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '"':
				v, err := strconv.Unquote(s[:i+1])
				if err != nil {
					v = s[1:i]
				}
				return v, s[i+1:], true
			}
		}
		return "", "", false
	case '\'':
		if i := strings.IndexByte(s[1:], '\''); i >= 0 {
			return s[1 : i+1], s[i+2:], true
		}
		return "", "", false
	}
	i := 0
	for i < len(s) && isBareKeyByte(s[i]) {
		i++
	}
	if i == 0 {
		return "", "", false
	}
	return s[:i], s[i:], true
}

func isBareKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// valueState tracks a value across lines: open brackets and an open
// multi-line string.
type valueState struct {
	depth int    // unclosed [ and {
	ml    string // `"""` or `'''` while inside a multi-line string
}

func (vs *valueState) open() bool { return vs.depth > 0 || vs.ml != "" }

// scan walks one line of a value.
func (vs *valueState) scan(s string) {
	for i := 0; i < len(s); i++ {
		if vs.ml != "" {
			j := strings.Index(s[i:], vs.ml)
			if j < 0 {
				return
			}
			i += j + 2
			vs.ml = ""
			continue
		}
		switch c := s[i]; c {
		case '#':
			return
		case '[', '{':
			vs.depth++
		case ']', '}':
			if vs.depth > 0 {
				vs.depth--
			}
		case '"', '\'':
			if strings.HasPrefix(s[i:], strings.Repeat(string(c), 3)) {
				vs.ml = s[i : i+3]
				i += 2
				continue
			}
			i = skipString(s, i)
		}
	}
}

// skipString returns the index of the closing quote of the one-line string
// starting at s[i], or len(s).
func skipString(s string, i int) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q == '"':
			j++
		case s[j] == q:
			return j
		}
	}
	return len(s)
}
