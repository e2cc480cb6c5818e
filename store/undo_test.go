package store

import "testing"

// TestSaveRestore: undoing a re-SET of a running job restores its
// generation, so the run's result still applies.
func TestSaveRestore(t *testing.T) {
	j := NewJobs()
	j.Set("run", 1)
	var gen uint64
	j.PopDue(10, 0, func(_ Job, g uint64) { gen = g })
	saved, absent := j.Save("run"), j.Save("new")
	j.Set("run", 500)
	j.Set("new", 7)
	j.Restore(saved)
	j.Restore(absent)
	if _, ok := j.Get("new"); ok {
		t.Fatal("a job created by the undone batch survived")
	}
	got, _ := j.Get("run")
	if got.Status != Triggered || got.Execution != 1 {
		t.Fatalf("restored job: %+v", got)
	}
	if c := j.Counts(); c.Total != 1 || c.Triggered != 1 || c.Planned != 0 {
		t.Fatalf("counts after restore: %+v", c)
	}
	if !j.Complete("run", gen, Executed, &Outcome{}) {
		t.Fatal("the running job's result was refused after the undo")
	}
	if n := j.PopDue(1000, 0, func(Job, uint64) {}); n != 0 {
		t.Fatalf("restored job was due again: %d", n)
	}
}
