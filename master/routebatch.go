package master

import "github.com/tockd/tock/ipc"

// ownerBatch is one read batch's requests for one worker: sent with one
// lock of the worker and one append to its link.
type ownerBatch struct {
	w    *proc
	ps   []*pending
	reqs []*ipc.Request
}

// RouteBatch routes ps in order, as Route would one by one, taking the
// router lock once and writing each owner's requests to its link at once
// (one frame append and one writer wake-up per worker per read batch).
// Like Route it waits for room, with the lock released, at an owner whose
// link is over its bound.
// The links written to are returned appended to kick, for the caller to
// Flush holding no lock.
func (r *Router) RouteBatch(ps []*pending, kick []*ipc.Link) []*ipc.Link {
	for len(ps) > 0 {
		r.mu.Lock()
		n, full := r.routeBatchLocked(ps)
		for _, g := range r.groups[:r.sent] {
			kick = append(kick, g.w.link)
		}
		r.clearGroupsLocked()
		r.mu.Unlock()
		ps = ps[n:]
		if full != nil {
			full.link.WaitRoom()
		}
	}
	return kick
}

// routeBatchLocked routes ps up to the first whose owner's link is full,
// and returns how many it routed and that owner.
func (r *Router) routeBatchLocked(ps []*pending) (int, *proc) {
	groups := r.groups[:0]
	n, full := len(ps), (*proc)(nil)
	for i, p := range ps {
		if p.req.Shard < 0 || p.req.Shard >= len(r.shards) {
			go p.finish(errorReply(ErrShardUnavailable)) // not a shard: a bug, never a panic
			continue
		}
		sr := &r.shards[p.req.Shard]
		if sr.owner == nil || len(sr.held) > 0 {
			r.holdLocked(sr, p)
			continue
		}
		if sr.owner.link.Full() {
			n, full = i, sr.owner
			break
		}
		r.seq++
		p.req.Seq = r.seq
		g := -1
		for j := range groups {
			if groups[j].w == sr.owner {
				g = j
				break
			}
		}
		if g < 0 {
			if len(groups) < cap(groups) {
				groups = groups[:len(groups)+1]
				groups[len(groups)-1].w = sr.owner
			} else {
				groups = append(groups, ownerBatch{w: sr.owner})
			}
			g = len(groups) - 1
		}
		groups[g].ps = append(groups[g].ps, p)
		groups[g].reqs = append(groups[g].reqs, &p.req)
	}
	for j := range groups {
		r.sendBatchLocked(&groups[j])
	}
	r.groups, r.sent = groups, len(groups)
	return n, full
}

// clearGroupsLocked empties the groups for the next batch, keeping their
// space.
func (r *Router) clearGroupsLocked() {
	for j := range r.groups {
		g := &r.groups[j]
		clear(g.ps)
		clear(g.reqs)
		*g = ownerBatch{ps: g.ps[:0], reqs: g.reqs[:0]}
	}
	r.groups, r.sent = r.groups[:0], 0
}

// sendBatchLocked puts a group in flight at its worker, or holds it (in
// order, on each request's shard) when the worker is gone: sendLocked for
// many requests.
func (r *Router) sendBatchLocked(g *ownerBatch) {
	w := g.w
	w.mu.Lock()
	if w.dead {
		w.mu.Unlock()
		for _, p := range g.ps {
			r.holdLocked(&r.shards[p.req.Shard], p)
		}
		return
	}
	for _, p := range g.ps {
		w.inflight[p.req.Seq] = p
	}
	w.mu.Unlock()
	if err := w.link.SendRequests(g.reqs); err != nil {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, p := range g.ps {
			// WorkerGone may have taken some with the rest of the dead
			// worker's in-flight requests to route them again: those must
			// not be held twice.
			if w.inflight[p.req.Seq] == p {
				delete(w.inflight, p.req.Seq)
				r.holdLocked(&r.shards[p.req.Shard], p)
			}
		}
	}
}
