package master

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/ipc"
)

// Peer links (docs/scale-out.md, "Forwarding"): this master keeps one
// outgoing link per remote host that owns a shard it routes to, dialed on
// demand at the host's advertised address and redialed with backoff. On it
// this master is the "master" of the worker protocol: it sends Requests
// and Outcomes and reads Replies, so the router treats the link as one
// more owner (a proc with Peer set). The other direction is the other
// host's own link to this host's peer listener (peer_listen.go).

// peerState is a Peer's life.
type peerState string

const (
	// peerIdle: known, never needed yet.
	peerIdle peerState = "idle"
	// peerDialing: connecting and shaking hands.
	peerDialing peerState = "dialing"
	// peerConnected: the link is up; its shards' requests go on it.
	peerConnected peerState = "connected"
	// peerBackoff: the last dial or link failed; waiting to dial again,
	// the shards' requests held.
	peerBackoff peerState = "backoff"
	// peerClosed: the master is stopping.
	peerClosed peerState = "closed"
)

// peerTimings are the peer links' bounds; tests shorten them.
type peerTimings struct {
	dial        time.Duration // connect + TLS + handshake
	ping        time.Duration // a ping is sent this often each way
	deadAfter   time.Duration // a link that received nothing for this long is dead
	request     time.Duration // a link with a request unanswered for this long is dead (past the other's hold bound)
	fanout      time.Duration // a host's share of STAT must come within this
	backoffMin  time.Duration
	backoffMax  time.Duration
	healthyUpTo time.Duration // a link up this long resets the backoff
}

var defaultPeerTimings = peerTimings{
	dial: 2 * time.Second, ping: 500 * time.Millisecond, deadAfter: 3 * time.Second,
	request: 10 * time.Second, fanout: 3 * time.Second,
	backoffMin: 50 * time.Millisecond, backoffMax: 2 * time.Second, healthyUpTo: time.Second,
}

// Peer is this master's link to another tock host's master.
type Peer struct {
	set  *peerSet
	host string
	log  hclog.Logger
	wake chan struct{} // capacity 1: dial now (wanted, address changed)
	// drains counts the shards whose route moved away from this peer
	// while it had requests of theirs in flight (router_remote.go).
	drains atomic.Int32
	// answered counts the replies received from the host (forwarded
	// requests it served for this one), for the host view.
	answered atomic.Int64

	mu      sync.Mutex
	addr    string
	state   peerState
	conn    *proc // the link's proc while connected
	lastErr error
	running bool   // the dial loop runs
	logged  string // the last failure logged, so a redial loop logs it once
}

// Host is the peer's host name (jetstream.host_name).
func (p *Peer) Host() string { return p.host }

// Addr is the address the peer is dialed at.
func (p *Peer) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// State is the link's state, for /stats and tests.
func (p *Peer) State() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(p.state)
}

// current is the link's proc while connected, else nil.
func (p *Peer) current() *proc {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conn
}

func (p *Peer) lastErrOr(def error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lastErr != nil {
		return p.lastErr
	}
	return def
}

// setState moves the peer to st, logging why: the one place its state
// changes.
func (p *Peer) setState(st peerState, why string) {
	p.mu.Lock()
	from := p.state
	if from == st || from == peerClosed {
		p.mu.Unlock()
		return
	}
	p.state = st
	// A host that stays unreachable alternates dialing and backoff: each
	// new reason is logged once, the repeats at debug level.
	repeat := (st == peerBackoff && why == p.logged) || (st == peerDialing && from == peerBackoff)
	if st == peerBackoff {
		p.logged = why
	} else if st == peerConnected || st == peerIdle {
		p.logged = ""
	}
	p.mu.Unlock()
	switch {
	case repeat:
		p.log.Debug("peer state", "from", string(from), "to", string(st), "why", why)
	case st == peerBackoff:
		p.log.Warn("peer state", "from", string(from), "to", string(st), "why", why)
	default:
		p.log.Info("peer state", "from", string(from), "to", string(st), "why", why)
	}
}

// wanted starts the dial loop if it is not running. Called with the
// router's lock held: it takes only the peer's.
func (p *Peer) wanted() {
	p.mu.Lock()
	start := !p.running && p.state != peerClosed
	p.running = p.running || start
	p.mu.Unlock()
	if start {
		if !p.set.goRun(p.run) {
			p.mu.Lock()
			p.running = false
			p.mu.Unlock()
		}
	}
}

// poke makes a dial loop waiting out its backoff dial now.
func (p *Peer) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run dials, serves the link until it breaks, and redials with backoff,
// until the master stops.
func (p *Peer) run() {
	t := p.set.timings
	backoff := t.backoffMin
	for {
		if p.set.stopped() {
			p.setState(peerClosed, "master stopping")
			return
		}
		if p.set.router.stopUnlessWanted(p) {
			p.setState(peerIdle, "no shard is routed to it")
			return
		}
		addr := p.Addr()
		p.setState(peerDialing, addr)
		link, err := p.set.dial(addr, p.host)
		if err != nil {
			p.mu.Lock()
			p.lastErr = err
			p.mu.Unlock()
			p.setState(peerBackoff, err.Error())
			if !p.pause(backoff) {
				p.setState(peerClosed, "master stopping")
				return
			}
			backoff = min(2*backoff, t.backoffMax)
			continue
		}
		conn := &proc{link: link, inflight: map[uint64]*pending{}, log: p.log, peer: p, state: workerServing,
			booted: true, linkDone: make(chan struct{})}
		p.mu.Lock()
		p.conn, p.lastErr = conn, nil
		p.mu.Unlock()
		p.setState(peerConnected, addr)
		p.set.router.peerUp(p, conn)
		up := time.Now()
		err = p.serve(conn)
		p.mu.Lock()
		p.conn, p.lastErr = nil, err
		p.mu.Unlock()
		p.set.router.PeerGone(conn, fmt.Errorf("link to host %s lost before it answered (%v)", p.host, err))
		p.setState(peerBackoff, err.Error())
		if time.Since(up) > t.healthyUpTo {
			backoff = t.backoffMin
		}
		if !p.pause(backoff) {
			p.setState(peerClosed, "master stopping")
			return
		}
		backoff = min(2*backoff, t.backoffMax)
	}
}

// pause waits d, or less when poked; false when the master stops.
func (p *Peer) pause(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-p.wake:
		return true
	case <-p.set.stop:
		return false
	}
}

// serve reads the link until it breaks and returns why: replies go to
// their pending requests; a "not owned" one is held for the shard's next
// route.
func (p *Peer) serve(conn *proc) error {
	defer close(conn.linkDone)
	var received atomic.Int64
	var why atomic.Pointer[error]
	stopPing := make(chan struct{})
	pingDone := make(chan struct{})
	go func() {
		defer close(pingDone)
		p.set.keepAlive(conn.link, &received, &why, stopPing, p.set.router.overdue(conn))
	}()
	defer func() { close(stopPing); <-pingDone }()
	for {
		f, err := conn.link.Recv()
		if err != nil {
			conn.link.Abort()
			if w := why.Load(); w != nil {
				return *w
			}
			return err
		}
		received.Add(1)
		if err := p.handle(conn, f); err != nil {
			p.log.Error("bad frame from peer, closing the link", "error", err)
			conn.link.Abort()
			return err
		}
	}
}

func (p *Peer) handle(conn *proc, f ipc.Frame) error {
	switch f.Type {
	case ipc.TypeReply:
		r, err := ipc.DecodeReply(f.Payload)
		if err != nil {
			return err
		}
		conn.mu.Lock()
		pe := conn.inflight[r.Seq]
		delete(conn.inflight, r.Seq)
		conn.mu.Unlock()
		if pe == nil {
			return nil // failed meanwhile (timed out): answered once already
		}
		if r.Kind == ipc.KindNotOwned {
			if pe.proc != nil {
				pe.finish(errorReply(fmt.Errorf("host %s answered a fan-out \"not owned\"", p.host)))
				return errors.New("not-owned reply to a request bound to the host")
			}
			p.set.router.peerNotOwned(conn, pe)
			return nil
		}
		r.Seq = 0
		p.answered.Add(1)
		pe.finish(r)
		p.set.router.peerAnswered(conn, pe.req.Shard)
	case ipc.TypePeerPing:
	default:
		return fmt.Errorf("unexpected frame %s from a peer", f.Type)
	}
	return nil
}
