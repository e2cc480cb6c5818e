package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrInvalidRecord is wrapped by every codec error: a record that cannot be
// encoded, or payload bytes that are not a valid record.
var ErrInvalidRecord = errors.New("invalid record")

// maxString is the longest string a u16 length prefix can describe.
const maxString = math.MaxUint16

// appendStr appends s as ztick's str: u16 length, then the bytes. Callers
// check the length first (see checkStr) so the encoder never writes a
// length that does not match the bytes.
func appendStr(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// checkStr reports a string too long for the u16 length prefix.
func checkStr(field, s string) error {
	if len(s) > maxString {
		return fmt.Errorf("%w: %s is %d bytes, max %d", ErrInvalidRecord, field, len(s), maxString)
	}
	return nil
}

// fieldReader decodes big-endian fields from a payload. The first failure
// sticks: later reads return zero values, so decoders read a whole layout and
// check err once, and a truncated payload can never index past the end.
type fieldReader struct {
	p   []byte
	off int
	err error
}

func (r *fieldReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrInvalidRecord}, args...)...)
	}
}

// take returns the next n bytes, or nil after recording a truncation.
func (r *fieldReader) take(n int, field string) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.p)-r.off {
		r.fail("truncated %s at byte %d: need %d bytes, have %d", field, r.off, n, len(r.p)-r.off)
		return nil
	}
	b := r.p[r.off : r.off+n]
	r.off += n
	return b
}

func (r *fieldReader) u8(field string) uint8 {
	if b := r.take(1, field); b != nil {
		return b[0]
	}
	return 0
}

func (r *fieldReader) u16(field string) uint16 {
	if b := r.take(2, field); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *fieldReader) i32(field string) int32 {
	if b := r.take(4, field); b != nil {
		return int32(binary.BigEndian.Uint32(b))
	}
	return 0
}

func (r *fieldReader) i64(field string) int64 {
	if b := r.take(8, field); b != nil {
		return int64(binary.BigEndian.Uint64(b))
	}
	return 0
}

func (r *fieldReader) str(field string) string {
	n := r.u16(field + " length")
	return string(r.take(int(n), field))
}

// strs reads a u16 count followed by that many strs. The capacity is bounded
// by the bytes left (each str needs at least its 2-byte length), so a forged
// count cannot make the decoder allocate more than the input justifies.
func (r *fieldReader) strs(field string, first string) []string {
	n := int(r.u16(field + " count"))
	if r.err != nil {
		return nil
	}
	out := make([]string, 1, 1+min(n, (len(r.p)-r.off)/2))
	out[0] = first
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, r.str(field))
	}
	return out
}

// done reports trailing bytes: ztick's decoder requires the exact length.
func (r *fieldReader) done() error {
	if r.err == nil && r.off != len(r.p) {
		r.fail("%d trailing bytes after byte %d", len(r.p)-r.off, r.off)
	}
	return r.err
}
