package master

import (
	"cmp"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tockd/tock/ipc"
)

// Router errors, as sent to clients.
var (
	ErrShardUnavailable = errors.New("shard unavailable")
	ErrWorkerCrashed    = errors.New("worker crashed")
)

// pending is one request on its way to a worker: in flight at its owner or
// held in its shard's queue. Its reply is delivered exactly once: to
// deliver, or when to is set (a single-job request, see routeJob) to that
// call, with no closure to allocate.
type pending struct {
	req     ipc.Request
	deliver func(ipc.Reply)
	to      *call
	heldAt  time.Time
	// proc is the worker a fan-out (AllShards) request is bound to.
	proc *proc
	// done guards deliver: a reply must reach the client once even if a
	// crash races a retry.
	done atomic.Bool
	// forwarded: it came from another master over a peer link, so it is
	// served here or answered "not owned", never forwarded again
	// (router_remote.go).
	forwarded bool
}

// finish delivers r unless a reply was delivered already.
func (p *pending) finish(r ipc.Reply) {
	if p.done.CompareAndSwap(false, true) {
		if p.to != nil {
			p.to.finishJob(r)
			return
		}
		p.deliver(r)
	}
}

// finishQuiet is finish for a batch of replies: a single-job request's
// writer is not woken but its ring returned, for the batch to wake each
// connection once (nil when there is none to wake).
func (p *pending) finishQuiet(r ipc.Reply) *callRing {
	if p.done.CompareAndSwap(false, true) {
		if p.to != nil {
			return p.to.setJob(r)
		}
		p.deliver(r)
	}
	return nil
}

// shardRoute is one shard's owner and its held requests.
type shardRoute struct {
	owner *proc
	held  []*pending
	// outcomes are results of executions that ran in an old owner and
	// arrived while the shard had no owner; the next owner gets them.
	outcomes []ipc.Outcome
	// handoff is set while the shard moves between two live workers
	// (a phased restart or a scale): its requests are held, not failed.
	handoff bool
	// rem says whether another host owns the shard (router_remote.go).
	rem remoteRoute
}

// maxHeldOutcomes bounds the outcomes kept for an unowned shard.
const maxHeldOutcomes = 100000

// Router maps shards to workers and holds requests for shards that have no
// ready owner (booting, crashed or handing off).
type Router struct {
	mu      sync.Mutex
	shards  []shardRoute
	seq     uint64
	maxHeld int
	holdFor time.Duration
	// groups is RouteBatch's scratch, reused under mu.
	groups []ownerBatch
	sent   int // groups in use (RouteBatch)
	// HoldObserver, when set before routing starts, is told how long each
	// released request was held (tock_handoff_hold_seconds).
	HoldObserver func(time.Duration)
}

// NewRouter makes a router for n shards. At most maxHeld requests wait per
// shard, each for at most holdFor.
func NewRouter(n, maxHeld int, holdFor time.Duration) *Router {
	return &Router{shards: make([]shardRoute, n), maxHeld: maxHeld, holdFor: holdFor}
}

// ShardOf is the shard of a job id: FNV-1a 32 of its bytes mod n.
func ShardOf(id string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// Route sends p to its shard's owner, or holds it. When the owner's link
// is over its bound (the worker is not reading), Route waits for room with
// the lock released: a stuck worker slows the clients sending to it, not
// the router, and its heartbeat check still runs.
func (r *Router) Route(p *pending) {
	for {
		r.mu.Lock()
		var owner *proc
		if p.req.Shard >= 0 && p.req.Shard < len(r.shards) {
			owner = r.shards[p.req.Shard].owner
		}
		if owner == nil || !owner.link.Full() {
			r.routeLocked(p)
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		owner.link.WaitRoom()
	}
}

func (r *Router) routeLocked(p *pending) {
	if p.req.Shard < 0 || p.req.Shard >= len(r.shards) {
		go p.finish(errorReply(ErrShardUnavailable)) // not a shard: a bug, never a panic
		return
	}
	sr := &r.shards[p.req.Shard]
	if p.forwarded && sr.rem.kind != routeLocal {
		go p.finish(notOwnedReply) // no second hop: the sender waits for its route to change
		return
	}
	if sr.owner == nil || len(sr.held) > 0 {
		r.holdLocked(sr, p)
		return
	}
	if !r.sendLocked(sr.owner, p) {
		r.holdLocked(sr, p)
	}
}

// sendLocked puts p in flight at owner; false when the owner is gone.
func (r *Router) sendLocked(owner *proc, p *pending) bool {
	r.seq++
	p.req.Seq = r.seq
	owner.mu.Lock()
	if owner.dead {
		owner.mu.Unlock()
		return false
	}
	owner.inflight[p.req.Seq] = p
	owner.mu.Unlock()
	if err := owner.link.SendRequest(p.req); err != nil {
		owner.mu.Lock()
		defer owner.mu.Unlock()
		if owner.inflight[p.req.Seq] == p {
			delete(owner.inflight, p.req.Seq)
			return false // still ours: the caller holds it
		}
		// WorkerGone took it with the rest of the dead worker's in-flight
		// requests and routes it again: it must not be held twice.
		return true
	}
	return true
}

func (r *Router) holdLocked(sr *shardRoute, p *pending) {
	if len(sr.held) >= r.maxHeld {
		go p.finish(errorReply(ErrShardUnavailable))
		return
	}
	if p.heldAt.IsZero() {
		p.heldAt = time.Now()
	}
	sr.held = append(sr.held, p)
}

// SendTo sends a request bound to one worker (STAT fan-out, AllShards).
// A dead worker answers with an empty reply of the right kind.
func (r *Router) SendTo(w *proc, p *pending) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p.proc = w
	if !r.sendLocked(w, p) {
		go p.finish(ipc.Reply{Kind: ipc.KindStat})
	}
}

// SetOwner gives shards to w (nil: no owner, requests are held) and, when w
// is set, releases their held requests to it in order.
func (r *Router) SetOwner(shards []int, w *proc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range shards {
		r.setRouteLocked(n, remoteRoute{}, w) // this host's (again): router_remote.go
	}
}

// setOwnerLocked gives shard n to w (a worker, or a peer link's proc) and
// releases its held requests and outcomes to it.
func (r *Router) setOwnerLocked(n int, w *proc) {
	sr := &r.shards[n]
	sr.owner = w
	if w == nil {
		return
	}
	for _, o := range sr.outcomes {
		if err := w.link.PostJSON(ipc.TypeOutcome, o); err != nil {
			w.log.Warn("forward outcome", "error", err)
		}
	}
	sr.outcomes = nil
	held := sr.held
	sr.held = nil
	if r.HoldObserver != nil && len(held) > 0 {
		now := time.Now()
		for _, p := range held {
			r.HoldObserver(now.Sub(p.heldAt))
		}
	}
	for i, p := range held {
		if !r.sendLocked(w, p) {
			sr.owner = nil
			sr.held = append(sr.held, held[i:]...)
			break
		}
	}
}

// ForwardOutcome hands an old owner's execution result to the shard's
// current owner, or keeps it until the shard has one (it is in handoff).
// It reports false when it had to drop it (the bound is reached): the job
// then runs again after the next restart.
func (r *Router) ForwardOutcome(o ipc.Outcome) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	sr := &r.shards[o.Shard]
	if sr.owner == nil {
		if len(sr.outcomes) >= maxHeldOutcomes {
			return false
		}
		sr.outcomes = append(sr.outcomes, o)
		return true
	}
	if err := sr.owner.link.PostJSON(ipc.TypeOutcome, o); err != nil {
		sr.outcomes = append(sr.outcomes, o) // its death clears the owner; the next one gets it
	}
	return true
}

// Owner returns shard n's owner.
func (r *Router) Owner(n int) *proc {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.shards[n].owner
}

// SetHandoff marks shards as moving between workers (on) or not (off).
func (r *Router) SetHandoff(shards []int, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range shards {
		r.shards[n].handoff = on
	}
}

// Served reports whether shard n's requests are being answered: it has an
// owner, or it is in a handoff (its requests wait for the new owner).
func (r *Router) Served(n int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.shards[n].owner != nil || r.shards[n].handoff
}

// Rehold puts a request answered "not owned" back on its shard: the
// worker released the shard after the request was sent.
func (r *Router) Rehold(p *pending) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p.proc = nil
	r.routeLocked(p)
}

// WorkerGone handles a worker's death: its shards lose their owner, and its
// in-flight requests are retried when idempotent or failed otherwise.
func (r *Router) WorkerGone(w *proc) {
	w.mu.Lock()
	w.dead = true
	inflight := w.inflight
	w.inflight = map[uint64]*pending{}
	w.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.shards {
		if r.shards[i].owner == w {
			r.shards[i].owner = nil
		}
	}
	// Retries go ahead of whatever was held meanwhile, in the order they
	// were sent: they are older, and a later SET must not be overtaken by
	// an earlier one.
	retry := map[int][]*pending{}
	for _, p := range sortedBySeq(inflight) {
		switch {
		case p.proc != nil:
			go p.finish(ipc.Reply{Kind: ipc.KindStat})
		case p.req.Op == ipc.OpRemove:
			go p.finish(errorReply(ErrWorkerCrashed))
		default:
			// The dead worker may have applied it before dying: the next
			// owner must not apply a SET a second time (worker/requests.go).
			p.req.Retried = true
			retry[p.req.Shard] = append(retry[p.req.Shard], p)
		}
	}
	for shard, ps := range retry {
		sr := &r.shards[shard]
		if sr.owner != nil {
			for _, p := range ps {
				r.routeLocked(p)
			}
			continue
		}
		for _, p := range ps {
			if p.heldAt.IsZero() {
				p.heldAt = time.Now()
			}
		}
		sr.held = append(ps, sr.held...)
	}
}

// Expire fails held requests older than holdFor. Called periodically.
func (r *Router) Expire(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.shards {
		sr := &r.shards[i]
		keep := sr.held[:0]
		for _, p := range sr.held {
			if now.Sub(p.heldAt) > r.holdFor {
				go p.finish(errorReply(ErrShardUnavailable))
				continue
			}
			keep = append(keep, p)
		}
		for j := len(keep); j < len(sr.held); j++ {
			sr.held[j] = nil
		}
		sr.held = keep
	}
}

// Held counts held requests (for stats).
func (r *Router) Held() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for i := range r.shards {
		n += len(r.shards[i].held)
	}
	return n
}

func errorReply(err error) ipc.Reply { return ipc.Reply{Kind: ipc.KindError, Err: err.Error()} }

func sortedBySeq(m map[uint64]*pending) []*pending {
	out := make([]*pending, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *pending) int { return cmp.Compare(a.req.Seq, b.req.Seq) })
	return out
}
