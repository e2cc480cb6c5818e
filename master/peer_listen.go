package master

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tockd/tock/config"
	"github.com/tockd/tock/ipc"
)

// The peer listener (docs/scale-out.md, "Forwarding") takes the links
// other hosts' masters dial to this one and serves what comes on them as
// this host's own clients' requests, with two differences: they are not
// authenticated again (the first master checked AUTH and the namespace,
// which is why the listener trusts a link only over mutual TLS or from a
// loopback address), and they are served only by this host's workers
// (pending.forwarded), never sent on to a third host.

// peerTLS builds the peer links' TLS configuration from jetstream.tls_*:
// both sides present tls_cert and verify the other's against tls_ca (the
// system roots when it is empty). Nil, nil when no certificate is set.
func peerTLS(j config.JetStream) (server, client *tls.Config, err error) {
	if j.TLSCert == "" {
		return nil, nil, nil
	}
	cert, err := tls.LoadX509KeyPair(j.TLSCert, j.TLSKey)
	if err != nil {
		return nil, nil, fmt.Errorf("peer links: load jetstream.tls_cert: %w", err)
	}
	var pool *x509.CertPool
	if j.TLSCA != "" {
		pem, err := os.ReadFile(j.TLSCA)
		if err != nil {
			return nil, nil, fmt.Errorf("peer links: read jetstream.tls_ca: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("peer links: jetstream.tls_ca %s holds no PEM certificate", j.TLSCA)
		}
	}
	server = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	client = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}
	return server, client, nil
}

// peersEnabled reports whether this master forwards between hosts: in
// JetStream mode always; in the other modes when jetstream.advertise or
// listen is set (tests and a single host trying the links out).
func (m *Master) peersEnabled() bool {
	return m.cfg.Database.Persistence == config.PersistenceJetStream || m.cfg.JetStreamListen() != ""
}

// startPeers binds the peer listener and starts serving it. In JetStream
// mode every shard starts unowned: the lease manager gives this host its
// shards (SetOwner) and routes the others (SetRemote).
func (m *Master) startPeers() error {
	if !m.peersEnabled() {
		return nil
	}
	s := m.peers
	server, client, err := peerTLS(m.cfg.JetStream)
	if err != nil {
		return err
	}
	s.server, s.client = server, client
	addr := m.cfg.JetStreamListen()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("peer listener on %s: %w", addr, err)
	}
	if server == nil && !isLoopback(ln.Addr()) {
		m.log.Warn("peer listener without TLS accepts links from loopback addresses only: set jetstream.tls_cert, tls_key and tls_ca for hosts on other machines",
			"listen", ln.Addr().String())
	}
	s.listener = ln
	if m.cfg.Database.Persistence == config.PersistenceJetStream {
		for n := 0; n < m.cfg.Cluster.Shards; n++ {
			if m.router.Owner(n) == nil {
				m.router.SetUnowned(n)
			}
		}
	}
	s.goRun(func() { s.acceptLoop(m) })
	s.goRun(func() {
		t := time.NewTicker(notOwnedRetry)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case now := <-t.C:
				m.router.retryNotOwned(now)
			}
		}
	})
	m.log.Info("peer listener ready", "listen", ln.Addr().String(), "host", s.hello.Host, "tls", server != nil)
	return nil
}

// PeerAddr is the peer listener's address (nil when it is off).
func (m *Master) PeerAddr() net.Addr {
	if m.peers.listener == nil {
		return nil
	}
	return m.peers.listener.Addr()
}

// stopPeers stops the listener, answers the forwarded requests being
// served (for up to wait), closes every link and stops the dial loops.
func (m *Master) stopPeers(wait time.Duration) {
	s := m.peers
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.closing = true
	close(s.stop)
	if s.listener != nil {
		s.listener.Close()
	}
	peers := make([]*Peer, 0, len(s.peers))
	for _, p := range s.peers {
		peers = append(peers, p)
	}
	s.mu.Unlock()
	deadline := time.Now().Add(wait)
	for s.served.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling the count of answers still due
	}
	s.mu.Lock()
	for l, c := range s.inbound {
		// Write the answers queued, then close; a peer that does not read
		// them does not hold the shutdown.
		c.SetWriteDeadline(time.Now().Add(time.Second))
		go l.Close()
	}
	s.mu.Unlock()
	for _, p := range peers {
		if c := p.current(); c != nil {
			c.link.Abort()
		}
	}
	s.wg.Wait()
}

func isLoopback(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

func (s *peerSet) acceptLoop(m *Master) {
	for {
		c, err := s.listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.stopped() {
				return
			}
			s.log.Warn("peer accept", "error", err)
			select {
			case <-time.After(50 * time.Millisecond): // EMFILE and friends: don't spin
			case <-s.stop:
				return
			}
			continue
		}
		if !s.goRun(func() { s.serveInbound(m, c) }) {
			c.Close()
			return
		}
	}
}

// serveInbound runs one link another master dialed: TLS (or the loopback
// check), the handshake, then its requests until it breaks.
func (s *peerSet) serveInbound(m *Master, c net.Conn) {
	remote := c.RemoteAddr().String()
	log := s.log.With("peer_remote", remote)
	if s.server == nil && !isLoopback(c.RemoteAddr()) {
		log.Warn("refused a peer link from a non-loopback address without TLS (set jetstream.tls_cert, tls_key and tls_ca)")
		// Say why (the dialer logs it) without reading anything it sent.
		c.SetDeadline(time.Now().Add(time.Second))
		refusal := s.hello
		refusal.Error = "peer links from other machines need TLS: set jetstream.tls_cert, tls_key and tls_ca on every host"
		l := ipc.NewLink(c)
		if err := l.SendJSON(ipc.TypePeerWelcome, refusal); err != nil {
			log.Debug("send refusal", "error", err)
		}
		l.Close()
		return
	}
	c.SetDeadline(time.Now().Add(s.timings.dial))
	if s.server != nil {
		tc := tls.Server(c, s.server)
		if err := tc.Handshake(); err != nil {
			log.Warn("peer tls handshake failed", "error", err)
			c.Close()
			return
		}
		c = tc
	}
	link := ipc.NewLink(c)
	theirs, err := s.accept(link)
	if err != nil {
		log.Warn("refused a peer link", "error", err)
		if theirs.Error == "" {
			refusal := s.hello
			refusal.Error = strings.TrimPrefix(err.Error(), ipc.ErrPeerMismatch.Error()+": ")
			if err := link.SendJSON(ipc.TypePeerWelcome, refusal); err != nil {
				log.Debug("send refusal", "error", err)
			}
		}
		link.Close()
		return
	}
	c.SetDeadline(time.Time{})
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		link.Abort()
		return
	}
	s.inbound[link] = c
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.inbound, link)
		s.mu.Unlock()
	}()
	log = log.With("peer", theirs.Host)
	log.Info("peer link accepted")
	var received atomic.Int64
	var why atomic.Pointer[error]
	stop, pingDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(pingDone)
		s.keepAlive(link, &received, &why, stop, nil)
	}()
	defer func() { close(stop); <-pingDone }()
	for {
		f, err := link.Recv()
		if err != nil {
			if w := why.Load(); w != nil {
				err = *w
			}
			log.Info("peer link closed", "error", err)
			link.Abort()
			return
		}
		received.Add(1)
		if err := s.serveFrame(m, link, f); err != nil {
			log.Error("bad frame from peer, closing the link", "error", err)
			link.Abort()
			return
		}
	}
}

// accept reads and checks the dialer's hello and answers with ours.
func (s *peerSet) accept(link *ipc.Link) (ipc.PeerHello, error) {
	f, err := link.Recv()
	if err != nil {
		return ipc.PeerHello{}, fmt.Errorf("no handshake: %w", err)
	}
	if f.Type != ipc.TypePeerHello {
		return ipc.PeerHello{}, fmt.Errorf("%w: first frame is %s, not peer-hello", ipc.ErrMalformed, f.Type)
	}
	theirs, err := ipc.DecodePeerHello(f.Payload)
	if err != nil {
		return ipc.PeerHello{}, err
	}
	if err := ipc.CheckPeer(s.hello, theirs); err != nil {
		return ipc.PeerHello{}, err
	}
	if err := link.SendJSON(ipc.TypePeerWelcome, s.hello); err != nil {
		return theirs, fmt.Errorf("send welcome: %w", err)
	}
	return theirs, nil
}

// serveFrame serves one frame of an inbound link.
func (s *peerSet) serveFrame(m *Master, link *ipc.Link, f ipc.Frame) error {
	switch f.Type {
	case ipc.TypeRequest:
		req, err := ipc.DecodeRequest(f.Payload)
		if err != nil {
			return err
		}
		seq := req.Seq
		s.served.Add(1)
		s.servedTotal.Add(1)
		reply := func(r ipc.Reply) {
			r.Seq = seq
			if err := link.SendReply(r); err != nil {
				s.log.Debug("reply to peer", "error", err)
			}
			s.served.Add(-1)
		}
		if req.Op == ipc.OpStat && req.Shard == ipc.AllShards {
			// This host's workers' share of a STAT another host fans out.
			m.localStat(func(st ipc.Stat) { reply(ipc.Reply{Kind: ipc.KindStat, Stat: st}) })
			return nil
		}
		if req.Shard < 0 || req.Shard >= m.cfg.Cluster.Shards {
			reply(errorReply(fmt.Errorf("shard %d does not exist here (this host has %d shards)", req.Shard, m.cfg.Cluster.Shards)))
			return nil
		}
		req.Seq = 0
		s.router.routeForwarded(&pending{req: req, deliver: reply})
	case ipc.TypeOutcome:
		var o ipc.Outcome
		if err := ipc.DecodeJSON(f.Payload, &o); err != nil {
			return err
		}
		if !s.router.forwardOutcomeLocal(o) {
			s.log.Warn("outcome forwarded for a shard this host does not own; its owner runs the job again", "shard", o.Shard, "job", o.JobID)
		}
	case ipc.TypePeerPing:
	default:
		return fmt.Errorf("unexpected frame %s on a peer link", f.Type)
	}
	return nil
}
