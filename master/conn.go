package master

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tockd/tock/protocol"
)

// A client that pipelines faster than it reads is simply not read until
// its replies drain (backpressure instead of unbounded memory):
const (
	// maxPipelined bounds the requests waiting for their replies;
	maxPipelined = 4096
	// maxPendingBytes bounds the reply bytes ready but not yet written;
	maxPendingBytes = 8 << 20
	// maxFanouts bounds the QUERYs in flight (each may be large).
	maxFanouts = 4
)

// call is one request line's reply slot. Replies are written in the order
// calls were read, whatever order workers answer in. It is the one
// allocation of a single-job request: its way to the worker (job) rides in
// it, a short reply is encoded into buf, and readiness is a flag plus the
// connection's one wake-up channel rather than a channel per request.
type call struct {
	cc    *clientConn
	out   []byte
	ready atomic.Bool // out is set: stored after out, loaded before reading it
	op    uint8       // protocol.Op of the request, 0 if it did not parse (for stats)
	job   pending     // a single-job request on its way (routeJob)
	rid   string
	buf   [40]byte
}

func (cc *clientConn) newCall() *call { return &call{cc: cc} }

// finish sets the reply bytes; called exactly once. The wake-up is dropped
// when one is already pending: the writer checks every call's flag after
// waking, so replies finished in a burst cost it one wake-up.
func (c *call) finish(out []byte) {
	c.out = out
	c.cc.pendingBytes.Add(int64(len(out)))
	c.ready.Store(true)
	select {
	case c.cc.wake <- struct{}{}:
	default:
	}
}

// clientConn is one client connection.
type clientConn struct {
	id      uint64
	conn    net.Conn
	remote  string
	started time.Time
	calls   chan *call
	quit    chan struct{} // closed to stop reading (graceful stop)
	once    sync.Once

	wake         chan struct{} // a call finished (capacity 1: see call.finish)
	pendingBytes atomic.Int64  // finished replies not yet written
	room         chan struct{} // signalled when replies were written
	fanouts      chan struct{} // one token per QUERY in flight

	stats connCounters // for /connz, /varz, /metrics (conn_stats.go)
}

func (m *Master) acceptLoop() {
	defer m.wg.Done()
	for {
		c, err := m.listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || m.acceptStopped.Load() {
				return
			}
			m.log.Warn("accept", "error", err)
			select {
			case <-time.After(50 * time.Millisecond): // EMFILE and friends: don't spin
			case <-m.stopCh:
				return
			}
			continue
		}
		if int(m.connections.Load()) >= m.cfg.Controller.MaxConnections {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(c, "ERROR too many connections\n")
			c.Close()
			m.rejected(c)
			continue
		}
		m.connections.Add(1)
		cc := &clientConn{conn: c, remote: c.RemoteAddr().String(), started: time.Now(),
			calls: make(chan *call, maxPipelined), quit: make(chan struct{}), wake: make(chan struct{}, 1),
			room: make(chan struct{}, 1), fanouts: make(chan struct{}, maxFanouts)}
		m.conns.add(cc)
		go m.serveConn(cc)
	}
}

// stopAccepting ends the accept loop but leaves the socket open (for a
// restart: connections wait in the backlog for the next master).
func (m *Master) stopAccepting() {
	m.acceptStopped.Store(true)
	if tl, ok := m.listener.(interface{ SetDeadline(time.Time) error }); ok {
		if err := tl.SetDeadline(time.Now()); err != nil {
			m.log.Warn("stop accepting", "error", err)
		}
	}
}

// serveConn reads and dispatches lines; its writer writes the replies in
// order and flushes whenever it would otherwise wait.
func (m *Master) serveConn(cc *clientConn) {
	defer m.connections.Add(-1)
	defer m.conns.remove(cc)
	m.log.Debug("client connected", "remote", cc.remote)
	if m.tls != nil {
		tc := tls.Server(cc.conn, m.tls)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			m.log.Debug("tls handshake failed", "remote", cc.remote, "error", err)
			cc.conn.Close()
			cc.stats.setReason(reasonTLSHandshake)
			m.closed(cc)
			return
		}
		tc.SetDeadline(time.Time{})
		// Under the table's lock: closeReads and closeAll read cc.conn.
		m.conns.mu.Lock()
		cc.conn = tc
		m.conns.mu.Unlock()
		cc.stats.setTLS(tc.ConnectionState())
	}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		m.writeReplies(cc)
	}()
	m.readRequests(cc)
	close(cc.calls)
	<-writerDone
	cc.conn.Close()
	reason := m.closed(cc)
	m.log.Debug("client disconnected", "remote", cc.remote, "reason", reason)
}

func (m *Master) readRequests(cc *clientConn) {
	r := protocol.NewReader(cc.conn, m.cfg.Controller.MaxLineBytes)
	s := &session{m: m, cc: cc, authed: m.auth.Load() == nil}
	if !s.authed {
		// AUTH must come first, within authTimeout of the connection start.
		cc.conn.SetReadDeadline(time.Now().Add(authTimeout))
	}
	var batch readBatch
	defer func() { batch.publish(&cc.stats, m.clock.now()) }()
	for {
		line, err := r.ReadLine()
		if err == nil || errors.Is(err, protocol.ErrLineTooLong) {
			batch.add(len(line) + 1)
			if r.Buffered() == 0 { // the next read waits for the client
				batch.publish(&cc.stats, m.clock.now())
			}
		}
		if !cc.waitRoom() {
			cc.stats.setReason(reasonServerShutdown)
			return
		}
		if errors.Is(err, protocol.ErrLineTooLong) {
			c := cc.newCall()
			select {
			case cc.calls <- c:
			case <-cc.quit:
				return
			}
			c.finish(protocol.AppendError(nil, tooLongRID(err), err.Error()))
			continue
		}
		if err != nil {
			cc.stats.setReason(readReason(err, s.authed, cc.quitting()))
			return
		}
		c := cc.newCall()
		select {
		case cc.calls <- c:
		case <-cc.quit:
			return
		}
		m.requests.Add(1)
		wasAuthed := s.authed
		if s.dispatch(c, line) {
			cc.stats.setReason(reasonAuthFailure) // unless dispatch said otherwise
			return                                // the reply is written, then the connection closes
		}
		if s.authed && !wasAuthed {
			cc.conn.SetReadDeadline(time.Time{})
		}
		select {
		case <-cc.quit:
			return
		default:
		}
	}
}

// waitRoom blocks while too many reply bytes wait to be written; false
// when the connection is stopping.
func (cc *clientConn) waitRoom() bool {
	for cc.pendingBytes.Load() > maxPendingBytes {
		select {
		case <-cc.room:
		case <-cc.quit:
			return false
		}
	}
	return true
}

// wrote accounts for n reply bytes written.
func (cc *clientConn) wrote(n int) {
	cc.pendingBytes.Add(-int64(n))
	select {
	case cc.room <- struct{}{}:
	default:
	}
}

func (m *Master) writeReplies(cc *clientConn) {
	w := bufio.NewWriterSize(cc.conn, 32<<10)
	writeTimeout := m.writeDeadline()
	broken := false
	var batch writeBatch
	fail := func(err error) bool {
		if err == nil {
			return false
		}
		cc.stats.setReason(writeReason(err))
		// Close now, not when the reader ends: a client that stopped
		// reading may never send again, and its reader would wait forever.
		cc.conn.Close()
		return true
	}
	for c := range cc.calls {
		if !c.ready.Load() {
			// The next reply is not ready: push out what we have first.
			if !broken && w.Buffered() > 0 {
				cc.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
				broken = fail(w.Flush())
				batch.publish(&cc.stats)
			}
			for !c.ready.Load() {
				<-cc.wake
			}
		}
		n := len(c.out)
		if broken {
			cc.wrote(n)
			continue // keep draining so the reader never blocks
		}
		if len(c.out) > w.Available() { // this Write reaches the socket
			cc.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		}
		_, err := w.Write(c.out)
		batch.add(c.op, c.out)
		c.out = nil
		cc.wrote(n)
		if fail(err) {
			broken = true
			continue
		}
		if len(cc.calls) == 0 {
			cc.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			broken = fail(w.Flush())
			batch.publish(&cc.stats)
		}
	}
	if !broken {
		fail(w.Flush())
	}
	batch.publish(&cc.stats)
	if broken {
		cc.conn.Close() // unblock the reader
	}
}

// connTable tracks open client connections.
type connTable struct {
	mu    sync.Mutex
	conns map[*clientConn]struct{}
	empty *sync.Cond
	next  uint64
}

func (t *connTable) init() {
	t.conns = map[*clientConn]struct{}{}
	t.empty = sync.NewCond(&t.mu)
}

func (t *connTable) add(cc *clientConn) {
	t.mu.Lock()
	t.next++
	cc.id = t.next
	t.conns[cc] = struct{}{}
	t.mu.Unlock()
}

// nextID takes a connection id for a connection that is not tracked.
func (t *connTable) nextID() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.next++
	return t.next
}

// total is the number of connections ever accepted (ids handed out).
func (t *connTable) total() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.next
}

// snapshot returns the open connections.
func (t *connTable) snapshot() []*clientConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*clientConn, 0, len(t.conns))
	for cc := range t.conns {
		out = append(out, cc)
	}
	return out
}

func (t *connTable) remove(cc *clientConn) {
	t.mu.Lock()
	delete(t.conns, cc)
	if len(t.conns) == 0 {
		t.empty.Broadcast()
	}
	t.mu.Unlock()
}

// closeReads stops every connection from reading more requests; their
// in-flight replies are still written, then they close.
func (t *connTable) closeReads() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for cc := range t.conns {
		cc.stats.setReason(reasonServerShutdown)
		cc.once.Do(func() { close(cc.quit) })
		// Wake a reader blocked in Read; it sees quit and stops.
		cc.conn.SetReadDeadline(time.Now())
	}
}

// wait waits until every connection has closed, or d.
func (t *connTable) wait(d time.Duration) {
	timer := time.AfterFunc(d, func() { t.mu.Lock(); t.empty.Broadcast(); t.mu.Unlock() })
	defer timer.Stop()
	deadline := time.Now().Add(d)
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.conns) > 0 && time.Now().Before(deadline) {
		t.empty.Wait()
	}
}

func (t *connTable) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for cc := range t.conns {
		cc.stats.setReason(reasonServerShutdown)
		cc.conn.Close()
	}
}

func (t *connTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// tooLongRID is the request id to answer an over-long line with: its own
// when it was readable, none for a bare AUTH.
func tooLongRID(err error) string {
	var tl *protocol.LineTooLongError
	if errors.As(err, &tl) && tl.RID != "AUTH" {
		return tl.RID
	}
	return ""
}
