package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var threeJobs = []Record{jobRec("a", 1, Planned), jobRec("b", 2, Planned), jobRec("c", 3, Planned)}

// damage edits a log file's bytes in place.
func damage(t *testing.T, path string, edit func(b []byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, edit(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A torn or CRC-failing last record is trimmed, and what is appended after
// the trim replays. docs/files.md, docs/protocol.md ("a torn tail is trimmed").
func TestReplayTrimsTornTail(t *testing.T) {
	offs, end := frameOffsets(t, threeJobs)
	last := offs[2]
	tests := []struct {
		name    string
		edit    func(b []byte) []byte
		keep    int   // records that survive
		trimmed int64 // bytes cut
		reason  string
	}{
		{"partial frame header", func(b []byte) []byte { return append(b, 0, 0, 0) }, 3, 3, "partial frame header"},
		{"partial payload", func(b []byte) []byte { return b[:end-2] }, 2, end - 2 - last, "past the end of the file"},
		{"header only", func(b []byte) []byte { return b[:last+frameHeaderSize] }, 2, frameHeaderSize, "past the end of the file"},
		{"crc-bad last record", func(b []byte) []byte { b[end-1] ^= 0xff; return b }, 2, end - last, "CRC mismatch"},
		{"zero-filled tail", func(b []byte) []byte { return append(b, make([]byte, 4096)...) }, 3, 4096, "zero payload length"},
		{"garbage length", func(b []byte) []byte { return append(b, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5) }, 3, 9, "over the maximum"},
		{"partial file header", func(b []byte) []byte { return b[:5] }, 0, 5, "partial file header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.log")
			writeLog(t, path, threeJobs...)
			damage(t, path, tt.edit)
			var got []Record
			res, err := Replay(path, func(r Record) error { got = append(got, r); return nil })
			if err != nil {
				t.Fatalf("Replay: %v", err)
			}
			if !equalRecords(got, threeJobs[:tt.keep]) {
				t.Fatalf("replayed %+v, want the first %d records", got, tt.keep)
			}
			if !res.Trimmed || res.TrimmedBytes != tt.trimmed || res.Records != tt.keep {
				t.Fatalf("result %+v, want %d records and %d bytes trimmed", res, tt.keep, tt.trimmed)
			}
			if !strings.Contains(res.TrimReason, tt.reason) {
				t.Errorf("trim reason %q does not say %q", res.TrimReason, tt.reason)
			}
			if size := fileSize(t, path); size != res.Bytes {
				t.Fatalf("file is %d bytes after the trim, want %d", size, res.Bytes)
			}

			writeLog(t, path, jobRec("later", 9, Planned))
			got, res = readAll(t, path)
			want := append(append([]Record{}, threeJobs[:tt.keep]...), jobRec("later", 9, Planned))
			if !reflect.DeepEqual(got, want) || res.Trimmed {
				t.Fatalf("after appending: %+v (%+v), want %+v", got, res, want)
			}
		})
	}
}

func TestReadAllDoesNotTrim(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.log")
	writeLog(t, path, threeJobs...)
	damage(t, path, func(b []byte) []byte { return b[:len(b)-1] })
	before := fileSize(t, path)
	got, res := readAll(t, path)
	if len(got) != 2 || !res.Trimmed {
		t.Fatalf("ReadAll: %d records, %+v; want 2 and a torn tail reported", len(got), res)
	}
	if fileSize(t, path) != before {
		t.Fatal("ReadAll changed the file")
	}
}

// Damage before the tail stops replay with the file and offset, and
// nothing is trimmed: never silent loss. docs/files.md.
func TestReplayCorruptionBeforeTail(t *testing.T) {
	offs, _ := frameOffsets(t, threeJobs)
	undecodable := func(b []byte) []byte { // last frame: valid CRC, bad type byte
		frame, _ := appendFrame(nil, jobRemoval("z"))
		frame[frameHeaderSize] = 0x09
		fixCRC(frame)
		return append(b, frame...)
	}
	_, end := frameOffsets(t, threeJobs)
	tests := []struct {
		name   string
		edit   func(b []byte) []byte
		offset int64
		reason string
	}{
		{"crc-bad first record", func(b []byte) []byte { b[offs[0]+frameHeaderSize+2] ^= 1; return b }, offs[0], "CRC mismatch"},
		{"crc-bad middle record", func(b []byte) []byte { b[offs[1]+5] ^= 1; return b }, offs[1], "CRC mismatch"},
		{"length past end but records follow", func(b []byte) []byte { b[offs[1]] = 0x01; return b }, offs[1], "intact record follows at offset " + itoa(offs[2])},
		{"length over max but records follow", func(b []byte) []byte { b[offs[0]] = 0xff; return b }, offs[0], "over the maximum"},
		{"zero length but records follow", func(b []byte) []byte { copy(b[offs[1]:], make([]byte, 4)); return b }, offs[1], "zero payload length"},
		{"undecodable last record", undecodable, end, "unknown record type 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.log")
			writeLog(t, path, threeJobs...)
			damage(t, path, tt.edit)
			before := fileSize(t, path)
			_, err := Replay(path, func(Record) error { return nil })
			var cre *CorruptRecordError
			if !errors.As(err, &cre) {
				t.Fatalf("Replay: %v, want a *CorruptRecordError", err)
			}
			if cre.Path != path || cre.Offset != tt.offset {
				t.Errorf("error names %s at %d, want %s at %d", cre.Path, cre.Offset, path, tt.offset)
			}
			if !strings.Contains(cre.Reason, tt.reason) {
				t.Errorf("reason %q does not say %q", cre.Reason, tt.reason)
			}
			if want := "corrupt record in " + path + " at offset " + itoa(tt.offset) + ": "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start %q", err, want)
			}
			if fileSize(t, path) != before {
				t.Fatal("a corrupt log was trimmed")
			}
		})
	}
}

func TestReplayBadHeader(t *testing.T) {
	for name, content := range map[string]string{
		"bad magic":     "ZTICKLOG\x00\x00\x00\x01",
		"bad version":   "TOCKLOG\x00\x00\x00\x00\x07",
		"short garbage": "TOCX",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.log")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Replay(path, func(Record) error { return nil })
			if !errors.Is(err, ErrBadHeader) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Replay: %v, want ErrBadHeader naming %s", err, path)
			}
		})
	}
}

func TestReplayEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.log")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := Replay(path, nil)
	if err != nil || res != (ReplayResult{}) {
		t.Fatalf("Replay of an empty file = %+v, %v", res, err)
	}
}

func TestReplayStopsOnCallbackError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.log")
	writeLog(t, path, threeJobs...)
	stop := errors.New("stop here")
	n := 0
	res, err := Replay(path, func(Record) error {
		if n++; n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || res.Records != 1 {
		t.Fatalf("Replay = %+v, %v; want 1 record and the callback's error", res, err)
	}
}

// fixCRC recomputes a frame's CRC after a test edited its payload.
func fixCRC(frame []byte) {
	sum := crc32Castagnoli(frame[frameHeaderSize:])
	frame[4], frame[5], frame[6], frame[7] = byte(sum>>24), byte(sum>>16), byte(sum>>8), byte(sum)
}

// A bad length before a large tail that the search cannot clear within its
// budget fails safe: corrupt, not trimmed, and without quadratic work.
func TestReplayGivesUpSearchingSafely(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.log")
	writeLog(t, path, threeJobs[:1]...)
	_, end := frameOffsets(t, threeJobs[:1])
	damage(t, path, func(b []byte) []byte {
		b = append(b, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0) // length over the maximum
		// Every 4th offset looks like a 1 MiB frame of a known type.
		return append(b, bytes.Repeat([]byte{0x00, 0x10, 0x00, 0x00}, 3<<18)...)
	})
	_, err := Replay(path, func(Record) error { return nil })
	var cre *CorruptRecordError
	if !errors.As(err, &cre) || cre.Offset != end || !strings.Contains(cre.Reason, "rule out") {
		t.Fatalf("Replay: %v, want a *CorruptRecordError at %d that could not rule out records", err, end)
	}
}
