package master

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/tockd/tock/ipc"
)

// Link mechanics both directions share: the dial with its handshake, and
// the keep-alive that declares a silent or stuck link dead.

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
