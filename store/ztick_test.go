package store

import (
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// ztickVectors are ztick.md §3.3's worked examples: full ztick frames.
var ztickVectors = []struct {
	name  string
	rec   Record
	frame string
}{
	{"job toto planned", jobRec("toto", 1605457800000000000, Planned),
		"00 00 00 10 00 00 04 74 6f 74 6f 16 47 bb 5c ee e1 50 00 00"},
	{"rule shell", ruleRec("r", "a.", RunnerShell, "true"),
		"00 00 00 0f 01 00 01 72 00 02 61 2e 00 00 04 74 72 75 65"},
	{"rule direct", ruleRec("d", "x.", RunnerDirect, "/bin/echo", "-n", "hi"),
		"00 00 00 1e 01 00 01 64 00 02 78 2e 02 00 09 2f 62 69 6e 2f 65 63 68 6f 00 02 00 02 2d 6e 00 02 68 69"},
	{"job removal", jobRemoval("x"),
		"00 00 00 04 02 00 01 78"},
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ztick.md §3.2–§3.3: ztick frames are u32 length and the same payload.
func TestDump_ZtickFrameVectors(t *testing.T) {
	for _, v := range ztickVectors {
		t.Run(v.name, func(t *testing.T) {
			want := unhex(t, v.frame)
			got, err := AppendZtickFrame(nil, v.rec)
			if err != nil || string(got) != string(want) {
				t.Fatalf("AppendZtickFrame = % x, %v; want % x", got, err, want)
			}
			rec, err := DecodeZtickRecord(want[4:])
			if err != nil || !reflect.DeepEqual(rec, v.rec) {
				t.Fatalf("DecodeZtickRecord = %+v, %v; want %+v", rec, err, v.rec)
			}
		})
	}
}

func TestDump_ZtickRejectsStatusRecords(t *testing.T) {
	st := statusRec("a", 1, Executed, nil)
	if b, err := AppendZtickFrame([]byte("x"), st); !errors.Is(err, ErrInvalidRecord) || string(b) != "x" {
		t.Fatalf("AppendZtickFrame(status) = %q, %v; want dst unchanged and ErrInvalidRecord", b, err)
	}
	p, err := AppendRecord(nil, st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeZtickRecord(p); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("DecodeZtickRecord(status) = %v, want ErrInvalidRecord", err)
	}
	if _, err := AppendZtickFrame(nil, jobRec(strings.Repeat("x", 70000), 1, Planned)); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("AppendZtickFrame(long id) = %v, want ErrInvalidRecord", err)
	}
}

func TestDump_DetectFormat(t *testing.T) {
	tests := []struct {
		name   string
		prefix []byte
		format Format
		ok     bool
		bad    bool
	}{
		{"empty", nil, 0, false, false},
		{"torn tock header", []byte("TOCKL"), 0, false, false},
		{"tock header", fileHeader(), FormatTock, true, false},
		{"tock header and more", append(fileHeader(), 1, 2, 3), FormatTock, true, false},
		{"tock magic, other version", []byte("TOCKLOG\x00\x00\x00\x00\x09"), FormatTock, true, true},
		{"ztick frame", unhex(t, ztickVectors[0].frame), FormatZtick, true, false},
		{"short ztick", []byte{0, 0}, FormatZtick, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, ok, err := DetectFormat(tt.prefix)
			if (err != nil) != tt.bad || (tt.bad && !errors.Is(err, ErrBadHeader)) {
				t.Fatalf("DetectFormat error %v, want bad=%v", err, tt.bad)
			}
			if f != tt.format || ok != tt.ok {
				t.Fatalf("DetectFormat = %v, %v; want %v, %v", f, ok, tt.format, tt.ok)
			}
		})
	}
}

// readFrames reads every frame of b and decodes it, stopping at the first
// FrameError.
func readFrames(t *testing.T, b []byte, f Format) ([]Record, *FrameError) {
	t.Helper()
	fr := NewFrameReader(strings.NewReader(string(b)), f)
	var recs []Record
	for {
		fm, err := fr.Next(int64(len(b)))
		var fe *FrameError
		switch {
		case errors.Is(err, io.EOF):
			return recs, nil
		case errors.As(err, &fe):
			return recs, fe
		case err != nil:
			t.Fatal(err)
		}
		rec, err := DecodeRecord(fm.Payload)
		if err != nil {
			t.Fatalf("frame %d: %v", fm.Index, err)
		}
		recs = append(recs, rec)
	}
}

func TestDump_FrameReaderZtick(t *testing.T) {
	var file []byte
	var want []Record
	for _, v := range ztickVectors {
		file = append(file, unhex(t, v.frame)...)
		want = append(want, v.rec)
	}
	got, fe := readFrames(t, file, FormatZtick)
	if fe != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("read %+v, %v; want %+v", got, fe, want)
	}
	// ztick.md §8.3 item 38: three garbage bytes at the end are a torn tail.
	got, fe = readFrames(t, append(file, 0xde, 0xad, 0xbe), FormatZtick)
	if !reflect.DeepEqual(got, want) || fe == nil || !fe.Tail() || fe.Bytes != 3 || fe.Offset != int64(len(file)) || fe.Index != 4 {
		t.Fatalf("with garbage tail: %d records, %+v", len(got), fe)
	}
	// A length running past the end: ztick has no checksum to resync by.
	got, fe = readFrames(t, append(unhex(t, "00 00 00 ff 00"), file...), FormatZtick)
	if len(got) != 0 || fe == nil || !fe.Tail() || !strings.Contains(fe.Reason, "past the end") {
		t.Fatalf("with a bad first length: %d records, %+v", len(got), fe)
	}
}

func TestDump_FrameReaderTockLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.log")
	recs := sampleRecords()
	writeLog(t, path, recs...)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, ok, err := DetectFormat(b)
	if f != FormatTock || !ok || err != nil {
		t.Fatalf("DetectFormat = %v, %v, %v", f, ok, err)
	}
	got, fe := readFrames(t, b, FormatTock)
	if fe != nil || !equalRecords(got, recs) {
		t.Fatalf("read %d records (%v), want %d", len(got), fe, len(recs))
	}
}

// The reader classifies damage as Replay does: a torn tail where Replay
// trims, damage before the tail where Replay fails, at the same offset.
// Unlike Replay it never changes the file.
func TestDump_FrameReaderAgreesWithReplay(t *testing.T) {
	offs, end := frameOffsets(t, threeJobs)
	tests := []struct {
		name string
		edit func(b []byte) []byte
	}{
		{"intact", func(b []byte) []byte { return b }},
		{"partial frame header", func(b []byte) []byte { return append(b, 0, 0, 0) }},
		{"partial payload", func(b []byte) []byte { return b[:end-2] }},
		{"header only", func(b []byte) []byte { return b[:offs[2]+frameHeaderSize] }},
		{"crc-bad last", func(b []byte) []byte { b[end-1] ^= 0xff; return b }},
		{"zero-filled tail", func(b []byte) []byte { return append(b, make([]byte, 4096)...) }},
		{"garbage length", func(b []byte) []byte { return append(b, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5) }},
		{"crc-bad first", func(b []byte) []byte { b[offs[0]+frameHeaderSize+2] ^= 1; return b }},
		{"crc-bad middle", func(b []byte) []byte { b[offs[1]+5] ^= 1; return b }},
		{"length past end, records follow", func(b []byte) []byte { b[offs[1]] = 0x01; return b }},
		{"length over max, records follow", func(b []byte) []byte { b[offs[0]] = 0xff; return b }},
		{"zero length, records follow", func(b []byte) []byte { copy(b[offs[1]:], make([]byte, 4)); return b }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.log")
			writeLog(t, path, threeJobs...)
			damage(t, path, tt.edit)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			recs, fe := readFrames(t, b, FormatTock)
			want, res, err := ReadAll(path)
			var cre *CorruptRecordError
			switch {
			case errors.As(err, &cre):
				if fe == nil || fe.Tail() || fe.Offset != cre.Offset {
					t.Fatalf("Replay: corrupt at %d; reader: %+v", cre.Offset, fe)
				}
			case err != nil:
				t.Fatal(err)
			case res.Trimmed:
				if fe == nil || !fe.Tail() || fe.Offset != res.Bytes || fe.Bytes != res.TrimmedBytes || !equalRecords(recs, want) {
					t.Fatalf("Replay: torn at %d (%d bytes); reader: %+v after %d records", res.Bytes, res.TrimmedBytes, fe, len(recs))
				}
			default:
				if fe != nil || !equalRecords(recs, want) {
					t.Fatalf("Replay: intact; reader: %+v after %d records", fe, len(recs))
				}
			}
			if after, _ := os.ReadFile(path); string(after) != string(b) {
				t.Fatal("the file changed")
			}
		})
	}
}

// Damage before the tail can be skipped: the reader resumes at the next
// intact frame.
func TestDump_FrameReaderSkip(t *testing.T) {
	offs, _ := frameOffsets(t, threeJobs)
	for name, edit := range map[string]func(b []byte){
		"crc":    func(b []byte) { b[offs[1]+frameHeaderSize+1] ^= 1 },
		"length": func(b []byte) { b[offs[1]] = 0x7f },
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.log")
			writeLog(t, path, threeJobs...)
			damage(t, path, func(b []byte) []byte { edit(b); return b })
			b, _ := os.ReadFile(path)
			fr := NewFrameReader(strings.NewReader(string(b)), FormatTock)
			size := int64(len(b))
			var ids []string
			var skipped []int
			for {
				fm, err := fr.Next(size)
				if errors.Is(err, io.EOF) {
					break
				}
				var fe *FrameError
				if errors.As(err, &fe) {
					if !fr.Skip(fe) {
						t.Fatalf("cannot skip %v", fe)
					}
					skipped = append(skipped, fe.Index)
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				rec, err := DecodeRecord(fm.Payload)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, rec.Job.ID+":"+itoa(int64(fm.Index)))
			}
			if strings.Join(ids, " ") != "a:0 c:2" || !reflect.DeepEqual(skipped, []int{1}) {
				t.Fatalf("read %v, skipped frames %v; want a:0 c:2 and frame 1 skipped", ids, skipped)
			}
		})
	}
}

// A file that grows between calls: the reader waits at a torn tail and
// reads the frame once it is complete (tock dump --follow).
func TestDump_FrameReaderGrowingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.log")
	writeLog(t, path, threeJobs[0])
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fr := NewFrameReader(f, FormatTock)
	size := fileSize(t, path)
	if _, err := fr.Next(size); err != nil {
		t.Fatal(err)
	}
	if _, err := fr.Next(size); !errors.Is(err, io.EOF) {
		t.Fatalf("Next at the end = %v, want io.EOF", err)
	}
	frame, err := appendFrame(nil, threeJobs[1])
	if err != nil {
		t.Fatal(err)
	}
	appendBytes(t, path, frame[:5])
	var fe *FrameError
	if _, err := fr.Next(size + 5); !errors.As(err, &fe) || !fe.Tail() {
		t.Fatalf("Next on a half-written frame = %v, want a tail FrameError", err)
	}
	appendBytes(t, path, frame[5:])
	fm, err := fr.Next(size + int64(len(frame)))
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := DecodeRecord(fm.Payload); err != nil || rec.Job.ID != "b" || fm.Index != 1 || fm.Offset != size {
		t.Fatalf("frame %+v decodes to %+v, %v", fm, rec, err)
	}
	if fr.Offset() != size+int64(len(frame)) {
		t.Fatalf("Offset = %d, want %d", fr.Offset(), size+int64(len(frame)))
	}
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// A size larger than the file (it shrank after the caller's stat) reads
// as a torn tail, not an I/O error.
func TestDump_FrameReaderFileShrank(t *testing.T) {
	frame, err := appendFrame(nil, threeJobs[0])
	if err != nil {
		t.Fatal(err)
	}
	b := append(fileHeader(), frame...)
	fr := NewFrameReader(strings.NewReader(string(b)), FormatTock)
	size := int64(len(b)) + 10
	if _, err := fr.Next(size); err != nil {
		t.Fatal(err)
	}
	var fe *FrameError
	if _, err := fr.Next(size); !errors.As(err, &fe) || !fe.Tail() || !strings.Contains(fe.Reason, "shrank") {
		t.Fatalf("Next past the real end = %v, want a tail FrameError", err)
	}
	if fr.Skip(fe) {
		t.Fatal("Skip passed a tail")
	}
}
