package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/tockd/tock/master"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// perfConfig is a production-like cluster: default framerate (512), 16
// shards, fsync = always, info logging.
func perfConfig(dir string, database ...string) string {
	return fmt.Sprintf(`[log]
level = "info"
[controller]
listen = "127.0.0.1:0"
[database]
data_dir = %q
%s
[cluster]
workers = 2
shards = 16
worker_check_interval = "200ms"
worker_boot_timeout = "60s"
worker_shutdown_timeout = "10s"
[http]
listen = ""
`, filepath.Join(dir, "data"), strings.Join(database, "\n"))
}

// readStats reads the stats tree over the control socket.
func readStats(tb testing.TB, dir string) master.Stats {
	tb.Helper()
	sock := filepath.Join(dir, "data", "control.sock")
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	resp, err := hc.Get("http://tock/stats")
	if err != nil {
		tb.Fatalf("GET /stats: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var st master.Stats
	if err := json.Unmarshal(b, &st); err != nil {
		tb.Fatalf("stats: %v: %s", err, b)
	}
	return st
}

// pipelineSET SETs ids with executions exec(i) over conns connections, 256
// in flight each, and fails on any non-OK reply.
func pipelineSET(tb testing.TB, addr string, n, conns int, id func(int) string, exec func(int) int64) {
	tb.Helper()
	var wg sync.WaitGroup
	errs := make(chan string, conns)
	per := (n + conns - 1) / conns
	for c := 0; c < conns; c++ {
		lo, hi := c*per, min((c+1)*per, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Minute))
			go func() {
				var b []byte
				for i := lo; i < hi; i++ {
					b = fmt.Appendf(b, "r SET %s %d\n", id(i), exec(i))
					if len(b) > 32<<10 || i == hi-1 {
						if _, err := conn.Write(b); err != nil {
							return
						}
						b = b[:0]
					}
				}
			}()
			r := newLineReader(conn)
			for i := lo; i < hi; i++ {
				if l, err := r.ReadString('\n'); err != nil || l != "r OK\n" {
					errs <- fmt.Sprintf("SET reply %q %v", l, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		tb.Fatal(e)
	}
}

// BenchmarkTriggerLateness: 100k jobs due within one second across the
// cluster (no rule, so each trigger fails at once and no runner cost is
// measured); lateness = fire time − scheduled time, read from each worker's
// histogram. Reports p50/p99/max in µs (upper bounds within 2×).
func BenchmarkTriggerLateness(b *testing.B) {
	b.Run("fsync=always", func(b *testing.B) { benchLateness(b) })
	b.Run("memory", func(b *testing.B) { benchLateness(b, `persistence = "memory"`) })
}

func benchLateness(b *testing.B, database ...string) {
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		c := startCluster(b, dir, perfConfig(dir, database...))
		const n = 100000
		t0 := time.Now().Add(8 * time.Second).UnixNano()
		pipelineSET(b, c.addr, n, 8, func(i int) string { return fmt.Sprintf("late.%d", i) },
			func(i int) int64 { return t0 + int64(i)*int64(time.Second)/n })
		waitFor(b, 60*time.Second, "all jobs triggered", func() bool {
			var failed int64
			for _, w := range readStats(b, dir).WorkerStatus {
				failed += w.LastStatus.JobsFailed
			}
			return failed >= n
		})
		var p50, p99, maxNs, count int64
		for _, w := range readStats(b, dir).WorkerStatus {
			l := w.LastStatus.TriggerLateness
			p50, p99, maxNs = max(p50, l.P50Ns), max(p99, l.P99Ns), max(maxNs, l.MaxNs)
			count += l.Count
		}
		b.ReportMetric(float64(p50)/1e3, "p50-µs")
		b.ReportMetric(float64(p99)/1e3, "p99-µs")
		b.ReportMetric(float64(maxNs)/1e3, "max-µs")
		b.ReportMetric(float64(count), "triggers")
		c.stop()
	}
}

// BenchmarkPhasedRestart: a phased restart of every worker holding 1M jobs
// under steady load on 8 connections. Reports the restart's duration, the
// p99 and max request latency during it, failed requests and closed
// connections (both must be 0).
func BenchmarkPhasedRestart(b *testing.B) {
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		c := startCluster(b, dir, perfConfig(dir))
		const jobs = 1000000
		pipelineSET(b, c.addr, jobs, 8, func(i int) string { return fmt.Sprintf("big.%d", i) },
			func(i int) int64 { return 4102444800000000000 + int64(i) })
		before := readStats(b, dir)
		var mu sync.Mutex
		var lat []time.Duration
		var failed, closed int
		stop := make(chan struct{})
		var wg sync.WaitGroup
		recording := false
		for n := 0; n < 8; n++ {
			wg.Add(1)
			go func(n int) {
				defer wg.Done()
				cl := dialNoT(c.addr)
				if cl == nil {
					mu.Lock()
					closed++
					mu.Unlock()
					return
				}
				defer cl.close()
				for k := 0; ; k++ {
					select {
					case <-stop:
						return
					default:
					}
					start := time.Now()
					got := cl.do(fmt.Sprintf("x SET load.%d.%d 4102444800000000000", n, k))
					d := time.Since(start)
					mu.Lock()
					if recording {
						lat = append(lat, d)
					}
					switch {
					case strings.HasPrefix(got, "io error"):
						closed++
						mu.Unlock()
						return
					case got != "x OK":
						failed++
					}
					mu.Unlock()
				}
			}(n)
		}
		mu.Lock()
		recording = true
		mu.Unlock()
		start := time.Now()
		c.cmd.Process.Signal(syscall.SIGUSR1)
		waitFor(b, 5*time.Minute, "phased restart done", func() bool {
			st := readStats(b, dir)
			return st.Phase == before.Phase+1 && !st.PhasedRestart.InProgress && st.OldWorkers == 0
		})
		took := time.Since(start)
		mu.Lock()
		recording = false
		mu.Unlock()
		close(stop)
		wg.Wait()
		slices.Sort(lat)
		var p99, worst time.Duration
		if len(lat) > 0 {
			p99, worst = lat[len(lat)*99/100], lat[len(lat)-1]
		}
		b.ReportMetric(took.Seconds(), "restart-s")
		b.ReportMetric(float64(p99.Microseconds())/1e3, "p99-ms")
		b.ReportMetric(float64(worst.Microseconds())/1e3, "max-ms")
		b.ReportMetric(float64(len(lat)), "requests")
		b.ReportMetric(float64(failed), "failed")
		b.ReportMetric(float64(closed), "closed")
		for _, line := range strings.Split(c.logs.String(), "\n") {
			if strings.Contains(line, "handed off") && testing.Verbose() {
				b.Log(line)
			}
		}
		if failed > 0 || closed > 0 {
			b.Errorf("phased restart: %d failed requests, %d closed connections", failed, closed)
		}
		c.stop()
	}
}

// BenchmarkHTTPExecutions: executions per second through the cluster with
// the http runner against a local server: 20k jobs due at once, from SET to
// every job executed.
func BenchmarkHTTPExecutions(b *testing.B) {
	var hits sync.WaitGroup
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		hits.Done()
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		c := startCluster(b, dir, perfConfig(dir))
		cl := dial(b, c.addr)
		cl.expect("r1 RULE SET rule.hook hook. http POST http://"+ln.Addr().String()+"/hook", "r1 OK")
		const n = 20000
		hits.Add(n)
		start := time.Now()
		pipelineSET(b, c.addr, n, 4, func(i int) string { return fmt.Sprintf("hook.%d", i) }, func(int) int64 { return 0 })
		hits.Wait()
		took := time.Since(start)
		waitFor(b, 60*time.Second, "all executed", func() bool {
			body, _ := cl.list("s", "s STAT")
			return statMap(body)["jobs_executed"] == fmt.Sprint(n)
		})
		b.ReportMetric(n/took.Seconds(), "executions/s")
		c.stop()
	}
}
