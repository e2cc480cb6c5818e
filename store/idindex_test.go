package store

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// Ids whose hashes collide completely (same tag, same probe start) are
// told apart by their bytes, and removing one from the middle of a probe
// run leaves the others findable (backward-shift deletion).
func TestIDIndexFullCollisions(t *testing.T) {
	var ids idArena
	var recs slab
	x := newIDIndex()
	const h = 0xdeadbeef_00000005 // every id gets this hash
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m"}
	for i, n := range names {
		*recs.at(recs.grow()) = rec{idOff: ids.add(n)}
		x.insert(h, uint32(i))
	}
	// Other ids, with homes inside the run, interleave with it.
	for i := range 20 {
		n := fmt.Sprint("other", i)
		*recs.at(recs.grow()) = rec{idOff: ids.add(n)}
		x.insert(uint64(i), recs.n-1)
	}
	check := func(present map[string]bool) {
		t.Helper()
		for i, n := range names {
			_, s, ok := x.find(n, h, &ids, &recs)
			if ok != present[n] || (ok && s != uint32(i)) {
				t.Fatalf("find(%s) = %d, %v; want present=%v", n, s, ok, present[n])
			}
		}
		for i := range 20 {
			if _, _, ok := x.find(fmt.Sprint("other", i), uint64(i), &ids, &recs); !ok {
				t.Fatalf("other%d lost", i)
			}
		}
		if _, _, ok := x.find("zz", h, &ids, &recs); ok {
			t.Fatal("found an id never inserted")
		}
	}
	present := map[string]bool{}
	for _, n := range names {
		present[n] = true
	}
	check(present)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, i := range rng.Perm(len(names)) {
		pos, _, ok := x.find(names[i], h, &ids, &recs)
		if !ok {
			t.Fatalf("%s missing before its removal", names[i])
		}
		x.removeAt(pos)
		delete(present, names[i])
		check(present)
	}
	if x.n != 20 {
		t.Fatalf("index counts %d entries, want 20", x.n)
	}
}

// Many jobs set and removed: the store agrees with a map at every step,
// through index growth, slot reuse and arena compaction; an id handed out
// before a compaction still reads the same afterwards.
func TestJobsChurnAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	j := NewJobs()
	type want struct {
		exec    int64
		outcome *Outcome
	}
	model := map[string]want{}
	var kept, copies []string // ids read from the store, checked at the end
	freed, compacted := false, false
	id := func() string { n := rng.IntN(5000); return fmt.Sprintf("churn.%s.%d", strings.Repeat("x", n%40), n) }
	for step := range 200_000 {
		switch op := rng.IntN(10); {
		case op < 5:
			k, e := id(), rng.Int64N(1000)
			j.Set(k, e)
			w := model[k]
			model[k] = want{exec: e, outcome: w.outcome}
		case op < 8:
			k, dead := id(), j.ids.dead
			_, in := model[k]
			if j.Remove(k) != in {
				t.Fatalf("step %d: Remove(%s) disagrees with the model (present %v)", step, k, in)
			}
			delete(model, k)
			compacted = compacted || j.ids.dead < dead
			freed = freed || len(j.free) > 0
		case op < 9:
			k := id()
			o := &Outcome{Output: k}
			if j.SetStatus(k, Executed, o) {
				model[k] = want{exec: model[k].exec, outcome: o}
			}
		default:
			j.Query("churn.x", func(job Job) bool {
				if len(kept) < 1000 {
					kept = append(kept, job.ID)
					copies = append(copies, strings.Clone(job.ID))
				}
				return false
			})
		}
		if j.Len() != len(model) {
			t.Fatalf("step %d: Len %d, model %d", step, j.Len(), len(model))
		}
	}
	for k, w := range model {
		got, ok := j.Get(k)
		if !ok || got.Execution != w.exec || got.Outcome != w.outcome {
			t.Fatalf("Get(%s) = %+v, %v; want %+v", k, got, ok, w)
		}
	}
	n := 0
	j.Query("", func(job Job) bool {
		if _, ok := model[job.ID]; !ok {
			t.Fatalf("Query returned %q, not in the model", job.ID)
		}
		n++
		return true
	})
	if n != len(model) {
		t.Fatalf("Query saw %d jobs, model has %d", n, len(model))
	}
	if !slices.Equal(kept, copies) {
		t.Fatal("an id handed out earlier changed")
	}
	if !freed || !compacted || len(kept) == 0 {
		t.Fatalf("freed %v, compacted %v, ids kept %d: the test does not exercise reuse and compaction", freed, compacted, len(kept))
	}
}

// A freed slot reused by a new job does not inherit the old job's outcome
// or generation.
func TestJobsSlotReuseStartsClean(t *testing.T) {
	j := NewJobs()
	j.Set("old", 1)
	j.PopDue(1, 0, nil)
	j.SetStatus("old", Failed, &Outcome{Error: "boom"})
	j.Remove("old")
	j.Set("new", 5)
	got, ok := j.Get("new")
	if !ok || got.Outcome != nil || got.Status != Planned || got.Execution != 5 {
		t.Fatalf("new job in a reused slot: %+v", got)
	}
	if len(j.outcomes) != 0 {
		t.Fatalf("outcomes kept for removed jobs: %d", len(j.outcomes))
	}
	if ids := popIDs(j, 10, 0); !slices.Equal(ids, []string{"new"}) {
		t.Fatalf("due %v", ids)
	}
}

// Restore of a job removed in the failed batch brings back its outcome and
// generation.
func TestRestoreRemovedJob(t *testing.T) {
	j := NewJobs()
	j.Set("a", 1)
	var gen uint64
	j.PopDue(1, 0, func(_ Job, g uint64) { gen = g })
	o := &Outcome{Output: "x"}
	j.SetStatus("a", Triggered, o)
	sv := j.Save("a")
	j.Remove("a")
	j.Restore(sv)
	got, ok := j.Get("a")
	if !ok || got.Outcome != o || got.Status != Triggered {
		t.Fatalf("restored %+v, %v", got, ok)
	}
	if !j.Complete("a", gen, Executed, nil) {
		t.Fatal("restored job lost its generation")
	}
}

// Growth moves the old table over a few clusters per insert: while it
// does, every id is found in whichever table holds it, removals from
// either table keep the rest findable, and once done the old table is
// gone with nothing lost. Hashes are chosen to make long clusters and
// clusters that wrap around the table's end.
func TestIDIndexIncrementalGrowth(t *testing.T) {
	var ids idArena
	var recs slab
	x := newIDIndex()
	rng := rand.New(rand.NewPCG(7, 8))
	hashes := map[string]uint64{}
	live := map[string]uint32{}
	migrating, removedOld := 0, 0
	check := func(step int) {
		for id, s := range live {
			if _, got, ok := x.find(id, hashes[id], &ids, &recs); !ok || got != s {
				t.Fatalf("step %d: %s: slot %d, %v; want %d", step, id, got, ok, s)
			}
		}
	}
	for step := range 30_000 {
		if x.old != nil {
			migrating++
		}
		if len(live) > 0 && rng.IntN(3) == 0 {
			for id := range live { // some live id
				pos, _, ok := x.find(id, hashes[id], &ids, &recs)
				if !ok {
					t.Fatalf("step %d: %s missing", step, id)
				}
				if pos&inOld != 0 {
					removedOld++
				}
				x.removeAt(pos)
				delete(live, id)
				break
			}
		} else {
			id := fmt.Sprint("id", step)
			// A quarter of the ids have their home in the last slots of
			// the table, whatever its size: a cluster there wraps around.
			h := rng.Uint64()
			if rng.IntN(4) == 0 {
				h |= 0xffffffff - uint64(rng.IntN(3))
			}
			hashes[id] = h
			*recs.at(recs.grow()) = rec{idOff: ids.add(id)}
			s := recs.n - 1
			pos, _, ok := x.find(id, h, &ids, &recs)
			if ok {
				t.Fatalf("step %d: %s found before its insert", step, id)
			}
			x.insertAt(pos, h, s)
			live[id] = s
		}
		if x.n != len(live) {
			t.Fatalf("step %d: index counts %d, want %d", step, x.n, len(live))
		}
		if step%997 == 0 {
			check(step)
		}
	}
	check(-1)
	if migrating == 0 || removedOld == 0 {
		t.Fatalf("steps while migrating %d, removals from the old table %d: the test does not exercise migration", migrating, removedOld)
	}
}
