package store

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// In-memory frames: the logfile's record framing (u32 length, u32 CRC-32C,
// payload) without the file header, for a shard log kept somewhere other
// than a file (store/jslog packs a batch's frames into one message). The
// bytes are the ones a Logfile appends, so tools that read frames read
// these too.

// AppendFrames appends recs as frames to dst, all or none: if a record is
// invalid, dst is returned unchanged with the error.
func AppendFrames(dst []byte, recs []Record) ([]byte, error) {
	return appendFrames(dst, recs)
}

// EachFrame calls fn with the payload of every frame in b, in order. A
// frame that is cut short, too long or fails its CRC is an error wrapping
// ErrInvalidRecord: in memory there is no torn tail to trim, every byte was
// received whole. The payload is only valid during the call.
func EachFrame(b []byte, fn func(payload []byte) error) (int, error) {
	n := 0
	for off := 0; off < len(b); n++ {
		if len(b)-off < frameHeaderSize {
			return n, fmt.Errorf("frame %d at offset %d: %w: %d bytes left, a frame header is %d", n+1, off, ErrInvalidRecord, len(b)-off, frameHeaderSize)
		}
		size := int(binary.BigEndian.Uint32(b[off:]))
		sum := binary.BigEndian.Uint32(b[off+4:])
		start := off + frameHeaderSize
		switch {
		case size == 0:
			return n, fmt.Errorf("frame %d at offset %d: %w: zero payload length", n+1, off, ErrInvalidRecord)
		case size > MaxPayload || size > len(b)-start:
			return n, fmt.Errorf("frame %d at offset %d: %w: payload length %d, %d bytes left", n+1, off, ErrInvalidRecord, size, len(b)-start)
		}
		p := b[start : start+size]
		if got := crc32.Checksum(p, castagnoli); got != sum {
			return n, fmt.Errorf("frame %d at offset %d: %w: CRC mismatch (stored %08x, computed %08x)", n+1, off, ErrInvalidRecord, sum, got)
		}
		if err := fn(p); err != nil {
			return n, err
		}
		off = start + size
	}
	return n, nil
}

// DecodeFrames decodes every frame of b.
func DecodeFrames(b []byte) ([]Record, error) {
	var recs []Record
	_, err := EachFrame(b, func(p []byte) error {
		r, err := DecodeRecord(p)
		if err != nil {
			return err
		}
		recs = append(recs, r)
		return nil
	})
	return recs, err
}

// ApplyFrames applies every record framed in b to j, as a replay does (job
// and removal records in place, without a copy per record), and returns
// how many it applied. On error the records before the bad one have been
// applied.
func (j *Jobs) ApplyFrames(b []byte) (int, error) {
	return EachFrame(b, func(p []byte) error { return j.applyPayload(p, nil) })
}
