package store

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fuzzBase is the store a payload is applied to in FuzzApplyPayload: jobs
// in every status, one with an outcome, one with an attempt, so removals
// and status records find something.
func fuzzBase() *Jobs {
	j := NewJobs()
	j.Set("toto", 1)
	j.Set("web.1", 2)
	j.Set("", 3)
	j.Set("a", 1) // triggered: the seeds' status records apply to it
	j.PopDue(2, 0, nil)
	j.SetStatus("web.1", Failed, &Outcome{Error: "x"})
	return j
}

// FuzzApplyPayload: replay's in-place path gives exactly what DecodeRecord
// and Apply give, for any payload: the same error text, the same state.
func FuzzApplyPayload(f *testing.F) {
	// The record forms added since the seeds in testdata were written: a
	// status record whose outcome carries its attempt (has_outcome 2) and
	// owner records (see owner.go), valid and not.
	for _, r := range newRecordForms() {
		p, err := AppendRecord(nil, r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p)
		f.Add(p[:len(p)-1])
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		fast, slow := fuzzBase(), fuzzBase()
		var owner Owner
		ferr := fast.applyPayload(p, &owner)
		rec, serr := DecodeRecord(p)
		var want Owner
		if serr == nil {
			slow.Apply(rec)
			if rec.Type == RecordOwner {
				want = rec.Owner
			}
		}
		if (ferr == nil) != (serr == nil) || (ferr != nil && ferr.Error() != serr.Error()) {
			t.Fatalf("applyPayload error %v, DecodeRecord error %v", ferr, serr)
		}
		if owner != want {
			t.Fatalf("owner %+v, want %+v", owner, want)
		}
		if a, b := jobsAttempts(fast), jobsAttempts(slow); !reflect.DeepEqual(a, b) {
			t.Fatalf("attempts %v, want %v", a, b)
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
	logs := seedLogfiles(t)
	fenced := filepath.Join(dir, "fenced.log")
	writeLog(t, fenced, newRecordForms()...)
	data, err := os.ReadFile(fenced)
	if err != nil {
		t.Fatal(err)
	}
	logs["fenced_with_attempts"] = data
	logs["fenced_torn"] = data[:len(data)-2]
	for name, data := range logs {
		t.Run(name, func(t *testing.T) {
			a, b := filepath.Join(dir, name+".a"), filepath.Join(dir, name+".b")
			for _, p := range []string{a, b} {
				if err := os.WriteFile(p, data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			slow := NewJobs()
			sres, sowner, serr := ReplayShard(a, 0, func(r Record) error { slow.Apply(r); return nil }, true)
			fast := NewJobs()
			fres, fowner, ferr := ReplayShardJobs(b, 0, fast, true)
			if (serr == nil) != (ferr == nil) || (serr != nil && serr.Error() != strings.ReplaceAll(ferr.Error(), b, a)) {
				t.Fatalf("errors differ: Replay %v, ReplayJobs %v", serr, ferr)
			}
			if sres != fres {
				t.Fatalf("results differ: %+v, %+v", sres, fres)
			}
			if !reflect.DeepEqual(jobsState(slow), jobsState(fast)) {
				t.Fatalf("jobs differ: %v, %v", jobsState(slow), jobsState(fast))
			}
			if sa, fa := jobsAttempts(slow), jobsAttempts(fast); !reflect.DeepEqual(sa, fa) {
				t.Fatalf("attempts differ: %v, %v", sa, fa)
			}
			if sowner != fowner {
				t.Fatalf("owners differ: %+v, %+v", sowner, fowner)
			}
			if name == "fenced_with_attempts" {
				if got := jobsAttempts(fast); got["a"] != 2 || got["b"] != 1 {
					t.Fatalf("attempts %v, want a:2 b:1", got)
				}
				if fowner != (Owner{FileID: 7, Epoch: 3}) {
					t.Fatalf("owner %+v, want the last one", fowner)
				}
			}
			sb, _ := os.ReadFile(a)
			fb, _ := os.ReadFile(b)
			if string(sb) != string(fb) {
				t.Fatal("the two replays left different files")
			}
		})
	}
}

// newRecordForms is a shard log in the record forms of fencing and of
// attempts: owner records, a job triggered twice (its worker died) whose
// outcome carries its attempt, one whose outcome carries none (an older
// tock: the store stamps it), a new owner, a removal.
func newRecordForms() []Record {
	return []Record{
		{Type: RecordOwner, Owner: Owner{FileID: 7, Epoch: 1}},
		jobRec("a", 5, Planned),
		jobRec("b", 6, Planned),
		statusRec("a", 5, Triggered, nil),
		statusRec("a", 5, Triggered, nil),
		statusRec("a", 5, Failed, &Outcome{StartedAt: 9, Duration: 2, ExitCode: 1, Error: "boom", Attempt: 2}),
		statusRec("b", 6, Triggered, nil),
		statusRec("b", 6, Executed, &Outcome{StartedAt: 10, Output: "ok"}),
		{Type: RecordOwner, Owner: Owner{FileID: 7, Epoch: 3}},
		jobRec("c", 7, Planned),
		jobRemoval("c"),
	}
}

// jobsAttempts is every job's attempt count, which Job does not show.
func jobsAttempts(j *Jobs) map[string]uint16 {
	m := make(map[string]uint16)
	for s := range j.recs.n {
		if r := j.recs.at(s); r.flags&recLive != 0 {
			m[j.idOf(s)] = r.attempts
		}
	}
	return m
}
