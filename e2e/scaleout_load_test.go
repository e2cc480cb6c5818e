package e2e

// The load of the scale-out tests: pipelining ledger clients, one prober
// per shard and a client of due jobs. Every key is written once, so the
// ledger of acknowledged SETs is exact: key → execution time.

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// doWithin is do with a deadline of d for the exchange.
func (c *rawClient) doWithin(line string, d time.Duration) string {
	c.conn.SetDeadline(time.Now().Add(d))
	if _, err := io.WriteString(c.conn, line+"\n"); err != nil {
		return "io error: " + err.Error()
	}
	s, err := c.r.ReadString('\n')
	if err != nil {
		return "io error: " + err.Error()
	}
	return strings.TrimSuffix(s, "\n")
}

// soLedger records every acknowledged SET of the scale-out load.
type soLedger struct {
	mu     sync.Mutex
	acked  map[string]int64 // key → execution of its acknowledged SET
	unsure int              // SETs whose reply never came
	errs   map[string]int   // ERROR replies by reason
	odd    []string         // replies that make no sense (first 20)
}

func newSoLedger() *soLedger { return &soLedger{acked: map[string]int64{}, errs: map[string]int{}} }

func (l *soLedger) ack(key string, exec int64) {
	l.mu.Lock()
	l.acked[key] = exec
	l.mu.Unlock()
}

func (l *soLedger) lost(n int) {
	l.mu.Lock()
	l.unsure += n
	l.mu.Unlock()
}

func (l *soLedger) errorReply(reason string) {
	if i := strings.IndexByte(reason, ':'); i > 0 {
		reason = reason[:i]
	}
	l.mu.Lock()
	l.errs[reason]++
	l.mu.Unlock()
}

func (l *soLedger) oddReply(format string, args ...any) {
	l.mu.Lock()
	if len(l.odd) < 20 {
		l.odd = append(l.odd, fmt.Sprintf(format, args...))
	}
	l.mu.Unlock()
}

func (l *soLedger) snapshot() map[string]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.acked)
}

func (l *soLedger) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := fmt.Sprintf("%d acknowledged SETs, %d without a reply", len(l.acked), l.unsure)
	if len(l.errs) > 0 {
		var parts []string
		for _, r := range slices.Sorted(maps.Keys(l.errs)) {
			parts = append(parts, fmt.Sprintf("%q=%d", r, l.errs[r]))
		}
		s += "; ERROR replies: " + strings.Join(parts, " ")
	}
	if len(l.odd) > 0 {
		s += "; odd replies: " + strings.Join(l.odd, "; ")
	}
	return s
}

// soTargets is where the load connects: a list the test changes as hosts
// die and come back.
type soTargets struct {
	mu    sync.Mutex
	addrs []string
}

func (t *soTargets) set(addrs []string) {
	t.mu.Lock()
	t.addrs = slices.Clone(addrs)
	t.mu.Unlock()
}

// has reports whether addr is still a target: a client on a connection
// to an address taken off the list moves to another one.
func (t *soTargets) has(addr string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Contains(t.addrs, addr)
}

func (t *soTargets) pick(rng *rand.Rand) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.addrs) == 0 {
		return ""
	}
	return t.addrs[rng.IntN(len(t.addrs))]
}

// soLoad runs the load goroutines until stop.
type soLoad struct {
	l       *soLedger
	tgt     *soTargets
	stopped chan struct{}
	wg      sync.WaitGroup
	probers []*soProber
	sent    atomic.Int64
}

func newSoLoad(addrs []string) *soLoad {
	ld := &soLoad{l: newSoLedger(), tgt: &soTargets{}, stopped: make(chan struct{})}
	ld.tgt.set(addrs)
	return ld
}

// stop ends the load and waits for every goroutine.
func (ld *soLoad) stop() {
	close(ld.stopped)
	ld.wg.Wait()
}

func (ld *soLoad) done() bool {
	select {
	case <-ld.stopped:
		return true
	default:
		return false
	}
}

// Far-future executions: every ledger key is planned, never fires, and its
// GET must answer exactly "OK planned <exec>".
const soFar = int64(4_000_000_000_000_000_000)

// pipeline starts a client that keeps window SETs in flight on one
// connection, at most rate a second, with keys prefix<n>.
func (ld *soLoad) pipeline(id, window, rate int) {
	ld.wg.Add(1)
	go func() {
		defer ld.wg.Done()
		rng := rand.New(rand.NewPCG(uint64(id), 7))
		prefix := fmt.Sprintf("led.c%d.", id)
		n := 0
		pace := time.NewTicker(time.Second / time.Duration(rate))
		defer pace.Stop()
		for !ld.done() {
			addr := ld.tgt.pick(rng)
			if addr == "" {
				select {
				case <-ld.stopped:
				case <-pace.C:
				}
				continue
			}
			n = ld.pipelineConn(addr, prefix, n, window, pace)
		}
	}()
}

// pipelineConn drives one connection until it fails or the load stops,
// and returns the next key number.
func (ld *soLoad) pipelineConn(addr, prefix string, n, window int, pace *time.Ticker) int {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		select {
		case <-ld.stopped:
		case <-time.After(50 * time.Millisecond): // back off a refused dial
		}
		return n
	}
	type req struct {
		rid, key string
		exec     int64
	}
	inflight := make(chan req, window)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		r := bufio.NewReader(conn)
		for q := range inflight {
			conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			line, err := r.ReadString('\n')
			if err != nil {
				conn.Close()
				ld.l.lost(1)
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == q.rid+" OK":
				ld.l.ack(q.key, q.exec)
			case strings.HasPrefix(line, q.rid+" ERROR "):
				ld.l.errorReply(strings.TrimPrefix(line, q.rid+" ERROR "))
			default:
				ld.l.oddReply("%s: %q to %s", addr, line, q.rid)
				conn.Close()
				ld.l.lost(1)
				return
			}
		}
	}()
	w := bufio.NewWriter(conn)
	defer func() {
		close(inflight)
		<-readerDone
		conn.Close()
		// What the reader did not get to has an unknown outcome.
		left := 0
		for range inflight {
			left++
		}
		ld.l.lost(left)
	}()
	for !ld.done() {
		select {
		case <-ld.stopped:
			return n
		case <-pace.C:
		case <-readerDone:
			return n
		}
		if !ld.tgt.has(addr) {
			return n
		}
		key := fmt.Sprintf("%s%d", prefix, n)
		q := req{rid: fmt.Sprintf("p%d", n), key: key, exec: soFar + int64(n)}
		n++
		select {
		case inflight <- q:
		case <-readerDone:
			return n
		}
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(w, "%s SET %s %d\n", q.rid, q.key, q.exec)
		if err := w.Flush(); err != nil {
			return n
		}
		ld.sent.Add(1)
	}
	return n
}

// soProbe is one probe: when it was sent and answered, and whether OK.
type soProbe struct {
	sent, got time.Time
	ok        bool
}

// soProber SETs a key of its shard every 10 ms, one at a time, through a
// random target; a probe with no reply within 2 s is abandoned with its
// connection.
type soProber struct {
	shard  int
	mu     sync.Mutex
	probes []soProbe
}

const soProbeEvery = 10 * time.Millisecond

// probe starts one prober per shard.
func (ld *soLoad) probe() {
	for s := range soShards {
		p := &soProber{shard: s}
		ld.probers = append(ld.probers, p)
		ld.wg.Add(1)
		go func() {
			defer ld.wg.Done()
			p.run(ld)
		}()
	}
}

func (p *soProber) run(ld *soLoad) {
	rng := rand.New(rand.NewPCG(uint64(p.shard), 11))
	tick := time.NewTicker(soProbeEvery)
	defer tick.Stop()
	var rc *rawClient
	var addr string
	defer func() {
		if rc != nil {
			rc.close()
		}
	}()
	prefix := fmt.Sprintf("probe.s%02d.", p.shard)
	for i, n := 0, 0; ; i++ {
		select {
		case <-ld.stopped:
			return
		case <-tick.C:
		}
		if rc != nil && !ld.tgt.has(addr) {
			rc.close()
			rc = nil
		}
		if rc == nil {
			if addr = ld.tgt.pick(rng); addr == "" {
				continue
			}
			if rc = dialNoT(addr); rc == nil {
				continue
			}
		}
		// A numbered prefix per probe: keyOnShard(prefix, shard, n) would
		// search from 0 every time.
		key := keyOnShard(fmt.Sprintf("%s%d.", prefix, n), p.shard, 0)
		exec := soFar + int64(n)
		n++
		sent := time.Now()
		got := rc.doWithin(fmt.Sprintf("q%d SET %s %d", i, key, exec), 2*time.Second)
		pr := soProbe{sent: sent, got: time.Now()}
		switch {
		case got == fmt.Sprintf("q%d OK", i):
			pr.ok = true
			ld.l.ack(key, exec)
		case strings.HasPrefix(got, fmt.Sprintf("q%d ERROR ", i)):
			ld.l.errorReply(strings.TrimPrefix(got, fmt.Sprintf("q%d ERROR ", i)))
		default:
			ld.l.lost(1)
			rc.close()
			rc = nil
		}
		p.mu.Lock()
		p.probes = append(p.probes, pr)
		p.mu.Unlock()
	}
}

// servedAfter is how long after at the shard was first served: the reply
// time of the first OK probe sent at or after at; ok is false if none was.
func (p *soProber) servedAfter(at time.Time) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.probes {
		if pr.ok && !pr.sent.Before(at) {
			return pr.got.Sub(at), true
		}
	}
	return 0, false
}

// lastOK is when the last OK reply came (zero if none did).
func (p *soProber) lastOK() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.probes) - 1; i >= 0; i-- {
		if p.probes[i].ok {
			return p.probes[i].got
		}
	}
	return time.Time{}
}

// longestGap is the longest time between two OK replies of the prober
// (or from its first probe to its first OK).
func (p *soProber) longestGap() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var last time.Time
	var gap time.Duration
	for _, pr := range p.probes {
		if last.IsZero() {
			last = pr.sent
		}
		if pr.ok {
			gap = max(gap, pr.got.Sub(last))
			last = pr.got
		}
	}
	return gap
}

// dueJobs starts a client that SETs a job due within the next 1.5 s under
// the "due." rule about every 50 ms; its acknowledged keys are in due.
func (ld *soLoad) dueJobs(due *soLedger) {
	ld.wg.Add(1)
	go func() {
		defer ld.wg.Done()
		rng := rand.New(rand.NewPCG(3, 5))
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		var rc *rawClient
		defer func() {
			if rc != nil {
				rc.close()
			}
		}()
		for i := 0; ; i++ {
			select {
			case <-ld.stopped:
				return
			case <-tick.C:
			}
			if rc == nil {
				addr := ld.tgt.pick(rng)
				if addr == "" {
					continue
				}
				if rc = dialNoT(addr); rc == nil {
					continue
				}
			}
			key := fmt.Sprintf("due.%d", i)
			exec := time.Now().Add(time.Duration(rng.Int64N(int64(1500 * time.Millisecond)))).UnixNano()
			got := rc.doWithin(fmt.Sprintf("d%d SET %s %d", i, key, exec), 30*time.Second)
			switch {
			case got == fmt.Sprintf("d%d OK", i):
				due.ack(key, exec)
			case strings.HasPrefix(got, fmt.Sprintf("d%d ERROR ", i)):
				due.errorReply(strings.TrimPrefix(got, fmt.Sprintf("d%d ERROR ", i)))
			default:
				due.lost(1)
				rc.close()
				rc = nil
			}
		}
	}()
}

// durations returns the median and the maximum of ds.
func durations(ds []time.Duration) (p50, maxd time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}
