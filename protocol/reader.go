package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxLine is the line limit used when NewReader gets maxLine < 1. It
// matches ztick's 4096-byte receive buffer and tock's controller.max_line_bytes
// default.
const DefaultMaxLine = 4096

// ErrLineTooLong is what ReadLine's error for a line longer than the
// reader's maxLine matches (errors.Is); the error itself is a
// *LineTooLongError. The line has been discarded up to and including its
// LF; the next ReadLine continues with the following line.
var ErrLineTooLong = errors.New("line too long")

// LineTooLongError is ReadLine's error for an over-long line: the limit, and
// the line's request id when its first token was complete within the bytes
// read.
type LineTooLongError struct {
	RID   string // "" when it could not be read
	Limit int    // the reader's maxLine
}

func (e *LineTooLongError) Error() string {
	return fmt.Sprintf("line too long (limit %d bytes)", e.Limit)
}

// Is makes errors.Is(err, ErrLineTooLong) hold.
func (e *LineTooLongError) Is(target error) bool { return target == ErrLineTooLong }

// maxRIDScan bounds how much of an over-long line is tokenized to find its
// request id.
const maxRIDScan = MaxIDLen + 2

// firstToken returns the first token of the start of a line when it is
// complete (another token or a quoting error follows it), else "".
func firstToken(b []byte) string {
	var arr [2]string
	toks, err := Tokenize(b[:min(len(b), maxRIDScan)], arr[:0])
	if len(toks) >= 2 || err != nil && len(toks) == 1 {
		return toks[0]
	}
	return ""
}

// maxMaxLine caps maxLine so that buffer arithmetic cannot overflow.
const maxMaxLine = 1 << 30

// initialBuffer is the buffer a Reader starts with; it grows on demand up to
// maxLine+2, so idle connections with a large limit stay small.
const initialBuffer = 4096

// maxEmptyReads bounds how often a misbehaving io.Reader may return (0, nil)
// in a row before ReadLine gives up with io.ErrNoProgress.
const maxEmptyReads = 100

// Reader splits an io.Reader into lines with a bounded buffer. It is not
// safe for concurrent use.
type Reader struct {
	r          io.Reader
	buf        []byte // buf[start:end] holds unread bytes
	start, end int
	max        int    // longest accepted line, terminator excluded
	err        error  // error from the last Read, handed out once buffered data is used up
	discarding bool   // inside an over-long line, dropping bytes until LF
	longRID    string // request id of the line being discarded
}

// tooLong is the error for an over-long line with request id rid.
func (r *Reader) tooLong(rid string) error { return &LineTooLongError{RID: rid, Limit: r.max} }

// NewReader returns a Reader reading lines of at most maxLine bytes (not
// counting the LF or CRLF terminator) from r. maxLine < 1 means
// DefaultMaxLine; values above 1 GiB are capped to 1 GiB. The buffer starts
// at 4 KiB and grows on demand to at most maxLine+2 bytes.
func NewReader(r io.Reader, maxLine int) *Reader {
	if maxLine < 1 {
		maxLine = DefaultMaxLine
	}
	maxLine = min(maxLine, maxMaxLine)
	return &Reader{r: r, max: maxLine, buf: make([]byte, min(initialBuffer, maxLine+2))}
}

// Buffered returns the number of bytes already read from the underlying
// reader and not yet returned as lines. A server flushes its replies when
// Buffered is 0, i.e. when the next ReadLine would block on the network.
func (r *Reader) Buffered() int { return r.end - r.start }

// LineBuffered reports whether the next ReadLine returns without reading
// from the underlying reader: a whole line (or the end of an over-long
// one) is buffered, or a read error is waiting. A server routes and
// flushes what it has read when it is false.
func (r *Reader) LineBuffered() bool {
	return r.err != nil || bytes.IndexByte(r.buf[r.start:r.end], '\n') >= 0
}

// ReadLine returns the next line without its terminator: LF, or CR LF (a CR
// elsewhere in the line is kept).
//
// The returned slice points into the Reader's buffer and is valid only until
// the next call to ReadLine; copy it to keep it.
//
// A line longer than maxLine bytes is consumed up to and including its LF
// and reported as a *LineTooLongError (errors.Is ErrLineTooLong) carrying
// the line's request id when its first token was complete within the
// first maxLine+2 bytes; memory stays bounded by maxLine. At end of
// input an unterminated last line is returned as a line, and the next call
// returns io.EOF. Other read errors are returned as they occur, after the
// lines already buffered; the partial line stays buffered, so a caller that
// recovers (for example from a deadline) may call ReadLine again.
func (r *Reader) ReadLine() ([]byte, error) {
	empty := 0
	for {
		if line, ok, err := r.scan(); ok {
			return line, err
		}
		if r.err != nil {
			return r.finish()
		}
		if !r.fill() {
			if empty++; empty >= maxEmptyReads {
				return nil, io.ErrNoProgress
			}
			continue
		}
		empty = 0
	}
}

// scan looks for a complete line in the buffer. ok is false when more input
// is needed.
func (r *Reader) scan() (line []byte, ok bool, err error) {
	i := bytes.IndexByte(r.buf[r.start:r.end], '\n')
	if i < 0 {
		if r.discarding {
			r.start, r.end = 0, 0
		}
		return nil, false, nil
	}
	line = r.buf[r.start : r.start+i]
	r.start += i + 1
	if r.start == r.end {
		r.start, r.end = 0, 0
	}
	if r.discarding {
		r.discarding = false
		return nil, true, r.tooLong(r.longRID)
	}
	raw := line
	line = trimCR(line)
	if len(line) > r.max {
		return nil, true, r.tooLong(firstToken(raw))
	}
	return line, true, nil
}

// fill reads more input into the buffer, compacting or growing it first. It
// reports whether any bytes or an error arrived.
func (r *Reader) fill() bool {
	if r.start > 0 {
		r.end = copy(r.buf, r.buf[r.start:r.end])
		r.start = 0
	}
	if r.end == len(r.buf) {
		if limit := r.max + 2; len(r.buf) < limit {
			nb := make([]byte, min(2*len(r.buf), limit))
			copy(nb, r.buf[:r.end])
			r.buf = nb
		} else {
			// maxLine+2 bytes and no LF: even with CR LF the line is too
			// long. Drop what we have and skip to the next LF.
			if !r.discarding {
				r.longRID = firstToken(r.buf[:r.end])
			}
			r.discarding = true
			r.end = 0
		}
	}
	n, err := r.r.Read(r.buf[r.end:])
	if n < 0 || n > len(r.buf)-r.end {
		n, err = 0, errors.New("protocol: invalid Read count")
	}
	r.end += n
	if err != nil {
		r.err = err
	}
	return n > 0 || err != nil
}

// finish handles a read error once no complete line is buffered.
func (r *Reader) finish() ([]byte, error) {
	err := r.err
	if err != io.EOF {
		r.err = nil
		return nil, err
	}
	if r.discarding {
		r.discarding = false
		r.start, r.end = 0, 0
		return nil, r.tooLong(r.longRID)
	}
	if r.start == r.end {
		return nil, io.EOF
	}
	raw := r.buf[r.start:r.end]
	line := trimCR(raw)
	r.start, r.end = 0, 0
	if len(line) > r.max {
		return nil, r.tooLong(firstToken(raw))
	}
	return line, nil
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}
