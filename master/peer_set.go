package master

import (
	"crypto/tls"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/ipc"
)

// The peer set: every Peer of this master and the peer listener's state
// (peer_listen.go); peer_link.go has the dial and the keep-alive.

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
	// servedTotal counts the requests other hosts forwarded here.
	servedTotal atomic.Int64
}

// ForwardedServed is the number of requests other hosts' masters have
// forwarded to this one, for the host view.
func (m *Master) ForwardedServed() int64 { return m.peers.servedTotal.Load() }

// newPeerSet makes the peer set; holdFor is how long a master holds a
// request for a shard without a ready owner, forwarded ones included, so
// a link is declared dead for an unanswered request only past it.
func newPeerSet(log hclog.Logger, router *Router, hello ipc.PeerHello, holdFor time.Duration) *peerSet {
	t := defaultPeerTimings
	t.request = max(t.request, holdFor+5*time.Second)
	return &peerSet{log: log, router: router, hello: hello, timings: t,
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
	// Answered counts the requests it has answered for this host.
	Answered int64 `json:"answered"`
}

// PeerStatuses lists the known peers, by host name.
func (m *Master) PeerStatuses() []PeerStatus {
	peers := m.Peers()
	slices.SortFunc(peers, func(a, b *Peer) int { return strings.Compare(a.host, b.host) })
	out := make([]PeerStatus, 0, len(peers))
	for _, p := range peers {
		st := PeerStatus{Host: p.host, Shards: m.router.shardsRoutedTo(p), Answered: p.answered.Load()}
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
