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
type Jobs struct {
	byID   map[string]*entry
	due    dueHeap
	seq    uint64          // last generation handed out
	counts [Failed + 1]int // jobs per status, kept on every transition
}

// entry is one job. Small on purpose (48 bytes): a shard may hold millions.
type entry struct {
	id      string
	exec    int64
	seq     uint64 // generation, and insertion order among equal times
	outcome *Outcome
	heapIdx int32 // index in due while Planned, else -1
	status  Status
	// attempts counts the runs started since the last SET (in the
	// padding: the entry stays 48 bytes).
	attempts uint16
}

func (e *entry) job() Job {
	return Job{ID: e.id, Execution: e.exec, Status: e.status, Outcome: e.outcome}
}

// Counts is how many jobs there are, in total and per status.
type Counts struct {
	Total, Planned, Triggered, Executed, Failed int
}

// NewJobs returns an empty store.
func NewJobs() *Jobs { return &Jobs{byID: make(map[string]*entry)} }

// Len is the number of jobs.
func (j *Jobs) Len() int { return len(j.byID) }

// Counts returns the per-status counts in O(1).
func (j *Jobs) Counts() Counts {
	return Counts{
		Total:     len(j.byID),
		Planned:   j.counts[Planned],
		Triggered: j.counts[Triggered],
		Executed:  j.counts[Executed],
		Failed:    j.counts[Failed],
	}
}

// Set creates or replaces job id, planned at execution, whatever its
// status was; the last outcome is kept. It returns the new generation.
func (j *Jobs) Set(id string, execution int64) uint64 {
	return j.upsert(id, execution, Planned)
}

func (j *Jobs) upsert(id string, execution int64, status Status) uint64 {
	j.seq++
	e := j.byID[id]
	if e == nil {
		// Clone: id may be a slice of a larger buffer the store must not pin.
		e = &entry{id: strings.Clone(id), exec: execution, seq: j.seq, heapIdx: -1, status: status}
		j.byID[e.id] = e
		j.counts[status]++
		if status == Planned {
			j.due.push(e)
		}
		return e.seq
	}
	e.exec, e.seq, e.attempts = execution, j.seq, 0
	j.transition(e, status)
	return e.seq
}

// Replan plans job id again at execution without starting a new schedule:
// a run that was cut short (its worker died or stopped) runs again, and its
// attempt count goes on. It returns the new generation; false when the job
// does not exist.
func (j *Jobs) Replan(id string, execution int64) (uint64, bool) {
	e := j.byID[id]
	if e == nil {
		return 0, false
	}
	j.seq++
	e.exec, e.seq = execution, j.seq
	j.transition(e, Planned)
	return e.seq, true
}

// started counts a run of e.
func (e *entry) started() {
	if e.attempts < ^uint16(0) {
		e.attempts++
	}
}

// stamp gives o the attempt that produced it when it carries none.
func (e *entry) stamp(o *Outcome) {
	if o != nil && o.Attempt == 0 {
		o.Attempt = uint32(e.attempts)
	}
}

// transition moves e to status, keeping counts and the due heap in step.
// It is also called when a planned job's key changed (planned → planned).
func (j *Jobs) transition(e *entry, to Status) {
	from := e.status
	j.counts[from]--
	j.counts[to]++
	e.status = to
	switch {
	case from == Planned && to == Planned:
		j.due.fix(e)
	case from == Planned:
		j.due.remove(e)
	case to == Planned:
		j.due.push(e)
	}
}

// Get returns job id.
func (j *Jobs) Get(id string) (Job, bool) {
	e := j.byID[id]
	if e == nil {
		return Job{}, false
	}
	return e.job(), true
}

// Remove deletes job id and reports whether it existed. A result arriving
// later for a run of it is ignored by Complete.
func (j *Jobs) Remove(id string) bool {
	e := j.byID[id]
	if e == nil {
		return false
	}
	if e.status == Planned {
		j.due.remove(e)
	}
	j.counts[e.status]--
	delete(j.byID, id)
	return true
}

// Query calls fn for every job whose id starts with prefix (bytewise; ""
// is every job), in no particular order, until fn returns false.
func (j *Jobs) Query(prefix string, fn func(Job) bool) {
	for _, e := range j.byID {
		if strings.HasPrefix(e.id, prefix) && !fn(e.job()) {
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
		e := j.due[0]
		if e.exec > now {
			break
		}
		j.transition(e, Triggered)
		e.started()
		n++
		if fn != nil {
			fn(e.job(), e.seq)
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
	e := j.byID[id]
	if e == nil || e.seq != gen || e.status != Triggered {
		return false
	}
	j.transition(e, status)
	if o != nil {
		e.stamp(o)
		e.outcome = o
	}
	return true
}

// SetStatus sets job id's status, and its outcome when o is not nil,
// whatever the job's state: for a due job no rule matches, and for replay.
// It reports whether the job exists and status is valid.
func (j *Jobs) SetStatus(id string, status Status, o *Outcome) bool {
	e := j.byID[id]
	if e == nil || !status.Valid() {
		return false
	}
	if status == Triggered {
		// Replaying a trigger; a second one in a row is the re-run of a
		// job whose worker died while it ran.
		e.started()
	}
	j.transition(e, status)
	if o != nil {
		e.stamp(o)
		e.outcome = o
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
	slices.SortFunc(planned, func(a, b *entry) int {
		return cmp.Or(cmp.Compare(a.exec, b.exec), cmp.Compare(a.seq, b.seq))
	})
	for _, e := range planned {
		fn(e.job())
	}
	for _, e := range j.byID {
		if e.status != Planned {
			fn(e.job())
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
