package protocol

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/, taken from real protocol
// lines: every command, the quoting examples, CRLF, datetimes and junk.

func FuzzTokenize(f *testing.F) {
	f.Add([]byte(`r1 RULE SET r p. shell "echo \"hi\""`))
	f.Fuzz(func(t *testing.T, line []byte) {
		toks, err := Tokenize(line, nil)
		if err != nil {
			if err.Error() != "unterminated quote" {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		var b []byte
		for i, tok := range toks {
			if strings.IndexByte(tok, '\n') >= 0 {
				t.Fatalf("token %q holds an LF", tok)
			}
			if i > 0 {
				b = append(b, ' ')
			}
			b = AppendToken(b, tok)
		}
		again, err := Tokenize(b, nil)
		if err != nil || len(again) != len(toks) || (len(toks) > 0 && !reflect.DeepEqual(again, toks)) {
			t.Fatalf("tokens %q re-written as %q tokenize to %q, %v", toks, b, again, err)
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("r1 SET a.b 2026-03-30 14:00:00"))
	f.Fuzz(func(t *testing.T, line []byte) {
		for _, parse := range []func([]byte) (Command, *Error){Parse, ParseRequest} {
			c, perr := parse(line)
			if perr != nil {
				if perr.Reason == "" || strings.ContainsAny(perr.Reason, "\r\n") {
					t.Fatalf("bad reason %q", perr.Reason)
				}
				reply := AppendError(nil, perr.RID, perr.Reason)
				if bytes.IndexByte(reply, '\n') != len(reply)-1 {
					t.Fatalf("error reply %q is not one line", reply)
				}
				continue
			}
			checkRoundTrip(t, c)
		}
	})
}

func checkRoundTrip(t *testing.T, c Command) {
	t.Helper()
	text := FormatCommand(c)
	again, perr := Parse([]byte(text))
	if c.RID == "AUTH" {
		// ParseRequest only: formatted, it reads as a bare AUTH.
		return
	}
	if perr != nil {
		t.Fatalf("FormatCommand(%#v) = %q does not parse: %v", c, text, perr.Reason)
	}
	if !reflect.DeepEqual(again, c) {
		t.Fatalf("round trip via %q:\n got %#v\nwant %#v", text, again, c)
	}
	if c.Op == OpRuleSet {
		line := AppendRuleLine(nil, c.RID, c.Rule)
		if bytes.IndexByte(line, '\n') != len(line)-1 {
			t.Fatalf("rule line %q is not one line", line)
		}
		if _, err := Tokenize(line[:len(line)-1], nil); err != nil {
			t.Fatalf("rule line %q does not tokenize: %v", line, err)
		}
	}
}

// chunkReader returns data in pieces whose sizes come from sizes.
type chunkReader struct {
	data  []byte
	sizes []byte
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(c.sizes) > 0 {
		n = int(c.sizes[c.i%len(c.sizes)])%32 + 1
		c.i++
	}
	n = copy(p, c.data[:min(n, len(c.data))])
	c.data = c.data[n:]
	return n, nil
}

// expectLines is the Reader's contract as a plain model: split at LF, strip
// one CR before it, lines over maxLine are a LineTooLongError with the
// first token of their first maxLine+2 bytes.
func expectLines(data []byte, maxLine int) []result {
	var out []result
	parts := bytes.Split(data, []byte("\n"))
	for i, p := range parts {
		if i == len(parts)-1 && len(p) == 0 {
			break
		}
		raw := p
		p = bytes.TrimSuffix(p, []byte("\r"))
		if len(p) > maxLine {
			rid := firstToken(raw[:min(len(raw), maxLine+2)])
			out = append(out, result{"", &LineTooLongError{RID: rid, Limit: maxLine}})
		} else {
			out = append(out, ok(string(p)))
		}
	}
	return append(out, eof)
}

func FuzzReader(f *testing.F) {
	f.Add([]byte("r1 STAT\r\nr2 GET j\n"), uint16(8), []byte{3, 1, 7})
	f.Fuzz(func(t *testing.T, data []byte, maxLine uint16, sizes []byte) {
		max := int(maxLine%512) + 1
		r := NewReader(&chunkReader{data: data, sizes: sizes}, max)
		var got []result
		for {
			line, err := r.ReadLine()
			if len(line) > max {
				t.Fatalf("line of %d bytes for maxLine %d", len(line), max)
			}
			if len(r.buf) > max+2 {
				t.Fatalf("buffer grew to %d for maxLine %d", len(r.buf), max)
			}
			got = append(got, result{string(line), err})
			if err != nil && !errors.Is(err, ErrLineTooLong) {
				break
			}
		}
		want := expectLines(data, max)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("maxLine %d, input %q:\n got %v\nwant %v", max, data, got, want)
		}
	})
}
