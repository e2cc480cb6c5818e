package protocol

import (
	"bytes"
	"errors"
	"strings"
)

// errUnterminatedQuote is the tokenizer's only error.
var errUnterminatedQuote = errors.New("unterminated quote")

// Tokenize splits one line into tokens, appending them to dst[:0], by
// ztick's rules (reference ztick.md §1.3):
//
//   - Tokens are separated by runs of spaces (0x20 only; TAB is an ordinary
//     byte).
//   - A bare token runs until a space or a double quote; a `"` ends it and
//     starts a quoted token, so `ab"cd"` is `ab` and `cd`. Outside quotes a
//     backslash is an ordinary byte.
//   - A quoted token runs from `"` to the next unescaped `"`; inside it a
//     backslash makes the next byte literal (`\"` is `"`, `\\` is `\`, `\n`
//     is the letter n). `""` is an empty token. The next token may start
//     right after the closing quote.
//   - An LF ends the line: anything after it is ignored. (The Reader splits
//     lines, so a line never holds one.)
//
// A missing closing quote, or a backslash as the last byte inside quotes, is
// the error "unterminated quote". A blank line yields no tokens.
//
// Tokens without escapes share the memory of one string copy of the line, so
// a line costs one allocation plus one per token that holds an escape.
func Tokenize(line []byte, dst []string) ([]string, error) {
	dst = dst[:0]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	if len(line) == 0 {
		return dst, nil
	}
	s := string(line)
	i := 0
	for {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i == len(s) {
			return dst, nil
		}
		if s[i] != '"' {
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '"' {
				j++
			}
			dst = append(dst, s[i:j])
			i = j
			continue
		}
		tok, n, err := quoted(s[i:])
		if err != nil {
			return dst, err
		}
		dst = append(dst, tok)
		i += n
	}
}

// quoted reads the quoted token at the start of s (s[0] == '"') and returns
// its value and the number of bytes it took, closing quote included.
func quoted(s string) (string, int, error) {
	// Fast path: no backslash before the closing quote, so the value is a
	// substring of the line.
	for j := 1; j < len(s); j++ {
		switch s[j] {
		case '"':
			return s[1:j], j + 1, nil
		case '\\':
			return quotedEscaped(s, j)
		}
	}
	return "", 0, errUnterminatedQuote
}

// quotedEscaped continues quoted from s[j], the first backslash.
func quotedEscaped(s string, j int) (string, int, error) {
	// Grow only by what is known: growing to len(s) would make a line of
	// many escaped tokens cost quadratic memory.
	var b strings.Builder
	b.Grow(j + 16)
	b.WriteString(s[1:j])
	for ; j < len(s); j++ {
		switch c := s[j]; c {
		case '"':
			return b.String(), j + 1, nil
		case '\\':
			if j+1 == len(s) {
				return "", 0, errUnterminatedQuote
			}
			j++
			b.WriteByte(s[j])
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, errUnterminatedQuote
}

// needsQuote reports whether s must be written as a quoted token to
// re-tokenize as itself.
func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '"', '\\', '\r', '\n':
			return true
		}
	}
	return false
}

// AppendToken appends s as one token: bare when that re-tokenizes to s,
// otherwise quoted with `"` and `\` escaped. An LF, which no line can carry,
// is written as a space.
func AppendToken(dst []byte, s string) []byte {
	if !needsQuote(s) {
		return append(dst, s...)
	}
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, ' ')
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
