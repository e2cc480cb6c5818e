package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
)

// ReplayResult says what a replay read.
type ReplayResult struct {
	// Records is how many records were passed to fn.
	Records int
	// Bytes is the length of the good part of the file: the header and
	// every good frame. After a trim it is the file's new size.
	Bytes int64
	// Trimmed is set when a torn tail was found (and, by Replay, cut off).
	// The caller logs it: it is expected after a crash, but worth a warning.
	Trimmed bool
	// TrimmedBytes is how many bytes the torn tail had.
	TrimmedBytes int64
	// TrimReason says what was wrong with the tail, for that warning.
	TrimReason string
}

// CorruptRecordError is damage before the tail of a log: a record that is
// bad although more data follows it, or one whose checksum is right but
// whose payload does not decode. Replay stops there and trims nothing; the
// shard must not start, since going on would silently drop records.
type CorruptRecordError struct {
	Path   string
	Offset int64 // of the frame's length field
	Reason string
}

func (e *CorruptRecordError) Error() string {
	return fmt.Sprintf("corrupt record in %s at offset %d: %s", e.Path, e.Offset, e.Reason)
}

// Replay reads the log at path from the start and calls fn for every record
// in order. A missing file is an empty log. A torn last record (a partial
// frame header, a length running past the end of the file, a CRC failure on
// the record that ends the file) is trimmed: the file is truncated to the
// end of the last good record and Trimmed is set. A bad record followed by
// more data is a *CorruptRecordError, as is a record whose CRC is right but
// whose payload does not decode; nothing is trimmed then. A bad magic or
// version is an error wrapping ErrBadHeader. If fn fails, replay stops and
// returns its error wrapped. The caller must own the file: nothing may
// append to it during a replay.
func Replay(path string, fn func(Record) error) (ReplayResult, error) {
	return replay(path, fn, true)
}

// ReadAll returns every record of the log at path. It is Replay without
// repair, for inspecting a file (tock dump) and for tests: it never changes
// the file, and Trimmed reports a torn tail that Replay would cut.
func ReadAll(path string) ([]Record, ReplayResult, error) {
	var recs []Record
	res, err := replay(path, func(r Record) error {
		recs = append(recs, r)
		return nil
	}, false)
	return recs, res, err
}

// ReplayFrom is Replay starting at offset, the end of the last record a
// previous read saw (its ReplayResult.Bytes): a shard's new owner reads the
// log while the old owner still writes, then reads only what came after.
// With repair false it is read-only and stops quietly at a partial record,
// which may simply be a write in progress. Offset 0 is a whole replay.
func ReplayFrom(path string, offset int64, fn func(Record) error, repair bool) (ReplayResult, error) {
	return replayFrom(path, offset, fn, repair)
}

func replay(path string, fn func(Record) error, repair bool) (ReplayResult, error) {
	return replayFrom(path, 0, fn, repair)
}

func replayFrom(path string, offset int64, fn func(Record) error, repair bool) (ReplayResult, error) {
	res, _, err := replayFromInto(path, offset, fn, nil, repair)
	return res, err
}

// replayFromInto is replayFrom; with into set, records are applied to it
// straight from their payloads instead of being passed to fn, and the last
// RecordOwner read is returned.
func replayFromInto(path string, offset int64, fn func(Record) error, into *Jobs, repair bool) (ReplayResult, Owner, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ReplayResult{}, Owner{}, nil
	}
	if err != nil {
		return ReplayResult{}, Owner{}, fmt.Errorf("replay %s: %w", path, err)
	}
	defer f.Close() // read-only: a close error cannot lose anything
	st, err := f.Stat()
	if err != nil {
		return ReplayResult{}, Owner{}, fmt.Errorf("replay %s: %w", path, err)
	}
	s := &scanner{path: path, f: f, size: st.Size(), into: into}
	if offset > 0 {
		if offset < int64(headerSize) || offset > st.Size() {
			return ReplayResult{}, Owner{}, fmt.Errorf("replay %s: offset %d outside the log (size %d)", path, offset, st.Size())
		}
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			return ReplayResult{}, Owner{}, fmt.Errorf("replay %s: %w", path, err)
		}
		s.off, s.res.Bytes, s.skipHeader = offset, offset, true
	}
	s.r = bufio.NewReaderSize(f, 1<<20)
	res, err := s.run(fn)
	if err != nil || !res.Trimmed || !repair {
		return res, s.owner, err
	}
	if err := trim(path, res.Bytes); err != nil {
		return res, s.owner, fmt.Errorf("replay %s: trim torn tail at offset %d: %w", path, res.Bytes, err)
	}
	return res, s.owner, nil
}

// trim cuts the file at size, durably, so later appends follow good data.
func trim(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// scanner walks a log's frames in order.
type scanner struct {
	path string
	f    *os.File
	size int64
	r    *bufio.Reader
	off  int64 // where the next frame starts
	// skipHeader: the scan starts after the header (ReplayFrom).
	skipHeader bool
	// into, when set, gets every record applied (see ReplayJobs).
	into *Jobs
	// owner is the last RecordOwner applied to into.
	owner Owner
	hdr   [frameHeaderSize]byte
	buf   []byte
	res   ReplayResult
}

func (s *scanner) run(fn func(Record) error) (ReplayResult, error) {
	if !s.skipHeader {
		if done, err := s.header(); done || err != nil {
			return s.res, err
		}
	}
	for s.off < s.size {
		rec, done, err := s.next()
		if done || err != nil {
			return s.res, err
		}
		if fn != nil {
			if err := fn(rec); err != nil {
				return s.res, fmt.Errorf("replay %s: apply record at offset %d: %w", s.path, s.off, err)
			}
		}
		s.res.Records++
		s.off += frameHeaderSize + int64(len(s.buf))
		s.res.Bytes = s.off
	}
	return s.res, nil
}

// header checks the file header. A file shorter than a header that holds a
// prefix of one was torn while being created: it is an empty log.
func (s *scanner) header() (done bool, err error) {
	h := make([]byte, headerSize)
	n, err := io.ReadFull(s.r, h)
	if n == headerSize {
		if err := checkHeader(h); err != nil {
			return true, fmt.Errorf("replay %s: %w", s.path, err)
		}
		s.off, s.res.Bytes = int64(headerSize), int64(headerSize)
		return false, nil
	}
	if err != io.EOF && err != io.ErrUnexpectedEOF {
		return true, fmt.Errorf("replay %s: read header: %w", s.path, err)
	}
	if !isHeaderPrefix(h[:n]) {
		return true, fmt.Errorf("replay %s: %w", s.path, checkHeader(h[:n]))
	}
	if n > 0 {
		s.torn("partial file header")
	}
	return true, nil
}

// next reads the frame at s.off into s.buf and decodes it. done is set when
// the frame is a torn tail (recorded in s.res).
func (s *scanner) next() (rec Record, done bool, err error) {
	left := s.size - s.off
	if left < frameHeaderSize {
		s.torn(fmt.Sprintf("partial frame header (%d of %d bytes)", left, frameHeaderSize))
		return Record{}, true, nil
	}
	h := s.hdr[:] // in the scanner: a local array would escape through ReadFull
	if _, err := io.ReadFull(s.r, h); err != nil {
		return Record{}, true, fmt.Errorf("replay %s: read at offset %d: %w", s.path, s.off, err)
	}
	n := int64(binary.BigEndian.Uint32(h[:4]))
	sum := binary.BigEndian.Uint32(h[4:])
	end := s.off + frameHeaderSize + n
	switch {
	case n == 0:
		return Record{}, true, s.badLength("zero payload length")
	case n > MaxPayload:
		return Record{}, true, s.badLength(fmt.Sprintf("payload length %d over the maximum %d", n, MaxPayload))
	case end > s.size:
		return Record{}, true, s.badLength(fmt.Sprintf("payload length %d runs %d bytes past the end of the file", n, end-s.size))
	}
	if int64(cap(s.buf)) < n {
		s.buf = make([]byte, n)
	}
	s.buf = s.buf[:n]
	if _, err := io.ReadFull(s.r, s.buf); err != nil {
		return Record{}, true, fmt.Errorf("replay %s: read at offset %d: %w", s.path, s.off, err)
	}
	if got := crc32.Checksum(s.buf, castagnoli); got != sum {
		reason := fmt.Sprintf("CRC mismatch (stored %08x, computed %08x)", sum, got)
		if end == s.size {
			s.torn(reason + " in the last record")
			return Record{}, true, nil
		}
		return Record{}, true, s.corrupt(reason)
	}
	if s.into != nil {
		if err := s.into.applyPayload(s.buf, &s.owner); err != nil {
			return Record{}, true, s.corrupt(err.Error())
		}
		return Record{}, false, nil
	}
	rec, err = DecodeRecord(s.buf)
	if err != nil {
		return Record{}, true, s.corrupt(err.Error())
	}
	return rec, false, nil
}

// badLength handles a frame whose length field cannot be used. A crash
// tears the last write, so this is normally the tail, and it is trimmed.
// But a flipped bit in the length of a record in the middle looks the same,
// and trimming then would silently drop every record after it (ztick's
// behaviour). So look for an intact frame after this point: if one exists,
// or the search cannot rule one out, the damage is not treated as the tail
// and replay fails instead.
func (s *scanner) badLength(reason string) error {
	next, err := scanForFrame(s.f, s.off+1, s.size)
	switch {
	case err != nil:
		return fmt.Errorf("replay %s: %w", s.path, err)
	case next == noFrame:
		s.torn(reason)
		return nil
	case next == unknownFrame:
		return s.corrupt(reason + ", and the data after it is too large to rule out intact records")
	}
	return s.corrupt(fmt.Sprintf("%s, but an intact record follows at offset %d", reason, next))
}

const (
	noFrame      = -1 // scanForFrame: no intact frame follows
	unknownFrame = -2 // scanForFrame: gave up before it could tell
	// findBudget bounds the bytes scanForFrame checksums. Real torn tails are
	// one batch long and cost little; a pathological file must not make
	// startup quadratic, so past the budget replay fails safe (as corrupt).
	findBudget = 64 << 20
)

// scanForFrame returns the offset of the first intact frame (plausible
// length, known record type, matching CRC) at or after from in a file of
// size bytes, noFrame if there is none, or unknownFrame if the checksum
// budget ran out first. It only looks as far as a real frame boundary can
// be from a damaged frame's start: the damaged frame was at most MaxPayload
// long.
func scanForFrame(r io.ReaderAt, from, size int64) (int64, error) {
	n := min(size-from, 2*(frameHeaderSize+MaxPayload))
	if n < frameHeaderSize+1 {
		return noFrame, nil
	}
	win := make([]byte, n)
	got, err := r.ReadAt(win, from)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("read at offset %d: %w", from, err)
	}
	win = win[:got]
	budget := findBudget
	for p := 0; p+frameHeaderSize < len(win); p++ {
		size := int(binary.BigEndian.Uint32(win[p:]))
		if size == 0 || size > len(win)-p-frameHeaderSize {
			continue
		}
		payload := win[p+frameHeaderSize : p+frameHeaderSize+size]
		if payload[0] > byte(RecordStatus) {
			continue // cheap filter: not a record type
		}
		if budget -= size; budget < 0 {
			return unknownFrame, nil
		}
		if crc32.Checksum(payload, castagnoli) == binary.BigEndian.Uint32(win[p+4:]) {
			return from + int64(p), nil
		}
	}
	return noFrame, nil
}

func (s *scanner) torn(reason string) {
	s.res.Trimmed = true
	s.res.TrimmedBytes = s.size - s.off
	s.res.TrimReason = reason
	s.res.Bytes = s.off
}

func (s *scanner) corrupt(reason string) error {
	return &CorruptRecordError{Path: s.path, Offset: s.off, Reason: reason}
}
