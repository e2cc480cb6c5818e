package e2e

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// load is steady client traffic on persistent connections while a test
// disturbs the cluster. Each connection alternates SET and GET of its own
// keys and remembers every acknowledged SET.
type load struct {
	t        *testing.T
	addr     string
	stopCh   chan struct{}
	wg       sync.WaitGroup
	requests atomic.Int64
	mu       sync.Mutex
	errors   []string
	closed   int
	acked    []string
}

const loadFar = 4102444800000000000

func startLoad(t *testing.T, addr string, conns int) *load {
	l := &load{t: t, addr: addr, stopCh: make(chan struct{})}
	for n := 0; n < conns; n++ {
		c := dialNoT(addr)
		if c == nil {
			t.Fatalf("load: dial %s failed", addr)
		}
		l.wg.Add(1)
		go l.run(n, c)
	}
	return l
}

func (l *load) run(n int, c *rawClient) {
	defer l.wg.Done()
	defer c.close()
	var acked []string
	defer func() {
		l.mu.Lock()
		l.acked = append(l.acked, acked...)
		l.mu.Unlock()
	}()
	for i := 0; ; i++ {
		select {
		case <-l.stopCh:
			return
		default:
		}
		key := fmt.Sprintf("load.%d.%d", n, i)
		got := c.do(fmt.Sprintf("s%d SET %s %d", i, key, loadFar+int64(i)))
		l.requests.Add(1)
		if !l.check(got, fmt.Sprintf("s%d OK", i)) {
			return
		}
		acked = append(acked, key)
		got = c.do(fmt.Sprintf("g%d GET %s", i, key))
		l.requests.Add(1)
		if !l.check(got, fmt.Sprintf("g%d OK planned %d", i, loadFar+int64(i))) {
			return
		}
	}
}

// check records a wrong reply; false means the connection is gone.
func (l *load) check(got, want string) bool {
	if got == want {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if strings.HasPrefix(got, "io error") {
		l.closed++
		return false
	}
	if len(l.errors) < 20 {
		l.errors = append(l.errors, fmt.Sprintf("got %q, want %q", got, want))
	}
	return true
}

// stop ends the load and fails the test on any error or closed connection;
// it then checks that every acknowledged SET is readable.
func (l *load) stop() {
	l.t.Helper()
	close(l.stopCh)
	l.wg.Wait()
	if l.closed > 0 || len(l.errors) > 0 {
		l.t.Fatalf("load saw %d closed connections and errors %q (of %d requests)", l.closed, l.errors, l.requests.Load())
	}
	cl := dial(l.t, l.addr)
	body, end := cl.list("q", "q QUERY load.")
	if end != "q OK" {
		l.t.Fatalf("QUERY after load: %q", end)
	}
	have := map[string]bool{}
	for _, line := range body {
		if f := strings.Fields(line); len(f) == 4 {
			have[f[1]] = true
		}
	}
	for _, k := range l.acked {
		if !have[k] {
			l.t.Fatalf("acknowledged SET of %s lost (%d acked, %d present)", k, len(l.acked), len(have))
		}
	}
	l.t.Logf("load: %d requests, %d acknowledged SETs all present", l.requests.Load(), len(l.acked))
}

// waitRequests waits until the load has made n more requests.
func (l *load) waitRequests(n int64) {
	l.t.Helper()
	target := l.requests.Load() + n
	waitFor(l.t, 30e9, "load progress", func() bool { return l.requests.Load() >= target })
}
