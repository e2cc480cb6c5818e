package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tockd/tock/protocol"
)

func serveEcho(t *testing.T) string {
	t.Helper()
	addr, stop, err := ServeEcho(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return addr
}

func TestRunAgainstEcho(t *testing.T) {
	addr := serveEcho(t)
	for _, tc := range []struct {
		op                string
		clients, pipeline int
		requests          int
	}{
		{"set", 4, 16, 20_000},
		{"get", 3, 1, 2_000},
		{"mixed", 1, 64, 10_001},
		{"set", 16, 64, 7}, // fewer requests than slots
	} {
		var prog bytes.Buffer
		res, err := Run(context.Background(), Config{Addr: addr, Clients: tc.clients, Pipeline: tc.pipeline,
			Requests: tc.requests, Op: tc.op, Progress: &prog})
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if res.Requests != int64(tc.requests) || res.Errors != 0 || res.NotFound != 0 {
			t.Fatalf("%+v: %+v", tc, res)
		}
		if res.Hist.Count() != uint64(tc.requests) || res.Throughput <= 0 || res.Duration <= 0 {
			t.Fatalf("%+v: count %d throughput %f duration %s", tc, res.Hist.Count(), res.Throughput, res.Duration)
		}
		if !(res.P50 > 0 && res.P50 <= res.P90 && res.P90 <= res.P99 && res.P99 <= res.P999 && res.P999 <= res.Max) {
			t.Fatalf("%+v: percentiles out of order: %s", tc, res)
		}
		if !strings.Contains(prog.String(), "100%") || !strings.HasSuffix(prog.String(), "\n") {
			t.Fatalf("progress %q", prog.String())
		}
		s := res.String()
		for _, want := range []string{"requests    " + strconv.Itoa(tc.requests), "errors 0", "req/s", "p99.9", "op " + tc.op} {
			if !strings.Contains(s, want) {
				t.Fatalf("String() lacks %q:\n%s", want, s)
			}
		}
	}
}

// lineServer answers each line with reply(line) (no newline), in order.
func lineServer(t *testing.T, reply func(conn int, line string) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var n atomic.Int32
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			id := int(n.Add(1)) - 1
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				r, w := bufio.NewReader(c), bufio.NewWriter(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					out := reply(id, strings.TrimSuffix(line, "\n"))
					if out == "\x00close" {
						w.Flush()
						return
					}
					if out != "" {
						w.WriteString(out + "\n")
					}
					if r.Buffered() == 0 && w.Flush() != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestRunCountsErrors(t *testing.T) {
	addr := lineServer(t, func(_ int, line string) string {
		f := strings.Fields(line)
		idx, _ := strconv.Atoi(f[0])
		switch {
		case f[1] == "GET":
			return f[0] + " ERROR not found"
		case idx%10 == 0:
			return f[0] + " ERROR disk full"
		case idx%10 == 1:
			return "999999 OK" // wrong request id
		case idx%10 == 2:
			return f[0] + " OKAY" // not a reply
		}
		return f[0] + " OK"
	})
	res, err := Run(context.Background(), Config{Addr: addr, Clients: 2, Pipeline: 8, Requests: 1000, Op: "mixed"})
	if err != nil {
		t.Fatal(err)
	}
	// Request n is a GET when mix64(n) is odd; of the SETs, n%10 in {0,1,2}
	// are errors.
	var gets, errs int64
	for i := int64(0); i < 1000; i++ {
		if mix64(uint64(i))&1 == 1 {
			gets++
		} else if i%10 <= 2 {
			errs++
		}
	}
	if gets < 400 || gets > 600 {
		t.Fatalf("mixed gave %d GETs of 1000", gets)
	}
	if res.Requests != 1000 || res.NotFound != gets || res.Errors != errs {
		t.Fatalf("requests %d not found %d errors %d, want 1000 %d %d", res.Requests, res.NotFound, res.Errors, gets, errs)
	}
	if len(res.ErrorSamples) == 0 || len(res.ErrorSamples) > maxSamples {
		t.Fatalf("samples %q", res.ErrorSamples)
	}
	if !strings.Contains(res.String(), "ERROR disk full") {
		t.Fatalf("no error sample in:\n%s", res)
	}
}

// TestRunWindow checks that no connection ever has more than Pipeline
// requests unanswered: the server holds replies back and counts how many
// requests it has received but not yet answered.
func TestRunWindow(t *testing.T) {
	for _, p := range []int{1, 5} {
		var mu sync.Mutex
		held := map[int]int{}
		maxHeld := 0
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					lines := make(chan string, 1024)
					go func() {
						defer close(lines)
						r := bufio.NewReader(c)
						for {
							l, err := r.ReadString('\n')
							if err != nil {
								return
							}
							lines <- l
						}
					}()
					for l := range lines {
						batch := []string{l}
						time.Sleep(200 * time.Microsecond)
						for len(lines) > 0 {
							batch = append(batch, <-lines)
						}
						mu.Lock()
						if len(batch) > maxHeld {
							maxHeld = len(batch)
						}
						held[len(batch)]++
						mu.Unlock()
						var out []byte
						for _, l := range batch {
							out = append(append(out, strings.Fields(l)[0]...), " OK\n"...)
						}
						if _, err := c.Write(out); err != nil {
							return
						}
					}
				}()
			}
		}()
		res, err := Run(context.Background(), Config{Addr: ln.Addr().String(), Clients: 2, Pipeline: p, Requests: 2000})
		ln.Close()
		if err != nil || res.Errors != 0 || res.Requests != 2000 {
			t.Fatalf("pipeline %d: %v %+v", p, err, res)
		}
		mu.Lock()
		if maxHeld > p || maxHeld < 1 {
			t.Fatalf("pipeline %d: server saw %d requests unanswered at once (%v)", p, maxHeld, held)
		}
		if p > 1 && maxHeld < 2 {
			t.Fatalf("pipeline %d: never more than one request in flight (%v)", p, held)
		}
		mu.Unlock()
	}
}

func TestRunCannotConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = Run(context.Background(), Config{Addr: addr, Requests: 10})
	if !errors.Is(err, ErrConnect) {
		t.Fatalf("err %v, want ErrConnect", err)
	}
}

func TestRunBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Addr: "x:1", Op: "del"},
		{Addr: "x:1", Clients: -1},
		{Addr: "x:1", Prefix: "a b"},
		{Addr: "x:1", Protocol: "http"},
	} {
		if _, err := Run(context.Background(), cfg); err == nil || errors.Is(err, ErrConnect) {
			t.Errorf("%+v: err %v, want a config error", cfg, err)
		}
	}
}

func TestRunStopsOnCancelAndStall(t *testing.T) {
	silent := lineServer(t, func(int, string) string { return "" })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	res, err := Run(ctx, Config{Addr: silent, Clients: 2, Pipeline: 4, Requests: 100})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(t0) > 5*time.Second {
		t.Fatalf("cancel: err %v after %s", err, time.Since(t0))
	}
	if res.Requests != 8 || res.Errors != 8 {
		t.Fatalf("cancel: %d requests %d errors, want the 8 in flight lost", res.Requests, res.Errors)
	}
	t0 = time.Now()
	_, err = Run(context.Background(), Config{Addr: silent, Clients: 2, Pipeline: 4, Requests: 100, Timeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "no reply") || time.Since(t0) > 5*time.Second {
		t.Fatalf("stall: err %v after %s", err, time.Since(t0))
	}
}

// TestRunSurvivesBrokenConnection: one connection closes after 50 requests;
// the others finish the run, and its unanswered requests are errors.
func TestRunSurvivesBrokenConnection(t *testing.T) {
	var seen atomic.Int32
	addr := lineServer(t, func(conn int, line string) string {
		if conn == 0 && seen.Add(1) > 50 {
			return "\x00close"
		}
		return strings.Fields(line)[0] + " OK"
	})
	res, err := Run(context.Background(), Config{Addr: addr, Clients: 4, Pipeline: 8, Requests: 5000})
	if err == nil || !strings.Contains(err.Error(), "1 of 4 connections broke") {
		t.Fatalf("err %v", err)
	}
	if res.Requests != 5000 || res.Errors < 1 || res.Errors > 8 {
		t.Fatalf("requests %d errors %d, want 5000 and 1..8 lost", res.Requests, res.Errors)
	}
}

// TestLineRequests checks the request lines against the protocol package's
// parser and formatter.
func TestLineRequests(t *testing.T) {
	c := &lineCodec{prefix: "bench."}
	line := c.appendRequest(nil, 42, kindSet, 7)
	cmd, perr := protocol.Parse(bytes.TrimSuffix(line, []byte("\n")))
	if perr != nil || cmd.Op != protocol.OpSet || cmd.RID != "42" || cmd.ID != "bench.7" || cmd.Execution != farFuture+7 {
		t.Fatalf("%q parsed as %+v %v", line, cmd, perr)
	}
	if got := protocol.FormatCommand(cmd) + "\n"; got != string(line) {
		t.Fatalf("line %q, FormatCommand %q", line, got)
	}
	if ts := time.Unix(0, farFuture).UTC(); ts.Year() != 2100 {
		t.Fatalf("farFuture is %s", ts)
	}
	line = c.appendRequest(nil, 3, kindGet, 9)
	if string(line) != "3 GET bench.9\n" {
		t.Fatalf("GET line %q", line)
	}
}

func TestRESPCodec(t *testing.T) {
	c := newRESPCodec("b.")
	got := string(c.appendRequest(nil, 1, kindSet, 5))
	want := "*4\r\n$4\r\nZADD\r\n$6\r\nb.jobs\r\n$19\r\n4102444800000000005\r\n$3\r\nb.5\r\n"
	if got != want {
		t.Fatalf("ZADD %q, want %q", got, want)
	}
	if got := string(c.appendRequest(nil, 1, kindGet, 5)); got != "*3\r\n$6\r\nZSCORE\r\n$6\r\nb.jobs\r\n$3\r\nb.5\r\n" {
		t.Fatalf("ZSCORE %q", got)
	}
	r := bufio.NewReader(strings.NewReader(":1\r\n$-1\r\n$5\r\n1e+18\r\n-ERR wrong\r\n$-1\r\n"))
	for i, want := range []struct {
		k kind
		o outcome
	}{{kindSet, outOK}, {kindGet, outNotFound}, {kindGet, outOK}, {kindSet, outError}, {kindSet, outError}} {
		o, line, err := c.readReply(r, 0, want.k)
		if err != nil || o != want.o {
			t.Fatalf("reply %d: %v %q %v, want %v", i, o, line, err, want.o)
		}
	}
}

func TestEchoServer(t *testing.T) {
	addr, stop, err := ServeEcho(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("a1 SET x 1\r\nb2 GET y\n\nc3\n" + strings.Repeat("z", 70<<10) + "\nd4 STAT\n"))
	r := bufio.NewReader(c)
	for _, want := range []string{"a1 OK", "b2 OK", "ERROR empty line", "c3 OK", "ERROR line too long", "d4 OK"} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		l, err := r.ReadString('\n')
		if err != nil || l != want+"\n" {
			t.Fatalf("got %q %v, want %q", l, err, want)
		}
	}
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("stop did not return with a connection open")
	}
	stop() // idempotent
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("connection still open after stop")
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr, _, err = ServeEcho(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("server still accepting after ctx cancel")
		}
		time.Sleep(10 * time.Millisecond) // polling for the listener to close
	}
}
