package store

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fuzzBase is the store a payload is applied to in FuzzApplyPayload: jobs
// in every status, one with an outcome, so removals and status records
// find something.
func fuzzBase() *Jobs {
	j := NewJobs()
	j.Set("toto", 1)
	j.Set("web.1", 2)
	j.Set("", 3)
	j.PopDue(2, 0, nil)
	j.SetStatus("web.1", Failed, &Outcome{Error: "x"})
	return j
}

// FuzzApplyPayload: replay's in-place path gives exactly what DecodeRecord
// and Apply give, for any payload: the same error text, the same state.
func FuzzApplyPayload(f *testing.F) {
	f.Fuzz(func(t *testing.T, p []byte) {
		fast, slow := fuzzBase(), fuzzBase()
		ferr := fast.applyPayload(p)
		rec, serr := DecodeRecord(p)
		if serr == nil {
			slow.Apply(rec)
		}
		if (ferr == nil) != (serr == nil) || (ferr != nil && ferr.Error() != serr.Error()) {
			t.Fatalf("applyPayload error %v, DecodeRecord error %v", ferr, serr)
		}
		p = append(p[:0:0], p...) // the store must not keep the payload's bytes
		for i := range p {
			p[i] ^= 0xff
		}
		if !reflect.DeepEqual(jobsState(fast), jobsState(slow)) || fast.Counts() != slow.Counts() {
			t.Fatalf("state %v, want %v", jobsState(fast), jobsState(slow))
		}
	})
}

// ReplayJobs and Replay with Apply agree on every seed logfile: the same
// result, error and jobs, clean, torn or corrupt.
func TestReplayJobsMatchesReplay(t *testing.T) {
	dir := t.TempDir()
	for name, data := range seedLogfiles(t) {
		t.Run(name, func(t *testing.T) {
			a, b := filepath.Join(dir, name+".a"), filepath.Join(dir, name+".b")
			for _, p := range []string{a, b} {
				if err := os.WriteFile(p, data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			slow := NewJobs()
			sres, serr := Replay(a, func(r Record) error { slow.Apply(r); return nil })
			fast := NewJobs()
			fres, ferr := ReplayJobs(b, 0, fast, true)
			if (serr == nil) != (ferr == nil) || (serr != nil && serr.Error() != strings.ReplaceAll(ferr.Error(), b, a)) {
				t.Fatalf("errors differ: Replay %v, ReplayJobs %v", serr, ferr)
			}
			if sres != fres {
				t.Fatalf("results differ: %+v, %+v", sres, fres)
			}
			if !reflect.DeepEqual(jobsState(slow), jobsState(fast)) {
				t.Fatalf("jobs differ: %v, %v", jobsState(slow), jobsState(fast))
			}
			sb, _ := os.ReadFile(a)
			fb, _ := os.ReadFile(b)
			if string(sb) != string(fb) {
				t.Fatal("the two replays left different files")
			}
		})
	}
}
