package config

import (
	"strconv"
	"strings"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Key is the dotted TOML key ("log.level"); "" for a syntax error.
	Key string
	// Line is the 1-based line of Key in the file, 0 when unknown or when
	// the value did not come from a file.
	Line int
	// Msg says what is wrong, in lower case.
	Msg string
}

// format writes the problem as `[path:line: ]key: msg`.
func (p Problem) format(path string) string {
	var b strings.Builder
	if path != "" {
		b.WriteString(path)
		b.WriteByte(':')
		if p.Line > 0 {
			b.WriteString(strconv.Itoa(p.Line))
			b.WriteByte(':')
		}
		b.WriteByte(' ')
	} else if p.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteString(": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error is every problem found in a configuration. Its message has one
// problem per line, each `path:line: key: msg` (path and line when known).
type Error struct {
	// Path is the config file, "" for Validate on values not from a file.
	Path     string
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.format(e.Path)
	}
	return strings.Join(lines, "\n")
}

// problems collects Problems.
type problems []Problem

func (ps *problems) add(key, msg string) { *ps = append(*ps, Problem{Key: key, Msg: msg}) }
