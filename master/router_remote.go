package master

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tockd/tock/ipc"
)

// Remote routes: when several tock hosts share the shards (docs/scale-out.md,
// "Forwarding"), a shard is in one of three states in this host's router:
//
//	routeLocal    this host owns it: its owner is a local worker, or nil
//	              while that worker boots, restarts or hands off (held)
//	routeRemote   another host owns it: its owner is the peer link's proc
//	              while the link is up, nil (held) while it is redialed
//	routeUnowned  nobody is known to own it (a takeover is under way): held
//
// A held request waits exactly as during a local worker restart: at most
// maxHeld per shard, each for at most holdFor, then `shard unavailable`.
// The host lease manager (helper "hosts") moves shards between the states
// with SetOwner (local), SetRemote and SetUnowned.
//
// Requests that came from another master (pending.forwarded) are served
// only by a local worker: anywhere else they are answered KindNotOwned and
// the sender holds them until its own route changes, so a request crosses
// at most one peer link, whatever the two hosts believe.

type routeKind uint8

const (
	routeLocal routeKind = iota
	routeRemote
	routeUnowned
)

func (k routeKind) String() string {
	switch k {
	case routeLocal:
		return "local"
	case routeRemote:
		return "remote"
	case routeUnowned:
		return "unowned"
	}
	return fmt.Sprintf("route(%d)", uint8(k))
}

// remoteRoute is the remote part of a shardRoute.
type remoteRoute struct {
	kind routeKind
	peer *Peer // routeRemote: the owner's host
	// notOwnedAt is set when the peer answered "not owned" and the shard's
	// requests are held for it; retryNotOwned sends them again after
	// notOwnedRetry in case only the peer's own route was late.
	notOwnedAt time.Time
	// notOwnedTries counts the retries since the route last changed: the
	// wait doubles from notOwnedRetry to maxNotOwnedRetry, so two hosts
	// that disagree for long do not bounce a full queue 20 times a second.
	notOwnedTries int
	// drain is the peer link that owned the shard before its route
	// changed and still has requests of it in flight: the shard's
	// requests are held until it has answered them (a "not owned" answer
	// sends one to the new owner), then go to after. Otherwise a SET sent
	// to the new owner could overtake an older one of the same job
	// bounced by the old owner.
	drain *proc
	after *proc
}

// notOwnedReply is what a forwarded request gets where it cannot be served.
var notOwnedReply = ipc.Reply{Kind: ipc.KindNotOwned}

// notOwnedRetry is how long a shard whose owner answered "not owned" holds
// its requests before trying that owner again, when no route change came
// first: the owner may have taken its lease before its router knew it
// (leases are watched, not pushed).
const (
	notOwnedRetry    = 50 * time.Millisecond
	maxNotOwnedRetry = time.Second
)

// notOwnedWait is the wait before retry number tries.
func notOwnedWait(tries int) time.Duration {
	return min(notOwnedRetry<<min(tries, 10), maxNotOwnedRetry)
}

// SetRemote routes shard to another host's master: its held requests and
// outcomes go there once the peer link is up (at once if it is).
func (r *Router) SetRemote(shard int, p *Peer) {
	if p == nil {
		r.SetUnowned(shard)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if shard < 0 || shard >= len(r.shards) {
		return
	}
	sr := &r.shards[shard]
	if sr.rem.kind == routeRemote && sr.rem.peer == p && sr.owner != nil && sr.rem.notOwnedAt.IsZero() {
		return // no change
	}
	r.refuseForwardedLocked(sr) // before the held requests go to p
	r.setRouteLocked(shard, remoteRoute{kind: routeRemote, peer: p}, p.current())
	p.wanted()
}

// setRouteLocked changes shard n's route to rem with owner (nil: held),
// first letting a previous peer owner answer what it has in flight for it
// (see remoteRoute.drain).
func (r *Router) setRouteLocked(n int, rem remoteRoute, owner *proc) {
	sr := &r.shards[n]
	prev := sr.rem.drain
	old := sr.owner
	if prev != nil {
		old = prev // still answering from before an earlier change
	}
	sr.rem = rem
	if old != nil && old.peer != nil && old != owner && old.inflightFor(n) {
		if prev == nil {
			old.peer.drains.Add(1)
		}
		sr.rem.drain, sr.rem.after = old, owner
		sr.owner = nil
		return
	}
	if prev != nil {
		prev.peer.drains.Add(-1)
	}
	r.setOwnerLocked(n, owner)
}

// endDrainLocked forgets a finished drain (the caller installs the owner).
func (r *Router) endDrainLocked(sr *shardRoute) {
	if sr.rem.drain != nil {
		sr.rem.drain.peer.drains.Add(-1)
		sr.rem.drain, sr.rem.after = nil, nil
	}
}

// peerAnswered is called after conn answered a request of shard (its
// entry is out of conn.inflight): when that was the last one a route
// change waited for, the shard's held requests go to the new owner.
func (r *Router) peerAnswered(conn *proc, shard int) {
	if conn.peer.drains.Load() == 0 {
		return // the common case: no route change under way
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drainedLocked(conn, shard)
}

func (r *Router) drainedLocked(conn *proc, shard int) {
	if shard < 0 || shard >= len(r.shards) {
		return
	}
	sr := &r.shards[shard]
	if sr.rem.drain != conn || (!conn.isDead() && conn.inflightFor(shard)) {
		return
	}
	after := sr.rem.after
	r.endDrainLocked(sr)
	r.setOwnerLocked(shard, after)
}

// inflightFor reports whether c has a request of shard in flight.
func (c *proc) inflightFor(shard int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.inflight {
		if p.req.Shard == shard && p.proc == nil {
			return true
		}
	}
	return false
}

func (c *proc) isDead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead
}

// SetUnowned marks shard as owned by no known host: its requests are held
// until SetOwner or SetRemote gives it one (or fail as `shard
// unavailable` past the bounds).
func (r *Router) SetUnowned(shard int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if shard < 0 || shard >= len(r.shards) {
		return
	}
	sr := &r.shards[shard]
	r.setRouteLocked(shard, remoteRoute{kind: routeUnowned}, nil)
	r.refuseForwardedLocked(sr)
}

// refuseForwardedLocked answers the held requests of another master
// "not owned": the shard is no longer this host's to serve.
func (r *Router) refuseForwardedLocked(sr *shardRoute) {
	keep := sr.held[:0]
	for _, p := range sr.held {
		if p.forwarded {
			go p.finish(notOwnedReply)
			continue
		}
		keep = append(keep, p)
	}
	clear(sr.held[len(keep):])
	sr.held = keep
}

// RouteKind reports how shard n is routed ("local", "remote" or
// "unowned") and, when remote, to which host.
func (r *Router) RouteKind(n int) (kind string, host string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rem := r.shards[n].rem
	if rem.peer != nil {
		host = rem.peer.Host()
	}
	return rem.kind.String(), host
}

// routeForwarded routes a request another master forwarded: to the local
// owner (held while it restarts), or answered "not owned" when this host
// does not own the shard. Like Route, it waits for room with the lock
// released when the worker's link is full, which slows the peer link.
func (r *Router) routeForwarded(p *pending) {
	p.forwarded = true
	r.Route(p)
}

// peerUp is called when p's link to its host is up: every shard routed to
// that host gets the link's proc as its owner, and its held requests go.
func (r *Router) peerUp(p *Peer, conn *proc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for n := range r.shards {
		sr := &r.shards[n]
		if sr.rem.kind == routeRemote && sr.rem.peer == p {
			sr.rem.notOwnedAt = time.Time{}
			r.refuseForwardedLocked(sr)
			if sr.rem.drain != nil {
				sr.rem.after = conn // once the old owner has answered
				continue
			}
			r.setOwnerLocked(n, conn)
		}
	}
}

// PeerGone handles a peer link's death: the shards it served keep their
// route (the host may only have been unreachable for a moment) and hold
// their requests until the link is redialed or the route changes. Requests
// in flight on it are sent once more, marked Retried (the other master
// may have applied them: a retried SET already in effect is not applied
// again, see worker/requests.go), ahead of those held meanwhile; a REMOVE,
// one that was already retried, and a fan-out bound to the link are
// failed with err instead.
func (r *Router) PeerGone(conn *proc, err error) {
	conn.mu.Lock()
	conn.dead = true
	inflight := conn.inflight
	conn.inflight = map[uint64]*pending{}
	conn.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.shards {
		if r.shards[i].owner == conn {
			r.shards[i].owner = nil
		}
		if r.shards[i].rem.after == conn {
			r.shards[i].rem.after = nil // the redialed link takes its place (peerUp)
		}
	}
	retry := map[int][]*pending{}
	for _, p := range sortedBySeq(inflight) {
		switch {
		case p.proc != nil:
			go p.finish(errorReply(err))
		case p.req.Op == ipc.OpRemove:
			go p.finish(errorReply(fmt.Errorf("%w: the REMOVE may or may not have been applied", err)))
		case p.req.Retried:
			go p.finish(errorReply(fmt.Errorf("%w, and it was already being retried", err)))
		default:
			p.req.Retried = true
			retry[p.req.Shard] = append(retry[p.req.Shard], p)
		}
	}
	for shard, ps := range retry {
		sr := &r.shards[shard]
		if sr.owner != nil && len(sr.held) == 0 {
			for _, p := range ps {
				r.routeLocked(p)
			}
			continue
		}
		now := time.Now()
		for _, p := range ps {
			if p.heldAt.IsZero() {
				p.heldAt = now
			}
		}
		if len(sr.held)+len(ps) > r.maxHeld {
			for _, p := range ps {
				go p.finish(errorReply(ErrShardUnavailable))
			}
			continue
		}
		sr.held = append(ps, sr.held...)
	}
	for n := range r.shards {
		r.drainedLocked(conn, n) // it will answer nothing more
	}
}

// peerNotOwned handles a "not owned" answer from a peer: the shard's
// requests are held (this one where it belongs among them) until the
// route changes or notOwnedRetry passes.
func (r *Router) peerNotOwned(conn *proc, p *pending) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sr := &r.shards[p.req.Shard]
	if sr.owner == conn {
		sr.owner = nil
		sr.rem.notOwnedAt = time.Now()
	}
	defer r.drainedLocked(conn, p.req.Shard) // after p is held: it goes first
	if sr.owner != nil && len(sr.held) == 0 {
		r.routeLocked(p) // the route changed meanwhile
		return
	}
	if len(sr.held) >= r.maxHeld {
		go p.finish(errorReply(ErrShardUnavailable))
		return
	}
	if p.heldAt.IsZero() {
		p.heldAt = time.Now()
	}
	// Ahead of every request sent after it or never sent: replies come
	// back in the order requests were sent, so this keeps a connection's
	// SETs of one job in their order.
	at := slices.IndexFunc(sr.held, func(q *pending) bool { return q.req.Seq == 0 || q.req.Seq > p.req.Seq })
	if at < 0 {
		at = len(sr.held)
	}
	sr.held = slices.Insert(sr.held, at, p)
}

// retryNotOwned sends the requests held after a "not owned" answer to
// their route's peer again once notOwnedRetry has passed.
func (r *Router) retryNotOwned(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for n := range r.shards {
		sr := &r.shards[n]
		if sr.rem.kind != routeRemote || sr.rem.drain != nil || sr.rem.notOwnedAt.IsZero() ||
			now.Sub(sr.rem.notOwnedAt) < notOwnedWait(sr.rem.notOwnedTries) {
			continue
		}
		if conn := sr.rem.peer.current(); conn != nil {
			sr.rem.notOwnedAt = time.Time{}
			sr.rem.notOwnedTries++
			r.setOwnerLocked(n, conn)
		}
	}
}

// forwardOutcomeLocal hands an outcome another master forwarded to the
// local owner of its shard, or keeps it for the shard's next owner while
// it has none (a restart, a takeover under way). It reports false when
// another host owns the shard: it is not sent on, and the job runs again
// at its owner (at least once).
func (r *Router) forwardOutcomeLocal(o ipc.Outcome) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o.Shard < 0 || o.Shard >= len(r.shards) {
		return false
	}
	sr := &r.shards[o.Shard]
	if sr.rem.kind == routeRemote {
		return false
	}
	// Unowned: kept like a local one; this host may be opening the shard
	// (its worker awaits the previous host's outcomes, takeover.go), and
	// if another host gets it the outcome goes there with the held requests.
	if sr.owner == nil || sr.owner.link.PostJSON(ipc.TypeOutcome, o) != nil {
		if len(sr.outcomes) >= maxHeldOutcomes {
			return false
		}
		sr.outcomes = append(sr.outcomes, o)
	}
	return true
}

// stopUnlessWanted ends p's dial loop (true) when no shard routes to it
// any more; under the router's lock, so a SetRemote racing it either sees
// the loop still running or starts a new one.
func (r *Router) stopUnlessWanted(p *Peer) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.shards {
		if rem := r.shards[i].rem; rem.peer == p || (rem.drain != nil && rem.drain.peer == p) {
			return false
		}
	}
	p.mu.Lock()
	p.running = false
	p.mu.Unlock()
	return true
}

// shardsRoutedTo lists the shards routed to p.
func (r *Router) shardsRoutedTo(p *Peer) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []int{}
	for i := range r.shards {
		if r.shards[i].rem.peer == p {
			out = append(out, i)
		}
	}
	return out
}

// remoteHosts returns the peers that own at least one shard, for the
// fan-outs that ask every host (STAT).
func (r *Router) remoteHosts() []*Peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*Peer
	for i := range r.shards {
		if p := r.shards[i].rem.peer; p != nil && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// sendToPeer sends a request bound to a peer link (a fan-out's "this
// host's workers only" part); it fails at once when the link is down.
func (r *Router) sendToPeer(p *Peer, pe *pending) error {
	conn := p.current()
	if conn == nil {
		return fmt.Errorf("host %s is unreachable: %w", p.Host(), p.lastErrOr(errors.New("no link")))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	pe.proc = conn
	if !r.sendLocked(conn, pe) {
		return fmt.Errorf("host %s: link lost", p.Host())
	}
	return nil
}
