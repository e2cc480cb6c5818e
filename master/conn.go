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
// calls were read, whatever order workers answer in. Calls live in the
// connection's ring (callring.go) and are reused once written, so a
// single-job request allocates nothing here: its way to the worker (job)
// rides in it, a short reply is encoded into buf, and readiness is a flag
// plus the ring's one wake-up channel.
type call struct {
	cc    *clientConn
	out   []byte
	ready atomic.Bool // out is set: stored after out, loaded before reading it
	op    uint8       // protocol.Op of the request, 0 if it did not parse (for stats)
	job   pending     // a single-job request on its way (routeJob)
	rid   string
	buf   [40]byte
}

// finish sets the reply bytes and wakes the writer; called exactly once.
func (c *call) finish(out []byte) {
	ring := c.set(out)
	notify(ring.wake)
}

// set sets the reply bytes without waking the writer, and returns the ring
// to wake (a batch of replies wakes each writer once, see deliverReplies).
// c may be reused as soon as ready is stored: nothing of it is read after.
func (c *call) set(out []byte) *callRing {
	cc := c.cc
	c.out = out
	cc.pendingBytes.Add(int64(len(out)))
	c.ready.Store(true)
	return cc.ring
}

// clientConn is one client connection.
type clientConn struct {
	id      uint64
	conn    net.Conn
	remote  string
	started time.Time
	ring    *callRing     // calls from the reader to the writer, in order
	quit    chan struct{} // closed to stop reading (graceful stop)
	once    sync.Once

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
			ring: newCallRing(), quit: make(chan struct{}),
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
	cc.ring.close()
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
	// Single-job requests are routed once per read batch (routes.go): what
	// was read is routed before the reader may wait for anything.
	defer s.flushRoutes()
	for {
		if !r.LineBuffered() { // the next read waits for the client
			s.flushRoutes()
		}
		line, err := r.ReadLine()
		if err == nil || errors.Is(err, protocol.ErrLineTooLong) {
			batch.add(len(line) + 1)
			if r.Buffered() == 0 {
				batch.publish(&cc.stats, m.clock.now())
			}
		}
		if !cc.waitRoom(s.flushRoutes) {
			cc.stats.setReason(reasonServerShutdown)
			return
		}
		if errors.Is(err, protocol.ErrLineTooLong) {
			c, ok := cc.ring.take(cc, cc.quit, s.flushRoutes)
			if !ok {
				return
			}
			cc.ring.push()
			c.finish(protocol.AppendError(nil, tooLongRID(err), err.Error()))
			continue
		}
		if err != nil {
			cc.stats.setReason(readReason(err, s.authed, cc.quitting()))
			return
		}
		c, ok := cc.ring.take(cc, cc.quit, s.flushRoutes)
		if !ok {
			return
		}
		cc.ring.push()
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

// waitRoom blocks while too many reply bytes wait to be written, calling
// beforeWait first; false when the connection is stopping.
func (cc *clientConn) waitRoom(beforeWait func()) bool {
	if cc.pendingBytes.Load() > maxPendingBytes {
		beforeWait()
	}
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
	if n == 0 {
		return
	}
	cc.pendingBytes.Add(-int64(n))
	notify(cc.room)
}

// writeReplies writes the replies in the order their calls were read. It
// writes every reply that is ready into its buffer and flushes (one
// syscall) when the next one is not ready, so a batch of replies costs one
// write and one wake-up.
func (m *Master) writeReplies(cc *clientConn) {
	w := bufio.NewWriterSize(cc.conn, 32<<10)
	writeTimeout := m.writeDeadline()
	broken := false
	var batch writeBatch
	written := 0 // reply bytes taken since the last wrote
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
	flush := func() {
		if !broken && w.Buffered() > 0 {
			cc.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			broken = fail(w.Flush())
			batch.publish(&cc.stats)
		}
		cc.wrote(written)
		written = 0
	}
	ring := cc.ring
	for {
		c := ring.peek()
		if c == nil || !c.ready.Load() {
			// Nothing more to write now: push out what we have first.
			flush()
			if c == nil && ring.drained() {
				break
			}
			<-ring.wake
			continue
		}
		out := c.out
		written += len(out)
		if !broken {
			if len(out) > w.Available() { // this Write reaches the socket
				cc.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			}
			_, err := w.Write(out) // copies out, which may be c.buf
			batch.add(c.op, out)
			broken = fail(err)
		}
		c.out = nil
		ring.pop() // c may be reused from here on; broken: keep draining so the reader never blocks
	}
	flush()
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
