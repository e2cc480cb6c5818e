package store

// Saved is one job's state, taken before a mutation so that a write that
// fails can be undone exactly (generation included: a run in progress
// must still be able to record its outcome).
type Saved struct {
	id       string
	existed  bool
	exec     int64
	seq      uint64
	outcome  *Outcome
	status   Status
	attempts uint16
}

// Save records job id's state (or its absence).
func (j *Jobs) Save(id string) Saved {
	e := j.byID[id]
	if e == nil {
		return Saved{id: id}
	}
	return Saved{id: id, existed: true, exec: e.exec, seq: e.seq, outcome: e.outcome, status: e.status, attempts: e.attempts}
}

// Restore puts the job back as s recorded it: removed if it did not exist.
func (j *Jobs) Restore(s Saved) {
	if !s.existed {
		j.Remove(s.id)
		return
	}
	e := j.byID[s.id]
	if e == nil {
		e = &entry{id: s.id, exec: s.exec, seq: s.seq, outcome: s.outcome, heapIdx: -1, status: s.status, attempts: s.attempts}
		j.byID[e.id] = e
		j.counts[s.status]++
		if s.status == Planned {
			j.due.push(e)
		}
		return
	}
	e.exec, e.seq, e.outcome, e.attempts = s.exec, s.seq, s.outcome, s.attempts
	j.transition(e, s.status)
}
