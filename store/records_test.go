package store

import (
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRecordRoundTrip(t *testing.T) { // docs/files.md
	for _, rec := range sampleRecords() {
		t.Run(rec.Type.String()+"/"+rec.Job.ID+rec.Rule.ID+rec.ID, func(t *testing.T) {
			p, err := AppendRecord(nil, rec)
			if err != nil {
				t.Fatalf("AppendRecord: %v", err)
			}
			got, err := DecodeRecord(p)
			if err != nil {
				t.Fatalf("DecodeRecord(%x): %v", p, err)
			}
			if !reflect.DeepEqual(got, rec) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, rec)
			}
		})
	}
}

// ztick.md §3.3 worked examples: full frames (u32 length, payload).
func TestRecordZtickVectors(t *testing.T) {
	tests := []struct {
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
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame, err := hex.DecodeString(strings.ReplaceAll(tt.frame, " ", ""))
			if err != nil {
				t.Fatal(err)
			}
			payload := frame[4:]
			if n := int(frame[0])<<24 | int(frame[1])<<16 | int(frame[2])<<8 | int(frame[3]); n != len(payload) {
				t.Fatalf("vector length prefix %d, payload %d bytes", n, len(payload))
			}
			got, err := AppendRecord(nil, tt.rec)
			if err != nil {
				t.Fatalf("AppendRecord: %v", err)
			}
			if string(got) != string(payload) {
				t.Fatalf("encoded\n got % x\nwant % x", got, payload)
			}
			dec, err := DecodeRecord(payload)
			if err != nil {
				t.Fatalf("DecodeRecord: %v", err)
			}
			if !reflect.DeepEqual(dec, tt.rec) {
				t.Fatalf("decoded %+v, want %+v", dec, tt.rec)
			}
		})
	}
}

func TestAppendRecordAppends(t *testing.T) {
	dst := []byte("prefix")
	got, err := AppendRecord(dst, jobRemoval("x"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "prefix\x02\x00\x01x" {
		t.Fatalf("got %q", got)
	}
	got, err = AppendRecord(dst, ruleRec("r", "p", RunnerShell))
	if err == nil || string(got) != "prefix" {
		t.Fatalf("invalid record: got %q, %v; want dst unchanged and an error", got, err)
	}
}

func TestDecodeRecordRejects(t *testing.T) {
	long := strings.Repeat("x", 3)
	tests := []struct {
		name    string
		payload string // hex, spaces ignored
		want    string
	}{
		{"empty", "", "truncated record type"},
		{"unknown type", "06 00 01 78", "unknown record type 6"},
		{"owner truncated", "05 00 01 78", "truncated file id"},
		{"type ff", "ff", "unknown record type 255"},
		{"job truncated id length", "00 00", "truncated job id length"},
		{"job truncated id", "00 00 04 74 6f", "truncated job id"},
		{"job truncated execution", "00 00 01 78 00 00 00", "truncated execution"},
		{"job missing status", "00 00 01 78 00 00 00 00 00 00 00 01", "truncated status"},
		{"job unknown status", "00 00 01 78 00 00 00 00 00 00 00 01 04", "unknown status 4"},
		{"job trailing byte", "00 00 01 78 00 00 00 00 00 00 00 01 00 00", "1 trailing bytes"},
		{"rule unknown kind", "01 00 01 72 00 00 06", "unknown runner kind 6"},
		{"rule missing kind", "01 00 01 72 00 00", "truncated runner kind"},
		{"rule missing pattern", "01 00 01 72", "truncated rule pattern length"},
		{"shell missing command", "01 00 01 72 00 00 00", "truncated runner argument length"},
		{"shell two commands", "01 00 01 72 00 00 00 00 01 61 00 01 62", "3 trailing bytes"},
		{"amqp two strings", "01 00 01 72 00 00 01 00 01 61 00 01 62", "truncated runner argument length"},
		{"http one string", "01 00 01 72 00 00 04 00 03 47 45 54", "truncated runner argument length"},
		{"redis two strings", "01 00 01 72 00 00 05 00 01 61 00 01 62", "truncated runner argument length"},
		{"direct missing argc", "01 00 01 72 00 00 02 00 01 61", "truncated runner argument count"},
		{"direct argc past end", "01 00 01 72 00 00 02 00 01 61 00 02 00 01 62", "truncated runner argument length"},
		{"direct huge argc", "01 00 01 72 00 00 02 00 01 61 ff ff", "truncated runner argument length"},
		{"awf missing workflow", "01 00 01 72 00 00 03", "truncated runner argument length"},
		{"awf trailing", "01 00 01 72 00 00 03 00 01 61 00 00 00", "1 trailing bytes"},
		{"job removal truncated", "02 00 02 78", "truncated id"},
		{"rule removal trailing", "03 00 01 78 79", "1 trailing bytes"},
		{"status has_outcome 3", "04 00 01 78 00 00 00 00 00 00 00 01 02 03", "has_outcome is 3"},
		{"status missing has_outcome", "04 00 01 78 00 00 00 00 00 00 00 01 02", "truncated has_outcome"},
		{"status unknown status", "04 00 01 78 00 00 00 00 00 00 00 01 07 00", "unknown status 7"},
		{"status truncated outcome", "04 00 01 78 00 00 00 00 00 00 00 01 02 01 00 00", "truncated started_at"},
		{"status missing output", "04 00 01 78 00000000 00000001 02 01 0000000000000001 0000000000000002 00000000 00000000 0000", "truncated output length"},
		{"status trailing", "04 00 01 78 00 00 00 00 00 00 00 01 02 00 " + hex.EncodeToString([]byte(long)), "3 trailing bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := hex.DecodeString(strings.ReplaceAll(tt.payload, " ", ""))
			if err != nil {
				t.Fatal(err)
			}
			rec, err := DecodeRecord(p)
			if err == nil {
				t.Fatalf("DecodeRecord(%x) = %+v, want error containing %q", p, rec, tt.want)
			}
			if !errors.Is(err, ErrInvalidRecord) {
				t.Errorf("error %v does not wrap ErrInvalidRecord", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestAppendRecordRejects(t *testing.T) {
	long := strings.Repeat("x", maxString+1)
	tests := []struct {
		name string
		rec  Record
		want string
	}{
		{"unknown type", Record{Type: 9}, "unknown record type 9"},
		{"job bad status", jobRec("j", 1, 4), "unknown status 4"},
		{"status bad status", statusRec("j", 1, 9, nil), "unknown status 9"},
		{"job id too long", jobRec(long, 1, Planned), "job id is 65536 bytes"},
		{"status id too long", statusRec(long, 1, Executed, &Outcome{}), "job id is 65536 bytes"},
		{"rule id too long", ruleRec(long, "p", RunnerShell, "c"), "rule id is 65536 bytes"},
		{"pattern too long", ruleRec("r", long, RunnerShell, "c"), "rule pattern is 65536 bytes"},
		{"argument too long", ruleRec("r", "p", RunnerHTTP, "GET", long), "http argument 1 is 65536 bytes"},
		{"removal id too long", jobRemoval(long), "id is 65536 bytes"},
		{"rule removal id too long", ruleRemoval(long), "id is 65536 bytes"},
		{"unknown kind", ruleRec("r", "p", 6, "c"), "unknown runner kind 6"},
		{"shell no command", ruleRec("r", "p", RunnerShell), "exactly 1 arguments, has 0"},
		{"shell two commands", ruleRec("r", "p", RunnerShell, "a", "b"), "exactly 1 arguments, has 2"},
		{"amqp two", ruleRec("r", "p", RunnerAMQP, "a", "b"), "exactly 3 arguments, has 2"},
		{"direct none", ruleRec("r", "p", RunnerDirect), "at least 1 argument, has 0"},
		{"direct too many", ruleRec("r", "p", RunnerDirect, make([]string, maxString+2)...), "has 65537 arguments"},
		{"awf none", ruleRec("r", "p", RunnerAWF), "at least 1 argument, has 0"},
		{"http one", ruleRec("r", "p", RunnerHTTP, "GET"), "exactly 2 arguments, has 1"},
		{"http three", ruleRec("r", "p", RunnerHTTP, "GET", "u", "x"), "exactly 2 arguments, has 3"},
		{"redis two", ruleRec("r", "p", RunnerRedis, "a", "b"), "exactly 3 arguments, has 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := AppendRecord(nil, tt.rec)
			if err == nil {
				t.Fatalf("AppendRecord succeeded, want error containing %q", tt.want)
			}
			if !errors.Is(err, ErrInvalidRecord) {
				t.Errorf("error %v does not wrap ErrInvalidRecord", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestAppendRecordTruncatesOutcome(t *testing.T) {
	// "é" is 2 bytes; an odd-length prefix forces the cut to a rune boundary.
	errText := "E" + strings.Repeat("é", maxString/2+10)
	output := strings.Repeat("é", maxString/2+10) + "END"
	rec := statusRec("j", 1, Failed, &Outcome{Error: errText, Output: output})
	p, err := AppendRecord(nil, rec)
	if err != nil {
		t.Fatalf("AppendRecord: %v", err)
	}
	got, err := DecodeRecord(p)
	if err != nil {
		t.Fatalf("DecodeRecord: %v", err)
	}
	o := got.Job.Outcome
	for _, f := range []struct{ name, got, full string }{{"error", o.Error, errText}, {"output", o.Output, output}} {
		if len(f.got) > maxString || len(f.got) < maxString-3 {
			t.Errorf("%s is %d bytes, want just under %d", f.name, len(f.got), maxString)
		}
		if !utf8.ValidString(f.got) {
			t.Errorf("%s was cut inside a rune", f.name)
		}
	}
	if !strings.HasPrefix(errText, o.Error) {
		t.Error("error lost its head, want the start kept")
	}
	if !strings.HasSuffix(o.Output, "END") {
		t.Error("output lost its tail, want the end kept")
	}
}

func TestRecordTypeString(t *testing.T) {
	for typ, want := range map[RecordType]string{RecordJob: "job", RecordStatus: "status", 7: "record(7)"} {
		if got := typ.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", uint8(typ), got, want)
		}
	}
}
