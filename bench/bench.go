// Package bench is tock's load generator: it drives a line-protocol server
// (tock, or the echo server of this package for the ceiling) or redis over
// several pipelined connections and measures throughput and per-request
// latency, to compare with peers measured in the same run.
//
// Each connection has a writer goroutine and a reader goroutine. The writer
// keeps at most Config.Pipeline requests in flight: it claims as many
// request numbers as there are free slots, writes them in one system call
// and hands the batch (first number, count, send time) to the reader, which
// reads the replies in order, checks them and records each latency (send →
// reply) into a fixed-size histogram. The reader frees slots only when it
// has used up the replies already received, so the writer sends in batches
// instead of one system call per reply.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tockd/tock/protocol"
)

// Config is one load run.
type Config struct {
	// Addr is the server's TCP address, host:port.
	Addr string
	// Clients is the number of connections (0 = 16).
	Clients int
	// Pipeline is the number of requests in flight per connection (0 = 64;
	// 1 = no pipelining).
	Pipeline int
	// Requests is the total number of requests over all connections
	// (0 = 1,000,000).
	Requests int
	// Op is "set" (the default), "get" or "mixed" (50/50, chosen per
	// request by a hash of its number). SET plans jobs in 2100, so nothing
	// fires; GET accepts "not found" as a valid reply.
	Op string
	// KeySpace is the number of distinct job ids: request n uses key
	// n mod KeySpace (0 = Requests, every request its own job).
	KeySpace int
	// Prefix starts every job id (default "bench."); it must be a bare
	// token of the line protocol.
	Prefix string
	// Progress, when set, receives a progress line about five times a
	// second (carriage-return updated) and a final newline.
	Progress io.Writer
	// Protocol is "line" (the default: tock's line protocol), "resp"
	// (redis: ZADD and ZSCORE on one sorted set, see respCodec) or
	// "beanstalk" (beanstalkd: a delayed put, SET only, see beanstalkCodec).
	Protocol string
	// Timeout bounds connecting and any wait for a reply: a run in which no
	// connection gets a reply for this long stops with an error (0 = 30s).
	Timeout time.Duration
}

// ErrConnect is wrapped by the error of Run when a connection cannot be
// opened.
var ErrConnect = errors.New("cannot connect")

// Result is the outcome of a run.
type Result struct {
	Op       string
	Protocol string
	Clients  int
	Pipeline int
	// Requests is the number of requests done: answered (errors included)
	// or lost with their connection (counted in Errors too).
	Requests int64
	// Errors counts error replies (any ERROR other than a GET's "not
	// found"), replies out of order, and requests whose connection broke
	// before they were answered.
	Errors int64
	// NotFound counts GETs answered "not found" (not errors).
	NotFound int64
	// Duration is the wall time from the first request to the last reply.
	Duration time.Duration
	// Throughput is Requests per second of Duration.
	Throughput float64
	// Latency percentiles and maximum, send to reply.
	P50, P90, P99, P999, Max time.Duration
	// ErrorSamples holds up to 8 distinct error replies or connection
	// errors, for diagnosis.
	ErrorSamples []string
	// Hist holds every latency, for merging runs.
	Hist *Histogram
}

// String is a readable multi-line summary.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "op %s, %d connections x %d in flight", r.Op, r.Clients, r.Pipeline)
	if r.Protocol != "" && r.Protocol != "line" {
		fmt.Fprintf(&b, " (%s)", r.Protocol)
	}
	b.WriteByte('\n')
	fmt.Fprintf(&b, "requests    %d in %s", r.Requests, r.Duration.Round(time.Millisecond))
	fmt.Fprintf(&b, " (errors %d", r.Errors)
	if r.NotFound > 0 {
		fmt.Fprintf(&b, ", not found %d", r.NotFound)
	}
	b.WriteString(")\n")
	fmt.Fprintf(&b, "throughput  %s req/s\n", groupDigits(int64(r.Throughput+0.5)))
	fmt.Fprintf(&b, "latency     p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		fmtDur(r.P50), fmtDur(r.P90), fmtDur(r.P99), fmtDur(r.P999), fmtDur(r.Max))
	for _, s := range r.ErrorSamples {
		fmt.Fprintf(&b, "error       %s\n", s)
	}
	return b.String()
}

func fmtDur(d time.Duration) string {
	switch {
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.2fµs", float64(d)/1e3)
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	var b []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, s[i])
	}
	return string(b)
}

func (cfg Config) normalize() (Config, error) {
	if cfg.Addr == "" {
		return cfg, errors.New("no address")
	}
	if cfg.Clients == 0 {
		cfg.Clients = 16
	}
	if cfg.Pipeline == 0 {
		cfg.Pipeline = 64
	}
	if cfg.Requests == 0 {
		cfg.Requests = 1_000_000
	}
	if cfg.Clients < 0 || cfg.Pipeline < 0 || cfg.Requests < 0 || cfg.KeySpace < 0 {
		return cfg, errors.New("clients, pipeline, requests and key space must not be negative")
	}
	if cfg.KeySpace == 0 {
		cfg.KeySpace = cfg.Requests
	}
	switch cfg.Op {
	case "":
		cfg.Op = "set"
	case "set", "get", "mixed":
	default:
		return cfg, fmt.Errorf("unknown op %q (want set, get or mixed)", cfg.Op)
	}
	switch cfg.Protocol {
	case "":
		cfg.Protocol = "line"
	case "line", "resp":
	case "beanstalk":
		if cfg.Op != "set" {
			return cfg, fmt.Errorf("op %q: the beanstalk protocol supports only set", cfg.Op)
		}
	default:
		return cfg, fmt.Errorf("unknown protocol %q (want line, resp or beanstalk)", cfg.Protocol)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "bench."
	}
	id := cfg.Prefix + "0"
	if protocol.FormatCommand(protocol.Command{RID: "0", Op: protocol.OpGet, ID: id}) != "0 GET "+id {
		return cfg, fmt.Errorf("prefix %q is not a bare token", cfg.Prefix)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	return cfg, nil
}

// kindOf returns the instruction of request idx.
func (cfg *Config) kindOf(idx int64) kind {
	switch cfg.Op {
	case "get":
		return kindGet
	case "mixed":
		if mix64(uint64(idx))&1 == 1 {
			return kindGet
		}
	}
	return kindSet
}

// mix64 is splitmix64's finaliser.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// runState is shared by the connections of one run.
type runState struct {
	cfg   Config
	next  atomic.Int64 // next request number to claim
	total int64

	mu      sync.Mutex
	samples []string
	nsample atomic.Int32
}

// claim reserves up to n request numbers; it returns the first and the
// count, 0 when every request has been claimed.
func (s *runState) claim(n int64) (int64, int64) {
	start := s.next.Add(n) - n
	if start >= s.total {
		return 0, 0
	}
	return start, min(n, s.total-start)
}

const maxSamples = 8

func (s *runState) sample(msg string) {
	if s.nsample.Load() >= maxSamples {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.samples {
		if m == msg {
			return
		}
	}
	if len(s.samples) < maxSamples {
		s.samples = append(s.samples, msg)
		s.nsample.Store(int32(len(s.samples)))
	}
}

// batch is requests [start, start+n) written at once at time sent.
type batch struct {
	start, n int64
	sent     time.Time
}

// connRun is one connection's writer and reader.
type connRun struct {
	s     *runState
	conn  net.Conn
	codec codec

	inflight    chan batch    // writer → reader, in send order
	outstanding atomic.Int64  // requests written and not yet answered
	waiting     atomic.Bool   // the writer waits for free slots
	wake        chan struct{} // cap 1: the reader freed slots
	stop        chan struct{} // closed when the connection failed
	stopOnce    sync.Once
	err         error // first I/O error, set before stop is closed

	// Written by the reader only; replies (answered + lost) is read by the
	// progress ticker.
	replies  atomic.Int64
	errors   int64
	notFound int64
	lost     int64
	hist     Histogram
	_        [64]byte // keep the next connection's counters off this cache line
}

func (c *connRun) fail(err error) {
	c.stopOnce.Do(func() {
		c.err = err
		close(c.stop)
		c.conn.Close()
	})
}

func (c *connRun) writer() {
	defer close(c.inflight)
	p := int64(c.s.cfg.Pipeline)
	buf := make([]byte, 0, 64*int(min(p, 1024)))
	for {
		select {
		case <-c.stop:
			return // leave the rest to the healthy connections
		default:
		}
		free := p - c.outstanding.Load()
		if free <= 0 {
			c.waiting.Store(true)
			if p-c.outstanding.Load() > 0 {
				c.waiting.Store(false)
				continue
			}
			select {
			case <-c.wake:
			case <-c.stop:
				return
			}
			continue
		}
		start, n := c.s.claim(free)
		if n == 0 {
			return
		}
		c.outstanding.Add(n)
		sent := time.Now()
		buf = buf[:0]
		for idx := start; idx < start+n; idx++ {
			k := c.s.cfg.kindOf(idx)
			buf = c.codec.appendRequest(buf, idx, k, idx%int64(c.s.cfg.KeySpace))
		}
		// The reader needs the batch before it can read its replies; the
		// channel holds Pipeline batches of at least one request, so this
		// never blocks.
		c.inflight <- batch{start: start, n: n, sent: sent}
		if _, err := c.conn.Write(buf); err != nil {
			c.fail(fmt.Errorf("write: %w", err))
			return
		}
	}
}

// release frees n slots and wakes the writer if it waits for them.
func (c *connRun) release(n int64) {
	c.outstanding.Add(-n)
	if c.waiting.CompareAndSwap(true, false) {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// lineBuffered reports whether r holds a whole line, i.e. whether the next
// read can be served without a system call.
func lineBuffered(r *bufio.Reader) bool {
	n := r.Buffered()
	if n == 0 {
		return false
	}
	b, _ := r.Peek(n)
	return bytes.IndexByte(b, '\n') >= 0
}

func (c *connRun) reader() {
	r := bufio.NewReaderSize(c.conn, 64<<10)
	var pending int64 // answered, slots not yet freed
	broken := false
	for {
		var b batch
		var ok bool
		select {
		case b, ok = <-c.inflight:
		default:
			if pending > 0 {
				c.release(pending)
				pending = 0
			}
			b, ok = <-c.inflight
		}
		if !ok {
			return
		}
		if broken {
			c.lost += b.n
			c.replies.Add(b.n)
			c.release(b.n)
			continue
		}
		for i := int64(0); i < b.n; i++ {
			if pending > 0 && !lineBuffered(r) {
				c.release(pending)
				pending = 0
			}
			idx := b.start + i
			o, line, err := c.codec.readReply(r, idx, c.s.cfg.kindOf(idx))
			if err != nil {
				if !errors.Is(err, errLongReply) {
					c.fail(fmt.Errorf("read: %w", err))
					c.s.sample(fmt.Sprintf("connection: %v", c.err))
					broken = true
					c.lost += b.n - i
					c.replies.Add(b.n - i)
					c.release(pending + b.n - i)
					pending = 0
					break
				}
				o, line = outError, []byte(err.Error())
			}
			c.hist.Record(time.Since(b.sent))
			switch o {
			case outNotFound:
				c.notFound++
			case outError:
				c.errors++
				c.s.sample(fmt.Sprintf("request %d: %q", idx, line))
			}
			pending++
			c.replies.Add(1)
		}
	}
}

// Run opens cfg.Clients connections to cfg.Addr, sends cfg.Requests requests
// over them and returns the measurements. It stops by itself when every
// request is answered; cancelling ctx stops it early, with the partial
// result and ctx's error. An error wrapping ErrConnect means a connection
// could not be opened; a connection that breaks during the run makes the
// run go on over the others, its unanswered requests counted as errors, and
// Run returns the result together with the error.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return Result{}, err
	}
	s := &runState{cfg: cfg, total: int64(cfg.Requests)}
	conns := make([]*connRun, cfg.Clients)
	d := net.Dialer{Timeout: cfg.Timeout}
	for i := range conns {
		nc, err := d.DialContext(ctx, "tcp", cfg.Addr)
		if err != nil {
			for _, c := range conns[:i] {
				c.conn.Close()
			}
			return Result{}, fmt.Errorf("%w to %s: %v", ErrConnect, cfg.Addr, err)
		}
		var cd codec = &lineCodec{prefix: cfg.Prefix}
		switch cfg.Protocol {
		case "resp":
			cd = newRESPCodec(cfg.Prefix)
		case "beanstalk":
			cd = &beanstalkCodec{prefix: cfg.Prefix}
		}
		conns[i] = &connRun{s: s, conn: nc, codec: cd,
			inflight: make(chan batch, cfg.Pipeline), wake: make(chan struct{}, 1), stop: make(chan struct{})}
	}

	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(2)
		go func() { defer wg.Done(); c.writer() }()
		go func() { defer wg.Done(); c.reader() }()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()

	answered := func() int64 {
		var n int64
		for _, c := range conns {
			n += c.replies.Load()
		}
		return n
	}
	var runErr error
	tick := time.NewTicker(200 * time.Millisecond)
	lastN, lastProgress := int64(0), time.Now()
	prog := progress{w: cfg.Progress, total: s.total, start: start}
wait:
	for {
		select {
		case <-finished:
			break wait
		case <-ctx.Done():
			runErr = ctx.Err()
			for _, c := range conns {
				c.fail(runErr)
			}
			<-finished
			break wait
		case now := <-tick.C:
			n := answered()
			prog.show(n, now)
			if n != lastN {
				lastN, lastProgress = n, now
			} else if now.Sub(lastProgress) > cfg.Timeout {
				runErr = fmt.Errorf("no reply for %s (%d of %d requests answered)", cfg.Timeout, n, s.total)
				for _, c := range conns {
					c.fail(runErr)
				}
				<-finished
				break wait
			}
		}
	}
	tick.Stop()
	elapsed := time.Since(start)
	prog.show(answered(), time.Now())
	prog.done()

	res := Result{Op: cfg.Op, Protocol: cfg.Protocol, Clients: cfg.Clients, Pipeline: cfg.Pipeline,
		Duration: elapsed, Hist: &Histogram{}}
	var connErrs []error
	for _, c := range conns {
		c.conn.Close()
		res.Requests += c.replies.Load()
		res.Errors += c.errors + c.lost
		res.NotFound += c.notFound
		res.Hist.Merge(&c.hist)
		if c.err != nil && runErr == nil {
			connErrs = append(connErrs, c.err)
		}
	}
	if runErr == nil && len(connErrs) > 0 {
		runErr = fmt.Errorf("%d of %d connections broke, first: %w", len(connErrs), len(conns), connErrs[0])
	}
	res.fill()
	res.ErrorSamples = s.samples
	return res, runErr
}

// fill computes Throughput and the percentiles from Requests, Duration and
// Hist.
func (r *Result) fill() {
	if r.Duration > 0 {
		r.Throughput = float64(r.Requests) / r.Duration.Seconds()
	}
	h := r.Hist
	r.P50, r.P90, r.P99, r.P999, r.Max = h.Quantile(0.50), h.Quantile(0.90), h.Quantile(0.99), h.Quantile(0.999), h.Max()
}

// Merge returns the sum of several runs of the same shape: the counts and
// the histograms added, the durations added (so Throughput is the mean over
// the runs' busy time).
func Merge(rs ...Result) Result {
	var out Result
	out.Hist = &Histogram{}
	for i, r := range rs {
		if i == 0 {
			out.Op, out.Protocol, out.Clients, out.Pipeline = r.Op, r.Protocol, r.Clients, r.Pipeline
		}
		out.Requests += r.Requests
		out.Errors += r.Errors
		out.NotFound += r.NotFound
		out.Duration += r.Duration
		out.Hist.Merge(r.Hist)
		for _, s := range r.ErrorSamples {
			if len(out.ErrorSamples) < maxSamples {
				out.ErrorSamples = append(out.ErrorSamples, s)
			}
		}
	}
	out.fill()
	return out
}

// progress draws `[#####.....]  52%  520000/1000000  812,000 req/s` on one
// line.
type progress struct {
	w     io.Writer
	total int64
	start time.Time
	drawn bool
}

func (p *progress) show(n int64, now time.Time) {
	if p.w == nil {
		return
	}
	const width = 30
	frac := 1.0
	if p.total > 0 {
		frac = float64(n) / float64(p.total)
	}
	fill := int(frac * width)
	rate := 0.0
	if el := now.Sub(p.start).Seconds(); el > 0 {
		rate = float64(n) / el
	}
	fmt.Fprintf(p.w, "\r[%s%s] %3.0f%%  %d/%d  %s req/s ", strings.Repeat("#", fill), strings.Repeat(".", width-fill),
		frac*100, n, p.total, groupDigits(int64(rate)))
	p.drawn = true
}

func (p *progress) done() {
	if p.w != nil && p.drawn {
		fmt.Fprintln(p.w)
	}
}
