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
	s, ok := j.lookup(id)
	if !ok {
		return Saved{id: id}
	}
	r := j.recs.at(s)
	sv := Saved{id: id, existed: true, exec: r.exec, seq: r.seq, status: r.status, attempts: r.attempts}
	if r.flags&recHasOutcome != 0 {
		sv.outcome = j.outcomes[s]
	}
	return sv
}

// Restore puts the job back as s recorded it: removed if it did not exist.
func (j *Jobs) Restore(sv Saved) {
	if !sv.existed {
		j.Remove(sv.id)
		return
	}
	h := hashID(j.index.seed, sv.id)
	pos, s, ok := j.index.find(sv.id, h, &j.ids, &j.recs)
	if !ok {
		s = j.insert(sv.id, h, pos, sv.exec, sv.seq, sv.status)
		j.recs.at(s).attempts = sv.attempts
		j.setOutcome(s, sv.outcome)
		return
	}
	r := j.recs.at(s)
	r.exec, r.seq, r.attempts = sv.exec, sv.seq, sv.attempts
	j.setOutcome(s, sv.outcome)
	j.transition(s, sv.status)
}
