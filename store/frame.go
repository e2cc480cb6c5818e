package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

const (
	// FormatVersion is the logfile format this package writes and reads.
	FormatVersion = 1
	// MaxPayload is the largest payload a frame may carry. A length field
	// above it cannot have been written by us, so replay treats it as
	// damage rather than allocating what a flipped bit asks for.
	MaxPayload = 16 << 20

	headerSize      = len(logMagic) + 4 // magic + u32 version
	frameHeaderSize = 8                 // u32 length + u32 CRC-32C
)

// logMagic starts every tock logfile; the NUL keeps it from looking like text.
const logMagic = "TOCKLOG\x00"

// ErrBadHeader is wrapped when a file does not start with tock's magic and a
// supported format version: it is not ours, or is from a newer tock.
var ErrBadHeader = errors.New("bad logfile header")

// castagnoli is CRC-32C, which has hardware support on amd64 and arm64.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fileHeader returns the 12 bytes every logfile starts with.
func fileHeader() []byte {
	return binary.BigEndian.AppendUint32([]byte(logMagic), FormatVersion)
}

// checkHeader validates a complete file header.
func checkHeader(h []byte) error {
	if len(h) < headerSize || string(h[:len(logMagic)]) != logMagic {
		return fmt.Errorf("%w: magic %q is not %q", ErrBadHeader, h[:min(len(h), len(logMagic))], logMagic)
	}
	if v := binary.BigEndian.Uint32(h[len(logMagic):headerSize]); v != FormatVersion {
		return fmt.Errorf("%w: format version %d, this tock reads %d", ErrBadHeader, v, FormatVersion)
	}
	return nil
}

// isHeaderPrefix reports whether b is the start of a header, as left by a
// crash while the file was being created.
func isHeaderPrefix(b []byte) bool {
	return len(b) < headerSize && bytes.HasPrefix(fileHeader(), b)
}

// appendFrame appends one framed record: length, CRC-32C, payload. On error
// dst is returned unchanged.
func appendFrame(dst []byte, r Record) ([]byte, error) {
	start := len(dst)
	dst = append(dst, make([]byte, frameHeaderSize)...)
	dst, err := AppendRecord(dst, r)
	if err != nil {
		return dst[:start], err
	}
	payload := dst[start+frameHeaderSize:]
	if len(payload) > MaxPayload {
		return dst[:start], fmt.Errorf("encode %s record: %w: payload is %d bytes, max %d", r.Type, ErrInvalidRecord, len(payload), MaxPayload)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(dst[start+4:], crc32.Checksum(payload, castagnoli))
	return dst, nil
}

// appendFrames frames every record, or none if any is invalid.
func appendFrames(dst []byte, recs []Record) ([]byte, error) {
	start := len(dst)
	for i, r := range recs {
		var err error
		if dst, err = appendFrame(dst, r); err != nil {
			return dst[:start], fmt.Errorf("record %d of %d: %w", i+1, len(recs), err)
		}
	}
	return dst, nil
}
