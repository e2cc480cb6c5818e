package protocol

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// result is what one ReadLine returned.
type result struct {
	line string
	err  error
}

// readAll calls ReadLine until io.EOF (or another error repeats) and returns
// every result, io.EOF included.
func readAll(t *testing.T, r *Reader) []result {
	t.Helper()
	var out []result
	for i := 0; i < 10000; i++ {
		line, err := r.ReadLine()
		if errors.Is(err, ErrLineTooLong) {
			err = ErrLineTooLong // the request ids: TestReaderTooLongRID
		}
		out = append(out, result{string(line), err})
		if err != nil && err != ErrLineTooLong {
			return out
		}
	}
	t.Fatal("ReadLine did not reach EOF")
	return nil
}

func ok(s string) result { return result{s, nil} }

var (
	tooLong = result{"", ErrLineTooLong}
	eof     = result{"", io.EOF}
)

func TestReader(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		maxLine int
		want    []result
	}{
		{"empty input", "", 10, []result{eof}},
		{"one line", "r1 STAT\n", 10, []result{ok("r1 STAT"), eof}},
		{"pipelined lines", "a\nb\nc\n", 10, []result{ok("a"), ok("b"), ok("c"), eof}},
		{"blank lines", "\n\n", 10, []result{ok(""), ok(""), eof}},
		{"CRLF", "r1 STAT\r\nr2 GET j\r\n", 10, []result{ok("r1 STAT"), ok("r2 GET j"), eof}},
		{"CR only before LF stripped", "a\rb\r\n", 10, []result{ok("a\rb"), eof}},
		{"only one CR stripped", "a\r\r\n", 10, []result{ok("a\r"), eof}},
		{"unterminated last line", "a\nbc", 10, []result{ok("a"), ok("bc"), eof}},
		{"unterminated last line with CR", "bc\r", 10, []result{ok("bc"), eof}},
		{"exactly max", "0123456789\n", 10, []result{ok("0123456789"), eof}},
		{"exactly max with CRLF", "0123456789\r\n", 10, []result{ok("0123456789"), eof}},
		{"one over max", "0123456789a\nok\n", 10, []result{tooLong, ok("ok"), eof}},
		{"one over max with CRLF", "0123456789a\r\nok\n", 10, []result{tooLong, ok("ok"), eof}},
		{"far over max then valid", strings.Repeat("x", 1000) + "\nr1 GET j\n", 10, []result{tooLong, ok("r1 GET j"), eof}},
		{"two long lines", strings.Repeat("x", 50) + "\n" + strings.Repeat("y", 50) + "\nz\n", 10, []result{tooLong, tooLong, ok("z"), eof}},
		{"long line at EOF", strings.Repeat("x", 50), 10, []result{tooLong, eof}},
		{"one over max at EOF", "0123456789a", 10, []result{tooLong, eof}},
		{"max 1", "a\nbb\nc", 1, []result{ok("a"), tooLong, ok("c"), eof}},
		{"quotes do not hide LF", "a \"b\nc\"\n", 10, []result{ok("a \"b"), ok("c\""), eof}},
	}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
		"data err": iotest.DataErrReader,
	}
	for _, tt := range tests {
		for rname, wrap := range readers {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				r := NewReader(wrap(strings.NewReader(tt.input)), tt.maxLine)
				got := readAll(t, r)
				if len(got) != len(tt.want) {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
				for i := range got {
					if got[i] != tt.want[i] {
						t.Fatalf("result %d = %v, want %v (all: %v)", i, got[i], tt.want[i], got)
					}
				}
				if len(r.buf) > tt.maxLine+2 {
					t.Fatalf("buffer grew to %d for maxLine %d", len(r.buf), tt.maxLine)
				}
			})
		}
	}
}

// endless is an io.Reader producing a line that never ends.
type endless struct{ n int }

func (e *endless) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return copy(p, "\nr1 STAT\n"), io.EOF
	}
	n := min(len(p), e.n)
	for i := range p[:n] {
		p[i] = 'x'
	}
	e.n -= n
	return n, nil
}

// TestReaderBoundedMemory: a 64 MiB line goes through a 100-byte limit
// without the buffer growing (docs/protocol.md, bounded buffers).
func TestReaderBoundedMemory(t *testing.T) {
	r := NewReader(&endless{n: 64 << 20}, 100)
	if _, err := r.ReadLine(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("err = %v, want ErrLineTooLong", err)
	}
	if len(r.buf) > 102 {
		t.Fatalf("buffer is %d bytes", len(r.buf))
	}
	line, err := r.ReadLine()
	if err != nil || string(line) != "r1 STAT" {
		t.Fatalf("next line = %q, %v", line, err)
	}
}

func TestReaderGrowsToLimit(t *testing.T) {
	long := strings.Repeat("y", 20000)
	r := NewReader(strings.NewReader(long+"\n"), 20000)
	line, err := r.ReadLine()
	if err != nil || string(line) != long {
		t.Fatalf("ReadLine = %d bytes, %v", len(line), err)
	}
	if len(r.buf) > 20002 {
		t.Fatalf("buffer is %d bytes", len(r.buf))
	}
}

func TestReaderDefaultMax(t *testing.T) {
	r := NewReader(strings.NewReader(strings.Repeat("z", DefaultMaxLine+1)+"\n"), 0)
	if _, err := r.ReadLine(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("err = %v", err)
	}
}

func TestReaderBuffered(t *testing.T) {
	r := NewReader(strings.NewReader("a\nbb\nccc\n"), 10)
	want := []int{7, 4, 0}
	for i, w := range want {
		if _, err := r.ReadLine(); err != nil {
			t.Fatal(err)
		}
		if got := r.Buffered(); got != w {
			t.Fatalf("after line %d Buffered() = %d, want %d", i, got, w)
		}
	}
}

// errAfter returns data, then err (not io.EOF), then more data.
type errAfter struct {
	parts []string
	err   error
	calls int
}

func (e *errAfter) Read(p []byte) (int, error) {
	e.calls++
	if e.calls == 2 {
		return 0, e.err
	}
	if len(e.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, e.parts[0])
	e.parts = e.parts[1:]
	return n, nil
}

// TestReaderRecoversFromError: a non-EOF error (e.g. a read deadline) is
// returned after the buffered lines, and the partial line survives it.
func TestReaderRecoversFromError(t *testing.T) {
	boom := errors.New("timeout")
	r := NewReader(&errAfter{parts: []string{"a\npar", "tial\n"}, err: boom}, 20)
	got := readAll(t, r)
	want := []result{ok("a"), {"", boom}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %v", got)
	}
	got = readAll(t, r)
	if len(got) != 2 || got[0] != ok("partial") || got[1] != eof {
		t.Fatalf("after error got %v", got)
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

func TestReaderNoProgress(t *testing.T) {
	r := NewReader(zeroReader{}, 10)
	if _, err := r.ReadLine(); err != io.ErrNoProgress {
		t.Fatalf("err = %v, want io.ErrNoProgress", err)
	}
}

type liar struct{}

func (liar) Read(p []byte) (int, error) { return len(p) + 5, nil }

func TestReaderBadCount(t *testing.T) {
	r := NewReader(liar{}, 10)
	if _, err := r.ReadLine(); err == nil {
		t.Fatal("no error for an invalid Read count")
	}
}

func TestReaderThenParse(t *testing.T) {
	in := strings.Repeat("j", 200) + "\r\nr1 SET a.b 2026-03-30 14:00:00\r\n"
	r := NewReader(iotest.OneByteReader(strings.NewReader(in)), 64)
	if _, err := r.ReadLine(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("err = %v", err)
	}
	line, err := r.ReadLine()
	if err != nil {
		t.Fatal(err)
	}
	c, perr := Parse(line)
	if perr != nil || c.Op != OpSet || c.ID != "a.b" || c.Execution != 1774879200000000000 {
		t.Fatalf("Parse(%q) = %#v, %v", line, c, perr)
	}
}

// TestReaderTooLongRID: the error for an over-long line names the limit and
// the line's request id when its first token was complete.
func TestReaderTooLongRID(t *testing.T) {
	tests := []struct {
		name, input string
		rid         string
	}{
		{"rid then long", "r7 SET " + strings.Repeat("x", 100) + " 1\n", "r7"},
		{"quoted rid", `"r 7" SET ` + strings.Repeat("x", 100) + "\n", "r 7"},
		{"one long token", strings.Repeat("x", 100) + "\n", ""},
		{"rid longer than the buffer", strings.Repeat("r", 100) + " SET\n", ""},
		{"unterminated quoted rid", `"r7 SET ` + strings.Repeat("x", 100) + "\n", ""},
		{"rid then unterminated quote", `r7 "` + strings.Repeat("x", 100) + "\n", "r7"},
		{"long last line at EOF", "r8 " + strings.Repeat("x", 100), "r8"},
		{"just over the limit", "r9 " + strings.Repeat("x", 30), "r9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, rd := range []io.Reader{strings.NewReader(tt.input), iotest.OneByteReader(strings.NewReader(tt.input))} {
				_, err := NewReader(rd, 32).ReadLine()
				var tl *LineTooLongError
				if !errors.As(err, &tl) || tl.RID != tt.rid || tl.Limit != 32 {
					t.Fatalf("err = %#v, want RID %q limit 32", err, tt.rid)
				}
				if err.Error() != "line too long (limit 32 bytes)" || !errors.Is(err, ErrLineTooLong) {
					t.Fatalf("err %q", err)
				}
			}
		})
	}
}

// TestReaderLineBuffered: true exactly when the next ReadLine needs no
// read: a whole line is buffered (a partial one is not enough), or a read
// error waits.
func TestReaderLineBuffered(t *testing.T) {
	r := NewReader(&chunkReader{data: []byte("a\nbb\ncc"), sizes: []byte{5}}, 10)
	if r.LineBuffered() {
		t.Fatal("LineBuffered before any read")
	}
	if _, err := r.ReadLine(); err != nil { // reads "a\nbb\nc"
		t.Fatal(err)
	}
	if !r.LineBuffered() {
		t.Fatal(`"bb\n" is buffered`)
	}
	if _, err := r.ReadLine(); err != nil {
		t.Fatal(err)
	}
	if r.LineBuffered() {
		t.Fatal(`only "c" of the last line is buffered`)
	}
	if line, err := r.ReadLine(); err != nil || string(line) != "cc" {
		t.Fatalf("last line %q %v", line, err)
	}
	if !r.LineBuffered() {
		t.Fatal("the end of input is waiting")
	}
}
