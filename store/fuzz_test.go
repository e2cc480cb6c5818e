package store

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// Seeds live in testdata/fuzz/<Target>/ and are written from real records
// and real logfiles by: go test -run TestWriteFuzzSeeds -write-seeds ./store/
var writeSeeds = flag.Bool("write-seeds", false, "rewrite the fuzz seed corpora in testdata/fuzz")

// FuzzDecodeRecord: DecodeRecord never panics, and what it accepts is
// canonical: it re-encodes to the same bytes and decodes to the same record.
func FuzzDecodeRecord(f *testing.F) {
	f.Fuzz(func(t *testing.T, p []byte) {
		rec, err := DecodeRecord(p)
		if err != nil {
			if !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("decode error %v does not wrap ErrInvalidRecord", err)
			}
			return
		}
		q, err := AppendRecord(nil, rec)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", rec, err)
		}
		if !bytes.Equal(p, q) {
			t.Fatalf("re-encoding changed the bytes:\n in % x\nout % x", p, q)
		}
		again, err := DecodeRecord(q)
		if err != nil || !reflect.DeepEqual(again, rec) {
			t.Fatalf("second decode = %+v, %v; want %+v", again, err, rec)
		}
	})
}

// FuzzReplay: any file content replays without panicking, to records or an
// error. When it replays, the repaired file replays again to the same
// records with nothing left to trim, and the records survive a rewrite.
func FuzzReplay(f *testing.F) {
	dir := f.TempDir() // one per fuzz process; inputs run one at a time in it
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "f.log")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		peek, _, peekErr := ReadAll(path)
		var recs []Record
		res, err := Replay(path, func(r Record) error { recs = append(recs, r); return nil })
		if (err == nil) != (peekErr == nil) || (err == nil && !equalRecords(recs, peek)) {
			t.Fatalf("ReadAll (%v) and Replay (%v) disagree", peekErr, err)
		}
		if err != nil {
			return
		}
		if len(recs) != res.Records {
			t.Fatalf("Records = %d, fn saw %d", res.Records, len(recs))
		}
		again, res2, err := ReadAll(path)
		if err != nil || res2.Trimmed || !equalRecords(again, recs) {
			t.Fatalf("replay after repair: %d records, %+v, %v; want %d, untrimmed", len(again), res2, err, len(recs))
		}
		file, err := appendFrames(fileHeader(), recs)
		if err != nil {
			t.Fatalf("replayed records do not encode: %v", err)
		}
		rewritten := filepath.Join(dir, "re.log")
		if err := os.WriteFile(rewritten, file, 0o600); err != nil {
			t.Fatal(err)
		}
		if back, _, err := ReadAll(rewritten); err != nil || !equalRecords(back, recs) {
			t.Fatalf("rewritten log: %d records, %v; want %d", len(back), err, len(recs))
		}
	})
}

// TestWriteFuzzSeeds regenerates the committed seed corpora. It is skipped
// unless -write-seeds is given.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -write-seeds to rewrite testdata/fuzz")
	}
	for i, r := range sampleRecords() {
		p, err := AppendRecord(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("%02d_%s", i, r.Type)
		if r.Type == RecordRule {
			name += "_" + r.Rule.Runner.Kind.String()
		}
		writeSeed(t, "FuzzDecodeRecord", name, p)
		writeSeed(t, "FuzzApplyPayload", name, p)
	}
	for name, data := range seedLogfiles(t) {
		writeSeed(t, "FuzzReplay", name, data)
	}
	frames, err := AppendFrames(nil, sampleRecords())
	if err != nil {
		t.Fatal(err)
	}
	writeSeed(t, "FuzzApplyFrames", "all_types", frames)
	writeSeed(t, "FuzzApplyFrames", "cut", frames[:len(frames)-3])
	writeSeed(t, "FuzzApplyFrames", "crc", flip(frames, 5))
}

// seedLogfiles are small real logfiles: clean, torn and corrupt.
func seedLogfiles(t *testing.T) map[string][]byte {
	dir := t.TempDir()
	read := func(recs ...Record) []byte {
		path := filepath.Join(dir, fmt.Sprint(len(recs), ".log"))
		os.Remove(path)
		writeLog(t, path, recs...)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	all := read(sampleRecords()...)
	jobs := read(threeJobs...)
	offs, _ := frameOffsets(t, threeJobs)
	crcBad := bytes.Clone(jobs)
	crcBad[len(crcBad)-1] ^= 0xff
	midBad := bytes.Clone(jobs)
	midBad[offs[1]+frameHeaderSize+1] ^= 0x01
	badLen := bytes.Clone(jobs)
	badLen[offs[1]] = 0x7f
	return map[string][]byte{
		"header_only":       read(),
		"every_record_type": all,
		"three_jobs":        jobs,
		"torn_payload":      jobs[:len(jobs)-3],
		"torn_frame_header": jobs[:offs[2]+5],
		"torn_file_header":  jobs[:7],
		"crc_bad_last":      crcBad,
		"crc_bad_middle":    midBad,
		"bad_length_middle": badLen,
		"zero_tail":         append(bytes.Clone(jobs), make([]byte, 32)...),
		"bad_magic":         append([]byte("ZTICKLOG"), jobs[8:]...),
	}
}

// writeSeed writes one corpus file in Go's format ("go test fuzz v1").
func writeSeed(t *testing.T, target, name string, data []byte) {
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// FuzzFrameReader: dump's read-only reader of tock and ztick logfiles
// never panics on arbitrary bytes, always makes progress, and stops.
func FuzzFrameReader(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0x10, 0, 0, 4, 't', 'o', 't', 'o', 0x16, 0x47, 0xbb, 0x5c, 0xee, 0xe1, 0x50, 0, 0, 0})
	f.Add([]byte("TOCKLOG\x00\x00\x00\x00\x01\x00\x00\x00\x05\x00\x00\x00\x00\x02\x00\x01x"))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		format, ok, err := DetectFormat(in)
		if err != nil || !ok {
			return
		}
		fr := NewFrameReader(bytes.NewReader(in), format)
		for steps := 0; steps <= len(in)+1; steps++ {
			before := fr.Offset()
			fr2, err := fr.Next(int64(len(in)))
			if err != nil {
				var fe *FrameError
				if !errors.As(err, &fe) || !fr.Skip(fe) {
					return
				}
			} else if _, derr := decodeFor(format, fr2.Payload); derr != nil {
				_ = derr // undecodable payloads are reported by dump, not fatal
			}
			if fr.Offset() <= before {
				return
			}
		}
		t.Fatalf("reader did not stop within %d steps", len(in)+1)
	})
}

func decodeFor(f Format, p []byte) (Record, error) {
	if f == FormatZtick {
		return DecodeZtickRecord(p)
	}
	return DecodeRecord(p)
}
