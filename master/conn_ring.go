package master

import (
	"crypto/tls"
	"net"
	"strconv"
	"sync"
	"time"
)

// closedRingSize is how many closed connections /connz?state=closed keeps
// (as nats-server's max_closed_clients).
const closedRingSize = 10000

// closedRing keeps the latest closed connections, frozen at close.
type closedRing struct {
	mu   sync.Mutex
	buf  []ConnInfo // grows to closedRingSize, then wraps
	next int        // where the next entry goes once full
}

func (r *closedRing) push(ci ConnInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) < closedRingSize {
		r.buf = append(r.buf, ci)
		return
	}
	r.buf[r.next] = ci
	r.next = (r.next + 1) % closedRingSize
}

// list returns the entries oldest first (copies: callers may decorate).
func (r *closedRing) list() []ConnInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ConnInfo, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	return append(out, r.buf[:r.next]...)
}

func (r *closedRing) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.buf)
}

// closed records a connection that has ended: its figures go to the
// totals and a frozen snapshot into the ring.
func (m *Master) closed(cc *clientConn) closeReason {
	reason := closeReason(cc.stats.reason.Load())
	if reason == reasonNone {
		reason = reasonClientClosed
	}
	if reason == reasonSlowConsumer {
		m.slowConsumers.Add(1)
	}
	// Its figures move from the open table to the totals in one step, so a
	// sum of both (connFigures) never counts them twice or not at all.
	m.conns.mu.Lock()
	m.connTotals.add(&cc.stats, reason)
	delete(m.conns.conns, cc)
	m.conns.mu.Unlock()
	now := time.Now().UTC()
	ci := cc.info(now)
	ci.Stop = &now
	ci.Reason = reason.String()
	ci.Uptime = natsDuration(now.Sub(cc.started))
	m.closedConns.push(ci)
	return reason
}

// rejected records a connection refused for max_connections.
func (m *Master) rejected(c net.Conn) {
	cc := &clientConn{conn: c, remote: c.RemoteAddr().String(), started: time.Now()}
	cc.id = m.conns.nextID()
	cc.stats.setReason(reasonMaxConnections)
	m.closed(cc)
}

// quitting reports whether the master asked the connection to stop.
func (cc *clientConn) quitting() bool {
	select {
	case <-cc.quit:
		return true
	default:
		return false
	}
}

func (c *connCounters) setTLS(st tls.ConnectionState) {
	c.mu.Lock()
	c.tlsVersion = tls.VersionName(st.Version)
	c.tlsCipher = tls.CipherSuiteName(st.CipherSuite)
	c.mu.Unlock()
}

func (c *connCounters) setIdentity(id identity) {
	c.mu.Lock()
	c.name, c.namespace = id.name, id.namespace
	c.mu.Unlock()
}

// info snapshots the connection for /connz.
func (cc *clientConn) info(now time.Time) ConnInfo {
	host, port := splitRemote(cc.remote)
	st := &cc.stats
	last := time.Unix(0, st.lastActivity.Load()).UTC()
	if st.lastActivity.Load() == 0 || last.Before(cc.started) {
		last = cc.started.UTC()
	}
	st.mu.Lock()
	name, ns, tv, tc := st.name, st.namespace, st.tlsVersion, st.tlsCipher
	st.mu.Unlock()
	return ConnInfo{
		Cid: cc.id, Kind: "Client", Type: "ztick", IP: host, Port: port,
		Start: cc.started.UTC(), LastActivity: last, RTT: "0s",
		Uptime: natsDuration(now.Sub(cc.started)), Idle: natsDuration(max(0, now.Sub(last))),
		Pending: int(cc.pendingBytes.Load()),
		InMsgs:  st.inMsgs.Load(), OutMsgs: st.outMsgs.Load(), InBytes: st.inBytes.Load(), OutBytes: st.outBytes.Load(),
		Name: name, TLSVersion: tv, TLSCipher: tc,
		authorizedUser: name, account: ns,
	}
}

func splitRemote(remote string) (string, int) {
	host, p, err := net.SplitHostPort(remote)
	if err != nil {
		return remote, 0
	}
	port, _ := strconv.Atoi(p)
	return host, port
}
