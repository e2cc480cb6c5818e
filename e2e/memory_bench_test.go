package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkClusterMemory: the workers' memory per planned job with 24-byte
// ids (the shape: "app.job.%016d"), from the RSS the workers report
// in /stats before and after planning n jobs, beyond the ids' own bytes.
// The RSS is as the workers hold it, without a forced collection: garbage
// of the load is still counted, so it is an upper bound of the store's
// cost (store/BenchmarkStoreMemory measures it after GC). 1M by default;
// -tock.requests sets n (10M: -tock.requests 10000000).
//
//	go test -run '^$' -bench ClusterMemory -benchtime 1x ./e2e/ -tock.requests 10000000
func BenchmarkClusterMemory(b *testing.B) {
	n := benchRequestsOr(1_000_000)
	for range b.N {
		dir := b.TempDir()
		c := startCluster(b, dir, perfConfig(dir, `persistence = "memory"`))
		rss := func() (total int64, jobs int64) {
			for _, w := range readStats(b, dir).WorkerStatus {
				total += w.LastStatus.RSSBytes
				jobs += w.LastStatus.JobsTotal
			}
			return total, jobs
		}
		before, _ := rss()
		start := time.Now()
		pipelineSET(b, c.addr, n, 8, func(i int) string { return fmt.Sprintf("app.job.%016d", i) },
			func(i int) int64 { return 4102444800000000000 + int64(i) })
		took := time.Since(start)
		var after int64
		waitFor(b, 60*time.Second, "every job counted in the heartbeats", func() bool {
			var jobs int64
			after, jobs = rss()
			return jobs >= int64(n)
		})
		b.ReportMetric(float64(after-before)/float64(n)-24, "rss-bytes/job")
		b.ReportMetric(float64(n)/took.Seconds(), "sets/s")
		c.stop()
	}
}

// BenchmarkWorkerBoot: one worker owning 8 shards that hold n planned jobs
// (24-byte ids; default 1M, -tock.requests sets n, the figure is
// 5M) is stopped and started again; boot-s is from the start of `tock
// serve` to its ready line, which comes once the worker has replayed every
// shard and reported ready.
//
//	go test -run '^$' -bench WorkerBoot -benchtime 1x ./e2e/ -tock.requests 5000000
func BenchmarkWorkerBoot(b *testing.B) {
	n := benchRequestsOr(1_000_000)
	for range b.N {
		dir := b.TempDir()
		cfg := strings.Replace(perfConfig(dir, `fsync = "never"`), "workers = 2\nshards = 16", "workers = 1\nshards = 8", 1)
		c := startCluster(b, dir, cfg)
		pipelineSET(b, c.addr, n, 8, func(i int) string { return fmt.Sprintf("app.job.%016d", i) },
			func(i int) int64 { return 4102444800000000000 + int64(i) })
		if err := c.stop(); err != nil {
			b.Fatalf("stop: %v", err)
		}
		start := time.Now()
		c.start()
		took := time.Since(start)
		var jobs int64
		for _, w := range readStats(b, dir).WorkerStatus {
			jobs += w.LastStatus.JobsTotal
		}
		if jobs != int64(n) {
			b.Fatalf("booted with %d jobs, want %d", jobs, n)
		}
		b.ReportMetric(took.Seconds(), "boot-s")
		b.ReportMetric(float64(n)/took.Seconds(), "records/s")
	}
}
