package master

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tockd/tock/config"
	"github.com/tockd/tock/ipc"
)

// ringConn is a connection with its writer running, whose client end the
// test reads; the test is its reader.
func ringConn(t *testing.T) (*clientConn, *bufio.Reader, chan struct{}) {
	t.Helper()
	server, client := net.Pipe()
	cc := &clientConn{conn: server, ring: newCallRing(), quit: make(chan struct{}), room: make(chan struct{}, 1)}
	m := &Master{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.writeReplies(cc)
	}()
	t.Cleanup(func() { client.Close(); server.Close() })
	return cc, bufio.NewReader(client), done
}

func noWait() {}

// TestCallRing_OrderAcrossWrapAndGrowth: replies are written in the order
// their calls were read, however they finish (a slow worker's reply holds
// back the faster ones after it), while the ring wraps many times and
// grows from its first size.
func TestCallRing_OrderAcrossWrapAndGrowth(t *testing.T) {
	cc, client, done := ringConn(t)
	const n = 20000
	got := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			line, err := client.ReadString('\n')
			if err != nil {
				got <- err
				return
			}
			if want := strconv.Itoa(i) + " OK\n"; line != want {
				got <- fmt.Errorf("line %d: %q, want %q", i, line, want)
				return
			}
		}
		got <- nil
	}()
	rng := rand.New(rand.NewPCG(1, 2))
	var window []*call
	size := 1
	var wg sync.WaitGroup
	finishWindow := func() {
		// Finished in a random order by other goroutines, like replies
		// from two workers of which one is slower.
		rng.Shuffle(len(window), func(i, j int) { window[i], window[j] = window[j], window[i] })
		for _, c := range window {
			wg.Add(1)
			go func(c *call) {
				defer wg.Done()
				c.finish(append(c.buf[:0], c.rid+" OK\n"...))
			}(c)
		}
		window = window[:0]
	}
	for i := 0; i < n; i++ {
		c, ok := cc.ring.take(cc, cc.quit, noWait)
		if !ok {
			t.Fatal("take failed")
		}
		c.rid = strconv.Itoa(i)
		cc.ring.push()
		window = append(window, c)
		if len(window) >= size {
			finishWindow()
			size = 1 + rng.IntN(300)
		}
	}
	finishWindow()
	wg.Wait()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	cc.ring.close()
	<-done
	if l := len(*cc.ring.slots.Load()); l <= initialRing || l > maxPipelined {
		t.Fatalf("ring of %d slots after windows of up to 300 calls", l)
	}
	if cc.pendingBytes.Load() != 0 {
		t.Fatalf("pending bytes after every reply was written: %d", cc.pendingBytes.Load())
	}
}

// TestCallRing_NoAllocation: once the ring has grown, a request's call
// costs no allocation (the hot path of docs/benchmarks.md).
func TestCallRing_NoAllocation(t *testing.T) {
	cc := &clientConn{ring: newCallRing()}
	r := cc.ring
	cycle := func() {
		c, _ := r.take(cc, nil, noWait)
		r.push()
		c.set(c.buf[:0])
		if r.peek() != c || !c.ready.Load() {
			panic("peek does not return the call pushed")
		}
		r.pop()
	}
	for i := 0; i < 2*initialRing; i++ {
		cycle()
	}
	if n := testing.AllocsPerRun(1000, cycle); n != 0 {
		t.Fatalf("%v allocations per call", n)
	}
}

// TestCallRing_FullWaitsForWriter: at maxPipelined calls not yet written
// the reader stops (after routing what it read: beforeWait), and goes on
// with the slot the writer frees, reusing its call.
func TestCallRing_FullWaitsForWriter(t *testing.T) {
	cc := &clientConn{ring: newCallRing(), quit: make(chan struct{})}
	r := cc.ring
	var first *call
	for i := 0; i < maxPipelined; i++ {
		c, ok := r.take(cc, cc.quit, func() { t.Fatal("waited before the ring was full") })
		if !ok {
			t.Fatal("take failed")
		}
		if i == 0 {
			first = c
		}
		r.push()
	}
	waiting := make(chan struct{})
	taken := make(chan *call)
	go func() {
		c, _ := r.take(cc, cc.quit, func() { close(waiting) })
		taken <- c
	}()
	<-waiting
	if r.peek() != first {
		t.Fatal("the writer's next call is not the first pushed")
	}
	first.set(nil)
	r.pop()
	if c := <-taken; c != first {
		t.Fatal("the freed slot's call was not reused")
	}
	// A reader stopping while it waits gives up.
	r.push()
	stopped := make(chan bool)
	go func() {
		_, ok := r.take(cc, cc.quit, noWait)
		stopped <- ok
	}()
	close(cc.quit)
	if <-stopped {
		t.Fatal("take on a full ring returned a call after quit")
	}
}

// recvRequests reads n requests from a fake worker's end.
func recvRequests(t *testing.T, far *ipc.Link, n int) []ipc.Request {
	t.Helper()
	var out []ipc.Request
	for len(out) < n {
		f, err := far.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if f.Type != ipc.TypeRequest {
			continue
		}
		req, err := ipc.DecodeRequest(f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, req)
	}
	return out
}

// routeAll routes ps as a connection's reader does and flushes the links.
func routeAll(r *Router, ps []*pending) {
	for _, l := range r.RouteBatch(ps, nil) {
		l.Flush()
	}
}

// TestRouteBatch_SpansTwoWorkers: a read batch for shards of two workers
// reaches each in the order read, with increasing sequence numbers, and
// every request is in flight at its worker.
func TestRouteBatch_SpansTwoWorkers(t *testing.T) {
	r := NewRouter(2, 100, time.Minute)
	a, farA := fakeProc(t)
	b, farB := fakeProc(t)
	r.SetOwner([]int{0}, a)
	r.SetOwner([]int{1}, b)
	var ps []*pending
	for i := 0; i < 10; i++ {
		ps = append(ps, &pending{req: ipc.Request{Op: ipc.OpSet, Shard: i % 2, Key: "k" + strconv.Itoa(i), Execution: int64(i)}, deliver: func(ipc.Reply) {}})
	}
	gotA, gotB := make(chan []ipc.Request, 1), make(chan []ipc.Request, 1)
	go func() { gotA <- recvRequests(t, farA, 5) }()
	go func() { gotB <- recvRequests(t, farB, 5) }()
	routeAll(r, ps)
	for w, reqs := range [][]ipc.Request{<-gotA, <-gotB} {
		for i, req := range reqs {
			if want := int64(2*i + w); req.Execution != want || req.Shard != w {
				t.Fatalf("worker %d request %d: %+v, want execution %d", w, i, req, want)
			}
			if i > 0 && req.Seq <= reqs[i-1].Seq {
				t.Fatalf("worker %d: sequence %d after %d", w, req.Seq, reqs[i-1].Seq)
			}
		}
	}
	for _, p := range []*proc{a, b} {
		p.mu.Lock()
		n := len(p.inflight)
		p.mu.Unlock()
		if n != 5 {
			t.Fatalf("%d requests in flight at a worker, want 5", n)
		}
	}
}

// TestRouteBatch_GoneWorkerHoldsInOrder: a batch for a worker that died
// (or whose link broke) before the batch was sent is held on its shards,
// in the order read, and released in that order to the next owner; the
// other worker's share is sent.
func TestRouteBatch_GoneWorkerHoldsInOrder(t *testing.T) {
	for _, how := range []string{"dead", "link closed"} {
		t.Run(how, func(t *testing.T) {
			r := NewRouter(2, 100, time.Minute)
			a, _ := fakeProc(t)
			b, farB := fakeProc(t)
			r.SetOwner([]int{0}, a)
			r.SetOwner([]int{1}, b)
			if how == "dead" {
				a.mu.Lock()
				a.dead = true
				a.mu.Unlock()
			} else {
				a.link.Abort()
			}
			var ps []*pending
			for i := 0; i < 6; i++ {
				ps = append(ps, &pending{req: ipc.Request{Op: ipc.OpSet, Shard: i % 2, Execution: int64(i)}, deliver: func(ipc.Reply) {}})
			}
			gotB := make(chan []ipc.Request, 1)
			go func() { gotB <- recvRequests(t, farB, 3) }()
			routeAll(r, ps)
			if reqs := <-gotB; reqs[0].Execution != 1 || reqs[2].Execution != 5 {
				t.Fatalf("worker b got %+v", reqs)
			}
			if r.Held() != 3 {
				t.Fatalf("held %d, want 3", r.Held())
			}
			c, farC := fakeProc(t)
			gotC := make(chan []ipc.Request, 1)
			go func() { gotC <- recvRequests(t, farC, 3) }()
			r.SetOwner([]int{0}, c)
			for i, req := range <-gotC {
				if req.Execution != int64(2*i) {
					t.Fatalf("released request %d: %+v", i, req)
				}
			}
		})
	}
}

// TestDeliverReplies_WorkerDiesMidBatch: of a batch in flight at a worker
// that dies after answering part of it, the answered requests are
// delivered once, the others are retried at the next owner marked
// Retried and delivered once, and a late duplicate answer is dropped.
func TestDeliverReplies_WorkerDiesMidBatch(t *testing.T) {
	r := NewRouter(1, 100, time.Minute)
	m := &Master{router: r, cfg: config.Config{Cluster: config.Cluster{Shards: 1}}}
	a, farA := fakeProc(t)
	r.SetOwner([]int{0}, a)
	var mu sync.Mutex
	delivered := map[int]int{}
	var ps []*pending
	for i := 0; i < 4; i++ {
		ps = append(ps, &pending{req: ipc.Request{Op: ipc.OpSet, Key: "k" + strconv.Itoa(i), Execution: int64(i)},
			deliver: func(ipc.Reply) { mu.Lock(); delivered[i]++; mu.Unlock() }})
	}
	gotA := make(chan []ipc.Request, 1)
	go func() { gotA <- recvRequests(t, farA, 4) }()
	routeAll(r, ps)
	sent := <-gotA
	// a answers the first two, then dies.
	var rb replyBatch
	for _, req := range sent[:2] {
		rb.replies = append(rb.replies, ipc.Reply{Seq: req.Seq, Kind: ipc.KindOK})
	}
	if err := m.deliverReplies(a, &rb); err != nil {
		t.Fatal(err)
	}
	r.WorkerGone(a)
	// A late answer of the dead worker for a retried request is dropped.
	rb.replies = append(rb.replies, ipc.Reply{Seq: sent[2].Seq, Kind: ipc.KindOK})
	if err := m.deliverReplies(a, &rb); err != nil {
		t.Fatal(err)
	}
	b, farB := fakeProc(t)
	gotB := make(chan []ipc.Request, 1)
	go func() { gotB <- recvRequests(t, farB, 2) }()
	r.SetOwner([]int{0}, b)
	retried := <-gotB
	for i, req := range retried {
		if req.Execution != int64(2+i) || !req.Retried {
			t.Fatalf("retried request %d: %+v", i, req)
		}
		rb.replies = append(rb.replies, ipc.Reply{Seq: req.Seq, Kind: ipc.KindOK})
	}
	if err := m.deliverReplies(b, &rb); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < 4; i++ {
		if delivered[i] != 1 {
			t.Fatalf("request %d delivered %d times: %v", i, delivered[i], delivered)
		}
	}
}

// TestDeliverReplies_WakesEachConnectionOnce: a batch of replies for calls
// of one connection finishes them all and leaves one wake-up for its
// writer.
func TestDeliverReplies_WakesEachConnectionOnce(t *testing.T) {
	r := NewRouter(1, 100, time.Minute)
	m := &Master{router: r, cfg: config.Config{Cluster: config.Cluster{Shards: 1}}}
	a, farA := fakeProc(t)
	r.SetOwner([]int{0}, a)
	cc := &clientConn{ring: newCallRing()}
	var ps []*pending
	var calls []*call
	for i := 0; i < 8; i++ {
		c, _ := cc.ring.take(cc, nil, noWait)
		cc.ring.push()
		c.rid = strconv.Itoa(i)
		c.job.req, c.job.to = ipc.Request{Op: ipc.OpSet, Key: c.rid}, c
		ps, calls = append(ps, &c.job), append(calls, c)
	}
	got := make(chan []ipc.Request, 1)
	go func() { got <- recvRequests(t, farA, 8) }()
	routeAll(r, ps)
	var rb replyBatch
	for _, req := range <-got {
		rb.replies = append(rb.replies, ipc.Reply{Seq: req.Seq, Kind: ipc.KindOK})
	}
	if err := m.deliverReplies(a, &rb); err != nil {
		t.Fatal(err)
	}
	for i, c := range calls {
		if !c.ready.Load() || string(c.out) != strconv.Itoa(i)+" OK\n" {
			t.Fatalf("call %d: ready=%v out=%q", i, c.ready.Load(), c.out)
		}
	}
	if len(cc.ring.wake) != 1 {
		t.Fatalf("%d wake-ups pending, want 1", len(cc.ring.wake))
	}
}
