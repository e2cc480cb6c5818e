package e2e

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkMonitorScrapeUnderLoad: SET throughput (memory, 16 connections
// × 64 in flight) on one cluster, without scraping, while /stats, /varz,
// /connz and /metrics are each scraped every 100 ms, and without again.
// Compare the req/s of the three sub-benchmarks of the same run.
func BenchmarkMonitorScrapeUnderLoad(b *testing.B) {
	dir := b.TempDir()
	cfg := strings.Replace(benchClusterConfig(dir, `persistence = "memory"`), "[http]\nlisten = \"\"", "[http]\nlisten = \"127.0.0.1:0\"", 1)
	c := startClusterTB(b, dir, cfg)
	m := httpReadyRE.FindStringSubmatch(c.logs.headString())
	if m == nil {
		b.Fatalf("no http address in the ready line")
	}
	base := "http://" + m[1]
	load := benchShape("set", 16, 64, 300_000)
	load.Addr = c.addr
	b.Run("quiet", func(b *testing.B) { benchRunLoad(b, load, c.logs) })
	b.Run("scraping", func(b *testing.B) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var scrapes, failures int
		var mu sync.Mutex
		hc := &http.Client{Timeout: 10 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				for _, p := range []string{"/stats", "/varz", "/connz", "/metrics"} {
					resp, err := hc.Get(base + p)
					ok := err == nil && resp.StatusCode == 200
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
					mu.Lock()
					scrapes++
					if !ok {
						failures++
					}
					mu.Unlock()
				}
			}
		}()
		benchRunLoad(b, load, c.logs)
		close(stop)
		wg.Wait()
		b.Logf("%d scrapes during the load, %d failed", scrapes, failures)
		if failures > 0 {
			b.Errorf("%d of %d scrapes failed", failures, scrapes)
		}
	})
	b.Run("quiet-again", func(b *testing.B) { benchRunLoad(b, load, c.logs) })
}
