package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// This file reads logfiles read-only, in tock's format and in ztick's, for
// tock dump. ztick's logfile (ztick.md §3.2) has no header and no checksum:
//
//	file  := frame*
//	frame := u32 length N | N payload bytes   (big-endian)
//
// and its payloads are tock's record types 0x00–0x03, byte for byte. Unlike
// Replay, nothing here ever writes: a torn tail is reported, not trimmed.

// Format is a logfile's framing.
type Format uint8

const (
	// FormatTock is tock's: header, then u32 length | u32 CRC-32C | payload.
	FormatTock Format = iota + 1
	// FormatZtick is ztick's: no header, u32 length | payload.
	FormatZtick
)

func (f Format) String() string {
	switch f {
	case FormatTock:
		return "tock"
	case FormatZtick:
		return "ztick"
	}
	return fmt.Sprintf("format(%d)", uint8(f))
}

// HeaderSize is how many bytes come before the first frame.
func (f Format) HeaderSize() int64 {
	if f == FormatTock {
		return int64(headerSize)
	}
	return 0
}

// frameHeader is the size of a frame's length (and checksum) fields.
func (f Format) frameHeader() int64 {
	if f == FormatTock {
		return frameHeaderSize
	}
	return 4
}

// FormatProbeSize is how many leading bytes DetectFormat needs to decide.
const FormatProbeSize = headerSize

// DetectFormat tells a logfile's format from its first bytes (at most
// FormatProbeSize are looked at). A file starting with tock's magic is
// tock's; one with the magic but an unsupported version is an error
// wrapping ErrBadHeader. ok is false while it cannot tell yet: prefix is
// empty, or a strict prefix of tock's header (a file being created, or torn
// while it was). Anything else is ztick's, which has no header: its first
// bytes are a length, and no plausible one spells "TOCKLOG".
func DetectFormat(prefix []byte) (f Format, ok bool, err error) {
	prefix = prefix[:min(len(prefix), headerSize)]
	switch {
	case len(prefix) == headerSize && bytes.HasPrefix(prefix, []byte(logMagic)):
		if err := checkHeader(prefix); err != nil {
			return FormatTock, true, err
		}
		return FormatTock, true, nil
	case isHeaderPrefix(prefix):
		return 0, false, nil
	}
	return FormatZtick, true, nil
}

// DecodeZtickRecord decodes one payload of a ztick logfile: DecodeRecord
// restricted to ztick's four record types (status records are tock's own).
func DecodeZtickRecord(p []byte) (Record, error) {
	if len(p) > 0 && (RecordType(p[0]) == RecordStatus || RecordType(p[0]) == RecordOwner) {
		return Record{}, fmt.Errorf("decode record: %w: record type %d is not a ztick record", ErrInvalidRecord, p[0])
	}
	return DecodeRecord(p)
}

// AppendZtickFrame appends r as one ztick frame (u32 length, payload). Only
// ztick's record types can be written. On error dst is returned unchanged.
func AppendZtickFrame(dst []byte, r Record) ([]byte, error) {
	if r.Type == RecordStatus || r.Type == RecordOwner {
		return dst, fmt.Errorf("encode %s record: %w: not a ztick record type", r.Type, ErrInvalidRecord)
	}
	start := len(dst)
	dst, err := AppendRecord(binary.BigEndian.AppendUint32(dst, 0), r)
	if err != nil {
		return dst[:start], err
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst, nil
}

// Frame is one frame read by a FrameReader.
type Frame struct {
	// Index is the frame's position in the file, from 0.
	Index int
	// Offset is where the frame's length field starts.
	Offset int64
	// Size is the frame's length on disk: length field, checksum, payload.
	Size int64
	// Payload is valid until the reader's next call.
	Payload []byte
}

// FrameError is a frame that cannot be read as it stands. Next says whether
// the damage is the file's tail (Next < 0: nothing intact follows, which is
// what a crash during a write leaves, or a write still in progress) or lies
// before intact data that a reader can resume at (Skip moves there).
type FrameError struct {
	Index  int
	Offset int64 // of the frame's length field
	Reason string
	// Next is the offset of the next intact frame, or -1 if there is none.
	Next int64
	// Bytes is how many bytes the damage spans: to Next, or to the end of
	// the file.
	Bytes int64
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("frame %d at offset %d: %s", e.Index, e.Offset, e.Reason)
}

// Tail reports whether the damage runs to the end of the file.
func (e *FrameError) Tail() bool { return e.Next < 0 }

// readWindow is how much a FrameReader reads at once.
const readWindow = 1 << 20

// FrameReader reads the frames of a logfile in order without changing it.
// It reads through an io.ReaderAt, a window at a time, so a file is never
// loaded whole and may grow between calls (tock dump --follow): every call
// is told the file's current size. A FrameReader is not safe for concurrent
// use.
type FrameReader struct {
	r      io.ReaderAt
	format Format
	off    int64 // where the next frame starts
	index  int   // the next frame's index
	win    []byte
	winOff int64
}

// NewFrameReader reads frames of format f from r, starting after the
// header (which the caller has checked, see DetectFormat).
func NewFrameReader(r io.ReaderAt, f Format) *FrameReader {
	return &FrameReader{r: r, format: f, off: f.HeaderSize()}
}

// Offset is where the next frame starts: the end of the last frame read.
func (fr *FrameReader) Offset() int64 { return fr.off }

// Next reads the frame at Offset from a file that is size bytes long. It
// returns io.EOF when Offset is at size, a *FrameError for a damaged or
// incomplete frame (the reader stays put: call Skip to pass damage that is
// not the tail, or Next again once the file has grown), or an I/O error.
func (fr *FrameReader) Next(size int64) (Frame, error) {
	fh := fr.format.frameHeader()
	left := size - fr.off
	if left <= 0 {
		return Frame{}, io.EOF
	}
	if left < fh {
		return Frame{}, fr.damage(size, fmt.Sprintf("partial frame header (%d of %d bytes)", left, fh), false)
	}
	h, err := fr.bytes(fr.off, fh, size)
	if err != nil || int64(len(h)) < fh {
		return Frame{}, fr.short(err, size)
	}
	n := int64(binary.BigEndian.Uint32(h))
	end := fr.off + fh + n
	if fr.format == FormatTock {
		switch {
		case n == 0:
			return Frame{}, fr.damage(size, "zero payload length", true)
		case n > MaxPayload:
			return Frame{}, fr.damage(size, fmt.Sprintf("payload length %d over the maximum %d", n, MaxPayload), true)
		}
	}
	if end > size {
		return Frame{}, fr.damage(size, fmt.Sprintf("payload length %d runs %d bytes past the end of the file", n, end-size), fr.format == FormatTock)
	}
	b, err := fr.bytes(fr.off, fh+n, size)
	if err != nil || int64(len(b)) < fh+n {
		return Frame{}, fr.short(err, size)
	}
	payload := b[fh:]
	if fr.format == FormatTock {
		if sum, got := binary.BigEndian.Uint32(b[4:]), crc32.Checksum(payload, castagnoli); sum != got {
			return Frame{}, fr.checksum(size, end, fmt.Sprintf("CRC mismatch (stored %08x, computed %08x)", sum, got))
		}
	}
	f := Frame{Index: fr.index, Offset: fr.off, Size: fh + n, Payload: payload}
	fr.off, fr.index = end, fr.index+1
	return f, nil
}

// Skip moves past the damage e (returned by the last Next) to the next
// intact frame; it reports false, and does not move, when e is the tail.
func (fr *FrameReader) Skip(e *FrameError) bool {
	if e.Tail() || e.Offset != fr.off {
		return false
	}
	fr.off, fr.index = e.Next, fr.index+1
	return true
}

// short handles a read that returned less than the size said the file
// holds (err is a read error, or nil): the file shrank under us, which
// looks like a torn tail for now.
func (fr *FrameReader) short(err error, size int64) error {
	if err != nil {
		return fmt.Errorf("read frame at offset %d: %w", fr.off, err)
	}
	return fr.damage(size, "file shrank while being read", false)
}

// damage reports the frame at fr.off as unreadable. When search is set
// (tock's checksummed frames only: ztick's have nothing to tell an intact
// frame by) it looks for an intact frame after it, so that damage before
// good data is not mistaken for a torn tail.
func (fr *FrameReader) damage(size int64, reason string, search bool) error {
	fr.win = fr.win[:0] // the window may hold a write in progress: read afresh
	e := &FrameError{Index: fr.index, Offset: fr.off, Reason: reason, Next: -1, Bytes: size - fr.off}
	if search {
		// Replay's bounded search: a hostile file cannot make it spin.
		next, err := scanForFrame(fr.r, fr.off+1, size)
		if err != nil {
			return err
		}
		if next == unknownFrame {
			e.Reason = reason + " (gave up looking for intact records after it)"
		}
		if next >= 0 {
			e.Next, e.Bytes = next, next-fr.off
			e.Reason = fmt.Sprintf("%s, but an intact record follows at offset %d", reason, next)
		}
	}
	return e
}

// checksum reports a tock frame whose payload fails its CRC. If it ends the
// file it is the tail; otherwise the reader can resume right after it when
// an intact frame (or the end of the file) is there, and else at the next
// intact frame found, as the length itself may be what was damaged.
func (fr *FrameReader) checksum(size, end int64, reason string) error {
	if end == size {
		return fr.damage(size, reason+" in the last record", false)
	}
	fr.win = fr.win[:0]
	if ok, err := intactFrameAt(fr.r, end, size); err != nil {
		return err
	} else if ok {
		return &FrameError{Index: fr.index, Offset: fr.off, Reason: reason, Next: end, Bytes: end - fr.off}
	}
	return fr.damage(size, reason, true)
}

// bytes returns the n bytes at off of a file of size bytes, fewer (and no
// error) if the file turns out shorter.
func (fr *FrameReader) bytes(off, n, size int64) ([]byte, error) {
	if off >= fr.winOff && off+n <= fr.winOff+int64(len(fr.win)) {
		s := off - fr.winOff
		return fr.win[s : s+n], nil
	}
	want := max(n, min(readWindow, size-off))
	if int64(cap(fr.win)) < want {
		fr.win = make([]byte, want)
	}
	fr.win = fr.win[:want]
	got, err := fr.r.ReadAt(fr.win, off)
	fr.win, fr.winOff = fr.win[:got], off
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return fr.win[:min(int64(got), n)], nil
}

// intactFrameAt reports whether a whole tock frame with a matching CRC
// starts at off, or off is the end of the file.
func intactFrameAt(r io.ReaderAt, off, size int64) (bool, error) {
	if off == size {
		return true, nil
	}
	var h [frameHeaderSize]byte
	if size-off < frameHeaderSize {
		return false, nil
	}
	if _, err := r.ReadAt(h[:], off); err != nil {
		return false, fmt.Errorf("read frame at offset %d: %w", off, err)
	}
	n := int64(binary.BigEndian.Uint32(h[:]))
	if n == 0 || n > MaxPayload || off+frameHeaderSize+n > size {
		return false, nil
	}
	p := make([]byte, n)
	if _, err := r.ReadAt(p, off+frameHeaderSize); err != nil {
		return false, fmt.Errorf("read frame at offset %d: %w", off, err)
	}
	return crc32.Checksum(p, castagnoli) == binary.BigEndian.Uint32(h[4:]), nil
}
