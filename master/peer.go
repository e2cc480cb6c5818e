package master

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
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
	request     time.Duration // a link with a request unanswered for this long is dead
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
		pe.finish(r)
		p.set.router.peerAnswered(conn, pe.req.Shard)
	case ipc.TypePeerPing:
	default:
		return fmt.Errorf("unexpected frame %s from a peer", f.Type)
	}
	return nil
}

// overdue returns a check, for one link's keep-alive, that reports a
// request in flight on it for longer than d: the router's sequence number
// is sampled at every call, so a request whose Seq is at or below the one
// sampled d ago was sent at least d ago. It costs the hot path nothing.
func (r *Router) overdue(conn *proc) func(now time.Time, d time.Duration) bool {
	type sample struct {
		at  time.Time
		seq uint64
	}
	var samples []sample
	return func(now time.Time, d time.Duration) bool {
		r.mu.Lock()
		seq := r.seq
		r.mu.Unlock()
		samples = append(samples, sample{now, seq})
		at := -1 // the newest sample at least d old
		for i, s := range samples {
			if now.Sub(s.at) < d {
				break
			}
			at = i
		}
		if at < 0 {
			return false
		}
		bound := samples[at].seq
		samples = samples[at:]
		conn.mu.Lock()
		defer conn.mu.Unlock()
		for seq := range conn.inflight {
			if seq <= bound {
				return true
			}
		}
		return false
	}
}

// peerSet is this master's peers and peer listener.
type peerSet struct {
	log     hclog.Logger
	router  *Router
	hello   ipc.PeerHello // this host's handshake
	client  *tls.Config   // nil: plain TCP (loopback only, see peer_listen.go)
	server  *tls.Config
	timings peerTimings

	mu      sync.Mutex
	peers   map[string]*Peer
	closing bool
	stop    chan struct{}
	wg      sync.WaitGroup

	listener net.Listener
	inbound  map[*ipc.Link]net.Conn
	served   atomic.Int64 // forwarded requests not yet answered
}

func newPeerSet(log hclog.Logger, router *Router, hello ipc.PeerHello) *peerSet {
	return &peerSet{log: log, router: router, hello: hello, timings: defaultPeerTimings,
		peers: map[string]*Peer{}, stop: make(chan struct{}), inbound: map[*ipc.Link]net.Conn{}}
}

// Peer returns the link to host, dialed at addr (created on first use; a
// changed address is dialed from now on, the current link kept until it
// breaks). Give it to Router.SetRemote.
func (m *Master) Peer(host, addr string) *Peer { return m.peers.get(host, addr) }

// Peers lists the known peers.
func (m *Master) Peers() []*Peer {
	s := m.peers
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Peer, 0, len(s.peers))
	for _, p := range s.peers {
		out = append(out, p)
	}
	return out
}

// PeerStatus is one peer link as /stats and `tock ctl hosts` may show it.
type PeerStatus struct {
	Host      string `json:"host"`
	Addr      string `json:"addr"`
	State     string `json:"state"`
	LastError string `json:"last_error,omitempty"`
	// Shards are the shards this host routes to it.
	Shards []int `json:"shards"`
}

// PeerStatuses lists the known peers, by host name.
func (m *Master) PeerStatuses() []PeerStatus {
	peers := m.Peers()
	slices.SortFunc(peers, func(a, b *Peer) int { return strings.Compare(a.host, b.host) })
	out := make([]PeerStatus, 0, len(peers))
	for _, p := range peers {
		st := PeerStatus{Host: p.host, Shards: m.router.shardsRoutedTo(p)}
		p.mu.Lock()
		st.Addr, st.State = p.addr, string(p.state)
		if p.lastErr != nil {
			st.LastError = p.lastErr.Error()
		}
		p.mu.Unlock()
		out = append(out, st)
	}
	return out
}

func (s *peerSet) get(host, addr string) *Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.peers[host]
	if p == nil {
		p = &Peer{set: s, host: host, addr: addr, state: peerIdle, wake: make(chan struct{}, 1),
			log: s.log.With("peer", host)}
		s.peers[host] = p
		return p
	}
	p.mu.Lock()
	changed := p.addr != addr && addr != ""
	if changed {
		p.addr = addr
	}
	p.mu.Unlock()
	if changed {
		p.log.Info("peer address changed", "addr", addr)
		p.poke()
	}
	return p
}

// goRun runs fn in the set's wait group unless the set is stopping.
func (s *peerSet) goRun(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}

func (s *peerSet) stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// dial connects to a peer's listener and shakes hands; the returned link
// has passed CheckPeer both ways.
func (s *peerSet) dial(addr, host string) (*ipc.Link, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timings.dial)
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial host %s at %s: %w", host, addr, err)
	}
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	if s.client != nil {
		cfg := s.client.Clone()
		if h, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = h
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("tls with host %s at %s: %w", host, addr, err)
		}
		c = tc
	}
	link := ipc.NewLink(c)
	if err := link.SendJSON(ipc.TypePeerHello, s.hello); err != nil {
		link.Abort()
		return nil, fmt.Errorf("handshake with host %s at %s: %w", host, addr, err)
	}
	f, err := link.Recv()
	if err != nil {
		link.Abort()
		return nil, fmt.Errorf("handshake with host %s at %s: %w", host, addr, err)
	}
	if f.Type != ipc.TypePeerWelcome {
		link.Abort()
		return nil, fmt.Errorf("handshake with host %s at %s: %w: got %s", host, addr, ipc.ErrMalformed, f.Type)
	}
	theirs, err := ipc.DecodePeerHello(f.Payload)
	if err == nil {
		err = ipc.CheckPeer(s.hello, theirs)
	}
	if err == nil && theirs.Host != host {
		err = fmt.Errorf("%w: %s answers as host %q, expected %q (a stale route?)", ipc.ErrPeerMismatch, addr, theirs.Host, host)
	}
	if err != nil {
		link.Abort()
		return nil, fmt.Errorf("handshake with host %s at %s: %w", host, addr, err)
	}
	c.SetDeadline(time.Time{})
	return link, nil
}

// keepAlive pings the link every timings.ping and aborts it when nothing
// was received for deadAfter or a request waits longer than request,
// storing why; it returns when stop is closed.
func (s *peerSet) keepAlive(l *ipc.Link, received *atomic.Int64, why *atomic.Pointer[error], stop chan struct{},
	overdue func(time.Time, time.Duration) bool) {
	t := s.timings
	tick := time.NewTicker(t.ping)
	defer tick.Stop()
	last, lastAt := received.Load(), time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			if err := l.PostJSON(ipc.TypePeerPing, struct{}{}); err != nil {
				return // closed: the reader sees it
			}
			if n := received.Load(); n != last {
				last, lastAt = n, now
			}
			var err error
			switch {
			case now.Sub(lastAt) > t.deadAfter:
				err = fmt.Errorf("nothing received for %s", now.Sub(lastAt).Round(time.Millisecond))
			case overdue != nil && overdue(now, t.request):
				err = fmt.Errorf("a request unanswered for over %s", t.request)
			}
			if err != nil {
				why.Store(&err)
				l.Abort()
				return
			}
		}
	}
}
