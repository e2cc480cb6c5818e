package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tockd/tock/bench"
)

// BenchmarkREST: PUT /jobs/{id} and GET /jobs/{id} over keep-alive
// connections (16 clients, one request in flight each, as HTTP/1.1 has no
// pipelining), beside line-protocol SET with the same shape against the
// same cluster in the same run: x-line-set is the ratio to it. GET /health
// (answered by the master alone) is the HTTP listener's own ceiling.
// cpu-µs/op is the server's CPU (master and workers) per request.
//
//	go test -run '^$' -bench BenchmarkREST -benchtime 40000x ./e2e
func BenchmarkREST(b *testing.B) {
	dir := b.TempDir()
	cfg := strings.Replace(monitorConfig(dir, ""), `level = "debug"`, `level = "info"`, 1)
	cfg = strings.Replace(cfg, "[database]\n", "[database]\npersistence = \"memory\"\n", 1)
	c := startCluster(b, dir, cfg)
	base := "http://" + c.httpAddr()
	const clients = 16
	var lineSet float64
	b.Run("line-set", func(b *testing.B) {
		cpu0 := serverCPU(c)
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), benchRunDeadline)
		defer cancel()
		res, err := bench.Run(ctx, bench.Config{Addr: c.addr, Clients: clients, Pipeline: 1, Requests: b.N, Op: "set", Prefix: "line."})
		if err != nil || res.Errors > 0 {
			b.Fatalf("%v\n%s", err, res)
		}
		lineSet = float64(b.N) / time.Since(start).Seconds()
		b.ReportMetric(lineSet, "req/s")
		b.ReportMetric((serverCPU(c)-cpu0).Seconds()*1e6/float64(b.N), "cpu-µs/op")
	})
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	run := func(b *testing.B, method string, path, body func(i int) string, want int) {
		cpu0 := serverCPU(c)
		start := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= b.N {
						return
					}
					var rd io.Reader
					if s := body(i); s != "" {
						rd = strings.NewReader(s)
					}
					req, err := http.NewRequest(method, base+path(i), rd)
					if err != nil {
						errs <- err
						return
					}
					resp, err := hc.Do(req)
					if err != nil {
						errs <- err
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != want {
						errs <- fmt.Errorf("%s rest.%d: %d", method, i, resp.StatusCode)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		rate := float64(b.N) / time.Since(start).Seconds()
		b.ReportMetric(rate, "req/s")
		b.ReportMetric((serverCPU(c)-cpu0).Seconds()*1e6/float64(b.N), "cpu-µs/op")
		if lineSet > 0 {
			b.ReportMetric(rate/lineSet, "x-line-set")
		}
	}
	none := func(int) string { return "" }
	job := func(i int) string { return fmt.Sprintf("/jobs/rest.%d", i) }
	b.Run("health", func(b *testing.B) {
		run(b, http.MethodGet, func(int) string { return "/health" }, none, 200)
	})
	b.Run("put", func(b *testing.B) {
		run(b, http.MethodPut, job, func(int) string { return `{"execution": "2100-01-01T00:00:00Z"}` }, 200)
	})
	b.Run("get", func(b *testing.B) {
		run(b, http.MethodGet, job, none, 200)
	})
}

// serverCPU is the CPU time the master and its workers have used.
func serverCPU(c *cluster) time.Duration {
	pids := append([]int{c.cmd.Process.Pid}, workerPIDs(c.t, c.cmd.Process.Pid)...)
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		var ut, st int64
		if len(f) > 12 {
			fmt.Sscan(f[11], &ut)
			fmt.Sscan(f[12], &st)
		}
		ticks += ut + st
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ
}
