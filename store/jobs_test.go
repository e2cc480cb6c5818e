package store

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"unsafe"
)

// popIDs pops every job due at now and returns their ids in order.
func popIDs(j *Jobs, now int64, max int) []string {
	var ids []string
	j.PopDue(now, max, func(job Job, _ uint64) { ids = append(ids, job.ID) })
	return ids
}

func counts(total, planned, triggered, executed, failed int) Counts {
	return Counts{Total: total, Planned: planned, Triggered: triggered, Executed: executed, Failed: failed}
}

// Due jobs come out by execution time, equal times in SET order (ztick
// §1.11); a re-SET goes behind jobs already planned at the same time.
func TestJobsPopDueOrder(t *testing.T) { // docs/protocol.md
	tests := []struct {
		name string
		sets []struct {
			id   string
			exec int64
		}
		now  int64
		max  int
		want []string
	}{
		{"by time", sets("c", 30, "a", 10, "b", 20), 100, 0, []string{"a", "b", "c"}},
		{"ties by insertion", sets("x", 5, "a", 5, "m", 5), 5, 0, []string{"x", "a", "m"}},
		{"re-set goes behind equal times", sets("a", 5, "b", 5, "a", 5), 5, 0, []string{"b", "a"}},
		{"re-set to later time", sets("a", 1, "b", 2, "a", 9), 5, 0, []string{"b"}},
		{"only due jobs", sets("a", 1, "b", 6, "c", 5), 5, 0, []string{"a", "c"}},
		{"due means <= now", sets("a", 5), 5, 0, []string{"a"}},
		{"past jobs fire", sets("a", -100, "b", 0), 1, 0, []string{"a", "b"}},
		{"max caps the batch", sets("a", 1, "b", 2, "c", 3), 10, 2, []string{"a", "b"}},
		{"nothing due", sets("a", 10), 9, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := NewJobs()
			for _, s := range tt.sets {
				j.Set(s.id, s.exec)
			}
			if got := popIDs(j, tt.now, tt.max); !slices.Equal(got, tt.want) {
				t.Fatalf("PopDue order %v, want %v", got, tt.want)
			}
			for _, id := range tt.want {
				if job, _ := j.Get(id); job.Status != Triggered {
					t.Errorf("%s is %v after PopDue, want triggered", id, job.Status)
				}
			}
		})
	}
}

func sets(pairs ...any) []struct {
	id   string
	exec int64
} {
	var out []struct {
		id   string
		exec int64
	}
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, struct {
			id   string
			exec int64
		}{pairs[i].(string), int64(pairs[i+1].(int))})
	}
	return out
}

// Counts are checked after every step of a job's life.
func TestJobsCountsEveryStep(t *testing.T) {
	j := NewJobs()
	var gen uint64
	steps := []struct {
		name string
		do   func()
		want Counts
	}{
		{"empty", func() {}, counts(0, 0, 0, 0, 0)},
		{"set a", func() { j.Set("a", 1) }, counts(1, 1, 0, 0, 0)},
		{"set b", func() { j.Set("b", 2) }, counts(2, 2, 0, 0, 0)},
		{"re-set a", func() { j.Set("a", 3) }, counts(2, 2, 0, 0, 0)},
		{"pop b", func() { j.PopDue(2, 0, func(_ Job, g uint64) { gen = g }) }, counts(2, 1, 1, 0, 0)},
		{"complete b", func() { j.Complete("b", gen, Executed, &Outcome{}) }, counts(2, 1, 0, 1, 0)},
		{"pop a", func() { j.PopDue(3, 0, func(_ Job, g uint64) { gen = g }) }, counts(2, 0, 1, 1, 0)},
		{"a fails", func() { j.Complete("a", gen, Failed, &Outcome{Error: "exit 1"}) }, counts(2, 0, 0, 1, 1)},
		{"re-set b", func() { j.Set("b", 9) }, counts(2, 1, 0, 0, 1)},
		{"no rule for b", func() { j.SetStatus("b", Failed, nil) }, counts(2, 0, 0, 0, 2)},
		{"remove a", func() { j.Remove("a") }, counts(1, 0, 0, 0, 1)},
		{"remove a again", func() { j.Remove("a") }, counts(1, 0, 0, 0, 1)},
		{"replay a triggered", func() { j.Apply(jobRec("a", 1, Triggered)) }, counts(2, 0, 1, 0, 1)},
		{"replay b planned", func() { j.Apply(statusRec("b", 9, Planned, nil)) }, counts(2, 1, 1, 0, 0)},
		{"replay remove b", func() { j.Apply(jobRemoval("b")) }, counts(1, 0, 1, 0, 0)},
	}
	for _, s := range steps {
		s.do()
		if got := j.Counts(); got != s.want {
			t.Fatalf("after %q: counts %+v, want %+v", s.name, got, s.want)
		}
		if j.Len() != s.want.Total {
			t.Fatalf("after %q: Len %d, want %d", s.name, j.Len(), s.want.Total)
		}
	}
}

// A result is applied only to the run it belongs to (docs/protocol.md: a
// re-SET while the job runs is not overwritten by the old run's result).
func TestJobsComplete(t *testing.T) {
	tests := []struct {
		name    string
		between func(j *Jobs) // after the pop, before the result
		status  Status
		gen     func(popped uint64) uint64
		applied bool
		want    Status // the job's status afterwards
		gone    bool   // the job no longer exists
	}{
		{"current run", func(*Jobs) {}, Executed, same, true, Executed, false},
		{"failed run", func(*Jobs) {}, Failed, same, true, Failed, false},
		{"stale generation", func(*Jobs) {}, Executed, func(g uint64) uint64 { return g - 1 }, false, Triggered, false},
		{"re-set while running", func(j *Jobs) { j.Set("a", 50) }, Executed, same, false, Planned, false},
		{"re-set and re-run", func(j *Jobs) { j.Set("a", 5); j.PopDue(5, 0, nil) }, Executed, same, false, Triggered, false},
		{"removed while running", func(j *Jobs) { j.Remove("a") }, Executed, same, false, 0, true},
		{"result twice", func(j *Jobs) { j.SetStatus("a", Executed, nil) }, Failed, same, false, Executed, false},
		{"status not a result", func(*Jobs) {}, Planned, same, false, Triggered, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := NewJobs()
			j.Set("a", 1)
			var gen uint64
			j.PopDue(1, 0, func(_ Job, g uint64) { gen = g })
			tt.between(j)
			o := &Outcome{Duration: 7}
			if got := j.Complete("a", tt.gen(gen), tt.status, o); got != tt.applied {
				t.Fatalf("Complete applied = %v, want %v", got, tt.applied)
			}
			job, ok := j.Get("a")
			if ok == tt.gone {
				t.Fatalf("job exists = %v, want %v", ok, !tt.gone)
			}
			if tt.gone {
				return
			}
			if job.Status != tt.want {
				t.Errorf("status %v, want %v", job.Status, tt.want)
			}
			if tt.applied != (job.Outcome == o) {
				t.Errorf("outcome %v, applied %v", job.Outcome, tt.applied)
			}
		})
	}
}

func same(g uint64) uint64 { return g }

func TestJobsSetKeepsOutcomeAndBumpsGeneration(t *testing.T) {
	j := NewJobs()
	g1 := j.Set("a", 1)
	j.PopDue(1, 0, nil)
	o := &Outcome{Output: "done"}
	j.Complete("a", g1, Executed, o)
	g2 := j.Set("a", 2)
	if g2 <= g1 {
		t.Fatalf("generation %d after re-SET, was %d", g2, g1)
	}
	job, _ := j.Get("a")
	if job.Status != Planned || job.Execution != 2 || job.Outcome != o {
		t.Fatalf("after re-SET: %+v, want planned at 2 with the last outcome", job)
	}
	if next, ok := j.NextDue(); !ok || next != 2 {
		t.Fatalf("NextDue = %d, %v", next, ok)
	}
}

func TestJobsApply(t *testing.T) {
	o := &Outcome{ExitCode: 3, Error: "exit 3"}
	j := NewJobs()
	for _, r := range []Record{
		jobRec("p", 5, Planned),
		jobRec("t", 1, Triggered),
		jobRec("x", 1, Planned),
		statusRec("x", 1, Failed, o),
		statusRec("ghost", 1, Executed, o),
		jobRemoval("ghost"),
		ruleRec("r", "p", RunnerShell, "true"),
		ruleRemoval("p"),
	} {
		j.Apply(r)
	}
	want := map[string]Job{
		"p": {ID: "p", Execution: 5, Status: Planned},
		"t": {ID: "t", Execution: 1, Status: Triggered},
		"x": {ID: "x", Execution: 1, Status: Failed, Outcome: o},
	}
	if got := jobsState(j); !reflect.DeepEqual(got, want) {
		t.Fatalf("state %+v, want %+v", got, want)
	}
	if got := popIDs(j, 100, 0); !slices.Equal(got, []string{"p"}) {
		t.Fatalf("due after replay %v, want only the planned job", got)
	}
}

func TestJobsQuery(t *testing.T) {
	j := NewJobs()
	for _, id := range []string{"app.a", "app.b", "apq", "b"} {
		j.Set(id, 1)
	}
	var got []string
	j.Query("app.", func(job Job) bool { got = append(got, job.ID); return true })
	slices.Sort(got)
	if !slices.Equal(got, []string{"app.a", "app.b"}) {
		t.Fatalf("Query(app.) = %v", got)
	}
	n := 0
	j.Query("", func(Job) bool { n++; return false })
	if n != 1 {
		t.Fatalf("Query kept going after fn returned false: %d calls", n)
	}
}

// A snapshot replayed into an empty store gives the same state, with
// equal-time jobs still in SET order.
func TestJobsRecordsRebuild(t *testing.T) {
	j := NewJobs()
	for _, id := range []string{"c", "a", "b", "d"} {
		j.Set(id, 7)
	}
	j.Set("late", 1)
	var gen uint64
	j.PopDue(1, 0, func(_ Job, g uint64) { gen = g })
	j.Complete("late", gen, Executed, &Outcome{Output: "ok"})

	rebuilt := NewJobs()
	for _, r := range j.Records(nil) {
		rebuilt.Apply(r)
	}
	if !reflect.DeepEqual(jobsState(rebuilt), jobsState(j)) || rebuilt.Counts() != j.Counts() {
		t.Fatalf("rebuilt %v, want %v", jobsState(rebuilt), jobsState(j))
	}
	if got := popIDs(rebuilt, 7, 0); !slices.Equal(got, []string{"c", "a", "b", "d"}) {
		t.Fatalf("rebuilt fire order %v, want SET order", got)
	}
}

// The heap against a naive model, under random operations.
func TestJobsAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	j := NewJobs()
	type planned struct {
		exec int64
		seq  int
	}
	model := map[string]planned{} // planned jobs only
	seq := 0
	for step := range 20000 {
		id := fmt.Sprint("j", rng.IntN(300))
		switch op := rng.IntN(10); {
		case op < 5:
			exec := int64(rng.IntN(100))
			j.Set(id, exec)
			seq++
			model[id] = planned{exec, seq}
		case op < 7:
			j.Remove(id)
			delete(model, id)
		case op < 8:
			if j.SetStatus(id, Failed, nil) {
				delete(model, id)
			}
		default:
			now, max := int64(rng.IntN(100)), rng.IntN(5)
			var want []string
			for id, p := range model {
				if p.exec <= now {
					want = append(want, id)
				}
			}
			slices.SortFunc(want, func(a, b string) int {
				if model[a].exec != model[b].exec {
					return int(model[a].exec - model[b].exec)
				}
				return model[a].seq - model[b].seq
			})
			if max > 0 && len(want) > max {
				want = want[:max]
			}
			if got := popIDs(j, now, max); !equalStrings(got, want) {
				t.Fatalf("step %d: PopDue(%d, %d) = %v, want %v", step, now, max, got, want)
			}
			for _, id := range want {
				delete(model, id)
			}
		}
		if c := j.Counts(); c.Planned != len(model) || c.Total != j.Len() || c.Planned+c.Triggered+c.Executed+c.Failed != c.Total {
			t.Fatalf("step %d: counts %+v, model has %d planned", step, c, len(model))
		}
	}
}

func equalStrings(a, b []string) bool { return len(a) == 0 && len(b) == 0 || slices.Equal(a, b) }

// A shard may hold millions of jobs: a job's record stays 32 bytes and
// holds no pointer, so the collector never scans the slab
// (BenchmarkStoreMemory measures the whole cost per job).
func TestJobRecordStaysSmallAndPointerFree(t *testing.T) {
	if size := unsafe.Sizeof(rec{}); size > 32 {
		t.Fatalf("rec is %d bytes, want <= 32", size)
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[rec](), reflect.TypeFor[dueItem](), reflect.TypeFor[idIndex]().Field(0).Type.Elem()} {
		if hasPointers(typ) {
			t.Errorf("%v holds pointers: the collector would scan the slab", typ)
		}
	}
}

// A job is one SET's schedule: its attempts count the runs started since
// that SET, a run cut short and planned again (Replan) counts on, a new
// SET starts again from zero, and the outcome carries its attempt, also
// through the log and a compaction.
func TestAttempts(t *testing.T) {
	j := NewJobs()
	j.Set("a", 1)
	run := func() (uint64, bool) {
		var gen uint64
		n := j.PopDue(10, 0, func(job Job, g uint64) { gen = g })
		return gen, n == 1
	}
	if _, ok := run(); !ok {
		t.Fatal("not due")
	}
	j.Replan("a", 1) // the worker died: the job runs again
	gen, _ := run()
	o := &Outcome{Error: "boom"}
	if !j.Complete("a", gen, Failed, o) || o.Attempt != 2 {
		t.Fatalf("second run's outcome: attempt %d", o.Attempt)
	}
	// Logged and replayed, or compacted and replayed, it keeps its attempt.
	b, err := AppendRecord(nil, Record{Type: RecordStatus, Job: Job{ID: "a", Execution: 1, Status: Failed, Outcome: o}})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := DecodeRecord(b)
	if err != nil || dec.Job.Outcome.Attempt != 2 {
		t.Fatalf("decoded %+v, %v", dec.Job.Outcome, err)
	}
	again := NewJobs()
	for _, r := range j.Records(nil) {
		again.Apply(r)
	}
	if got, _ := again.Get("a"); got.Outcome == nil || got.Outcome.Attempt != 2 {
		t.Fatalf("after compaction: %+v", got.Outcome)
	}
	// Replaying a log of SET, trigger, trigger (a crash), outcome without
	// an attempt (an older tock) counts the triggers.
	old := NewJobs()
	old.Apply(Record{Type: RecordJob, Job: Job{ID: "b", Execution: 1, Status: Planned}})
	old.Apply(Record{Type: RecordStatus, Job: Job{ID: "b", Execution: 1, Status: Triggered}})
	old.Apply(Record{Type: RecordStatus, Job: Job{ID: "b", Execution: 1, Status: Triggered}})
	old.Apply(Record{Type: RecordStatus, Job: Job{ID: "b", Execution: 1, Status: Executed, Outcome: &Outcome{}}})
	if got, _ := old.Get("b"); got.Outcome.Attempt != 2 {
		t.Fatalf("replayed attempts: %d", got.Outcome.Attempt)
	}
	// A new SET is a new schedule.
	j.Set("a", 5)
	gen, _ = run()
	o = &Outcome{}
	j.Complete("a", gen, Executed, o)
	if o.Attempt != 1 {
		t.Fatalf("after a new SET: attempt %d", o.Attempt)
	}
	if s := unsafe.Sizeof(rec{}); s != 32 {
		t.Fatalf("rec is %d bytes, want 32", s)
	}
	// Save and Restore carry the count (an undone SET does not reset it).
	sv := j.Save("a")
	j.Set("a", 7)
	j.Restore(sv)
	if n := jobsAttempts(j)["a"]; n != 1 {
		t.Fatalf("after Save, Set, Restore: %d attempts, want 1", n)
	}
	j.Remove("a")
	j.Restore(sv)
	if n := jobsAttempts(j)["a"]; n != 1 {
		t.Fatalf("after Save, Remove, Restore: %d attempts, want 1", n)
	}
}

func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.String, reflect.Slice, reflect.Map, reflect.Chan, reflect.Func, reflect.Interface, reflect.UnsafePointer:
		return true
	case reflect.Array:
		return hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}
