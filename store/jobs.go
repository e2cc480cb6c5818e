package store

import (
	"cmp"
	"slices"
	"strings"
)

// Jobs is one shard's job store: every job by id, plus the planned ones in
// firing order. It is pure (no I/O, no clock: now is passed in) and not
// safe for concurrent use; the shard's loop owns it.
//
// Every Set gives the job a new generation, returned to the caller and
// handed out again by PopDue. An execution result is applied only with the
// generation it was started for, so a job re-SET while it runs keeps its
// new schedule when the old run finishes (ztick overwrote it).
//
// Outcomes are shared, not copied: an *Outcome given to the store or read
// from it must not be modified afterwards.
//
// Layout. A shard may hold millions of jobs, so the store is made of
// pointer-free slabs the garbage collector never has to scan: fixed-size
// records in one slice (a job is a slot number), ids in a byte arena, an
// open-addressing index from the id's hash to its slot, and the due heap
// over slot numbers. Only jobs that have an outcome (variable-size error
// text and output) have a pointer, in a map beside the slab.
//
// Ids handed out by Query, Page, Snapshot and Records share the arena's
// bytes (they are immutable: the arena is append-only and a compaction of
// it copies to a new one), so holding one keeps that arena alive; PopDue's
// ids, which executions keep while they run, are copies.
type Jobs struct {
	recs     slab     // by slot; a removed job's slot is on free
	free     []uint32 // slots to reuse
	index    idIndex
	ids      idArena
	due      dueHeap
	outcomes map[uint32]*Outcome // by slot, only for jobs that have one
	seq      uint64              // last generation handed out
	counts   [Failed + 1]int     // jobs per status, kept on every transition
}

// rec is one job: 32 bytes, no pointers.
type rec struct {
	exec    int64
	seq     uint64 // generation, and insertion order among equal times
	idOff   uint64 // where the id is in the arena
	heapIdx int32  // index in due while Planned, else -1
	status  Status
	flags   uint8
	// attempts counts the runs started since the last SET (in the
	// padding: the record stays 32 bytes).
	attempts uint16
}

const (
	recLive       = 1 << iota // the slot holds a job
	recHasOutcome             // outcomes[slot] is set
)

// Counts is how many jobs there are, in total and per status.
type Counts struct {
	Total, Planned, Triggered, Executed, Failed int
}

// NewJobs returns an empty store.
func NewJobs() *Jobs {
	return &Jobs{index: newIDIndex(), outcomes: make(map[uint32]*Outcome)}
}

// Len is the number of jobs.
func (j *Jobs) Len() int { return j.index.n }

// Counts returns the per-status counts in O(1).
func (j *Jobs) Counts() Counts {
	return Counts{
		Total:     j.index.n,
		Planned:   j.counts[Planned],
		Triggered: j.counts[Triggered],
		Executed:  j.counts[Executed],
		Failed:    j.counts[Failed],
	}
}

// lookup returns job id's slot, if it exists.
func (j *Jobs) lookup(id string) (uint32, bool) {
	_, slot, ok := j.index.find(id, hashID(j.index.seed, id), &j.ids, &j.recs)
	return slot, ok
}

// Hash is the hash of id that Warm takes.
func (j *Jobs) Hash(id string) uint64 { return hashID(j.index.seed, id) }

// Warm reads the index entry where the lookup of the id whose Hash is h
// starts, and returns a value of no meaning for the caller to keep (so
// that the read is not optimized away). In a store of millions of jobs
// that read is a cache miss, most of an upsert's time; a caller about to
// look up a batch of ids hashes them all, then warms them in a loop that
// does nothing else, so that the processor overlaps their misses instead
// of waiting for each in turn.
func (j *Jobs) Warm(h uint64) uint64 { return j.index.warm(h) }

// idOf returns the id in slot s, sharing the arena's bytes.
func (j *Jobs) idOf(s uint32) string { return j.ids.str(j.recs.at(s).idOff) }

func (j *Jobs) job(s uint32, id string) Job {
	r := j.recs.at(s)
	job := Job{ID: id, Execution: r.exec, Status: r.status}
	if r.flags&recHasOutcome != 0 {
		job.Outcome = j.outcomes[s]
	}
	return job
}

// setOutcome sets slot s's outcome (nil clears it).
func (j *Jobs) setOutcome(s uint32, o *Outcome) {
	if o == nil {
		if j.recs.at(s).flags&recHasOutcome != 0 {
			delete(j.outcomes, s)
			j.recs.at(s).flags &^= recHasOutcome
		}
		return
	}
	j.outcomes[s] = o
	j.recs.at(s).flags |= recHasOutcome
}

// Set creates or replaces job id, planned at execution, whatever its
// status was; the last outcome is kept. It returns the new generation.
func (j *Jobs) Set(id string, execution int64) uint64 {
	return j.upsert(id, execution, Planned)
}

func (j *Jobs) upsert(id string, execution int64, status Status) uint64 {
	j.seq++
	h := hashID(j.index.seed, id)
	pos, s, ok := j.index.find(id, h, &j.ids, &j.recs)
	if ok {
		r := j.recs.at(s)
		r.exec, r.seq, r.attempts = execution, j.seq, 0
		j.transition(s, status)
		return j.seq
	}
	j.insert(id, h, pos, execution, j.seq, status)
	return j.seq
}

// Replan plans job id again at execution without starting a new schedule:
// a run that was cut short (its worker died or stopped) runs again, and its
// attempt count goes on. It returns the new generation; false when the job
// does not exist.
func (j *Jobs) Replan(id string, execution int64) (uint64, bool) {
	s, ok := j.lookup(id)
	if !ok {
		return 0, false
	}
	j.seq++
	r := j.recs.at(s)
	r.exec, r.seq = execution, j.seq
	j.transition(s, Planned)
	return j.seq, true
}

// started counts a run of slot s.
func (j *Jobs) started(s uint32) {
	if r := j.recs.at(s); r.attempts < ^uint16(0) {
		r.attempts++
	}
}

// stamp gives o the attempt of slot s that produced it when it carries none.
func (j *Jobs) stamp(s uint32, o *Outcome) {
	if o != nil && o.Attempt == 0 {
		o.Attempt = uint32(j.recs.at(s).attempts)
	}
}

// insert adds job id, which does not exist, hashes to h and goes at
// position pos of the index (as find returned it), and returns its slot.
func (j *Jobs) insert(id string, h, pos uint64, exec int64, seq uint64, status Status) uint32 {
	var s uint32
	if n := len(j.free); n > 0 {
		s, j.free = j.free[n-1], j.free[:n-1]
	} else {
		s = j.recs.grow()
	}
	// The arena copies id: it may be a slice of a larger buffer the store
	// must not pin.
	*j.recs.at(s) = rec{exec: exec, seq: seq, idOff: j.ids.add(id), heapIdx: -1, status: status, flags: recLive}
	j.index.insertAt(pos, h, s)
	j.counts[status]++
	if status == Planned {
		j.due.push(&j.recs, s)
	}
	return s
}

// transition moves slot s to status, keeping counts and the due heap in
// step. It is also called when a planned job's key changed (planned →
// planned).
func (j *Jobs) transition(s uint32, to Status) {
	r := j.recs.at(s)
	from := r.status
	j.counts[from]--
	j.counts[to]++
	r.status = to
	switch {
	case from == Planned && to == Planned:
		j.due.fix(&j.recs, s)
	case from == Planned:
		j.due.remove(&j.recs, s)
	case to == Planned:
		j.due.push(&j.recs, s)
	}
}

// Get returns job id.
func (j *Jobs) Get(id string) (Job, bool) {
	s, ok := j.lookup(id)
	if !ok {
		return Job{}, false
	}
	return j.job(s, id), true
}

// Remove deletes job id and reports whether it existed. A result arriving
// later for a run of it is ignored by Complete.
func (j *Jobs) Remove(id string) bool {
	pos, s, ok := j.index.find(id, hashID(j.index.seed, id), &j.ids, &j.recs)
	if !ok {
		return false
	}
	r := j.recs.at(s)
	if r.status == Planned {
		j.due.remove(&j.recs, s)
	}
	j.counts[r.status]--
	j.setOutcome(s, nil)
	j.index.removeAt(pos)
	j.ids.release(r.idOff)
	*r = rec{heapIdx: -1}
	j.free = append(j.free, s)
	if j.ids.wasteful() {
		j.compactIDs()
	}
	return true
}

// compactIDs copies the live ids to a new arena. Ids already handed out
// keep the old one alive until they are dropped.
func (j *Jobs) compactIDs() {
	var fresh idArena
	for s := range j.recs.n {
		if r := j.recs.at(s); r.flags&recLive != 0 {
			r.idOff = fresh.add(j.ids.str(r.idOff))
		}
	}
	j.ids = fresh
}

// Query calls fn for every job whose id starts with prefix (bytewise; ""
// is every job), in no particular order, until fn returns false.
func (j *Jobs) Query(prefix string, fn func(Job) bool) {
	for s := range j.recs.n {
		if j.recs.at(s).flags&recLive == 0 {
			continue
		}
		if id := j.idOf(s); strings.HasPrefix(id, prefix) && !fn(j.job(s, id)) {
			return
		}
	}
}

// PopDue triggers up to max planned jobs whose execution is <= now (max <= 0
// means no limit), in (execution, insertion) order: each is marked
// Triggered, leaves the due heap, and is passed to fn with the generation
// to complete it with. It returns how many were triggered. fn may change
// the store; a job it plans again at a time <= now is popped again.
func (j *Jobs) PopDue(now int64, max int, fn func(job Job, gen uint64)) int {
	n := 0
	for len(j.due) > 0 && (max <= 0 || n < max) {
		top := j.due[0]
		if top.exec > now {
			break
		}
		s := top.slot
		j.transition(s, Triggered)
		j.started(s)
		n++
		if fn != nil {
			// A copy: an execution keeps its job's id while it runs.
			fn(j.job(s, strings.Clone(j.idOf(s))), j.recs.at(s).seq)
		}
	}
	return n
}

// NextDue returns the earliest planned execution, if any job is planned.
func (j *Jobs) NextDue() (int64, bool) {
	if len(j.due) == 0 {
		return 0, false
	}
	return j.due[0].exec, true
}

// Complete applies an execution's result: status Executed or Failed, and
// its outcome (nil keeps the previous one). It applies only if the job
// still exists, is Triggered and is at generation gen, so neither a
// removed job nor one re-SET since the run started is touched. It reports
// whether it applied.
func (j *Jobs) Complete(id string, gen uint64, status Status, o *Outcome) bool {
	if status != Executed && status != Failed {
		return false
	}
	s, ok := j.lookup(id)
	if !ok || j.recs.at(s).seq != gen || j.recs.at(s).status != Triggered {
		return false
	}
	j.transition(s, status)
	if o != nil {
		j.stamp(s, o)
		j.setOutcome(s, o)
	}
	return true
}

// SetStatus sets job id's status, and its outcome when o is not nil,
// whatever the job's state: for a due job no rule matches, and for replay.
// It reports whether the job exists and status is valid.
func (j *Jobs) SetStatus(id string, status Status, o *Outcome) bool {
	if !status.Valid() {
		return false
	}
	s, ok := j.lookup(id)
	if !ok {
		return false
	}
	if status == Triggered {
		// Replaying a trigger; a second one in a row is the re-run of a
		// job whose worker died while it ran.
		j.started(s)
	}
	j.transition(s, status)
	if o != nil {
		j.stamp(s, o)
		j.setOutcome(s, o)
	}
	return true
}

// Apply replays one logged record: a job record upserts with its stored
// status (keeping the last outcome, as Set does), a status record sets
// status and outcome of an existing job, a job removal deletes. Rule
// records belong to Rules and are ignored.
func (j *Jobs) Apply(r Record) {
	switch r.Type {
	case RecordJob:
		if r.Job.Status.Valid() {
			j.upsert(r.Job.ID, r.Job.Execution, r.Job.Status)
		}
	case RecordStatus:
		j.SetStatus(r.Job.ID, r.Job.Status, r.Job.Outcome)
	case RecordJobRemoval:
		j.Remove(r.ID)
	}
}

// Snapshot calls fn for every job. Planned jobs come first, in firing
// order, so that replaying a snapshot keeps equal-time jobs in the order
// they were SET.
func (j *Jobs) Snapshot(fn func(Job)) {
	planned := slices.Clone(j.due)
	slices.SortFunc(planned, func(a, b dueItem) int {
		return cmp.Or(cmp.Compare(a.exec, b.exec), cmp.Compare(j.recs.at(a.slot).seq, j.recs.at(b.slot).seq))
	})
	for _, it := range planned {
		fn(j.job(it.slot, j.idOf(it.slot)))
	}
	for s := range j.recs.n {
		if r := j.recs.at(s); r.flags&recLive != 0 && r.status != Planned {
			fn(j.job(s, j.idOf(s)))
		}
	}
}

// Records appends the records that rebuild this store when replayed into
// an empty one: a job record per job, and a status record after it for a
// job with an outcome. It is what a compaction writes.
func (j *Jobs) Records(dst []Record) []Record {
	j.Snapshot(func(job Job) {
		dst = append(dst, Record{Type: RecordJob, Job: Job{ID: job.ID, Execution: job.Execution, Status: job.Status}})
		if job.Outcome != nil {
			dst = append(dst, Record{Type: RecordStatus, Job: job})
		}
	})
	return dst
}
