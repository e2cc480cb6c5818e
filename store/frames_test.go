package store

import (
	"bytes"
	"errors"
	"testing"
)

// TestFrames: AppendFrames' bytes are what EachFrame, DecodeFrames and
// ApplyFrames read, and damage is an error wrapping ErrInvalidRecord.
func TestFrames(t *testing.T) {
	recs := []Record{
		{Type: RecordJob, Job: Job{ID: "a", Execution: 1, Status: Planned}},
		{Type: RecordJob, Job: Job{ID: "b", Execution: 2, Status: Planned}},
		{Type: RecordJobRemoval, ID: "a"},
	}
	b, err := AppendFrames(nil, recs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeFrames(b)
	if err != nil || !equalRecords(got, recs) {
		t.Fatalf("DecodeFrames = %+v, %v", got, err)
	}
	j := NewJobs()
	if n, err := j.ApplyFrames(b); n != 3 || err != nil || j.Len() != 1 {
		t.Fatalf("ApplyFrames = %d, %v; %d jobs", n, err, j.Len())
	}
	for _, bad := range [][]byte{b[:len(b)-1], append(bytes.Clone(b), 0), flip(b, 9)} {
		if _, err := DecodeFrames(bad); !errors.Is(err, ErrInvalidRecord) {
			t.Fatalf("damaged frames: %v", err)
		}
	}
	if _, err := AppendFrames(nil, []Record{{Type: 99}}); err == nil {
		t.Fatal("invalid record encoded")
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

// FuzzApplyFrames: any bytes apply as frames or fail with an error
// wrapping ErrInvalidRecord, and ApplyFrames agrees with DecodeFrames on
// how many records there are; what decodes re-encodes to the same bytes.
func FuzzApplyFrames(f *testing.F) {
	f.Add([]byte{})
	if b, err := AppendFrames(nil, []Record{{Type: RecordJob, Job: Job{ID: "a", Execution: 1, Status: Planned}}, {Type: RecordJobRemoval, ID: "a"}}); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, derr := DecodeFrames(b)
		n, aerr := NewJobs().ApplyFrames(b)
		if (derr == nil) != (aerr == nil) {
			t.Fatalf("DecodeFrames (%v) and ApplyFrames (%v) disagree", derr, aerr)
		}
		if derr != nil {
			if !errors.Is(derr, ErrInvalidRecord) || !errors.Is(aerr, ErrInvalidRecord) {
				t.Fatalf("errors do not wrap ErrInvalidRecord: %v / %v", derr, aerr)
			}
			return
		}
		if n != len(recs) {
			t.Fatalf("ApplyFrames applied %d, DecodeFrames read %d", n, len(recs))
		}
		again, err := AppendFrames(nil, recs)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding: %v\n in % x\nout % x", err, b, again)
		}
	})
}
