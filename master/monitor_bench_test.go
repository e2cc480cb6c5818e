package master

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/config"
	"github.com/tockd/tock/ipc"
)

// loadedMaster is a master (not running) holding 16 workers' heartbeats,
// with per-shard figures and full histograms, and 10,000 closed
// connections: the monitoring endpoints' worst ordinary case.
func loadedMaster(tb testing.TB) *Master {
	tb.Helper()
	cfg := config.Default()
	cfg.Database.Persistence = config.PersistenceMemory
	cfg.Database.DataDir = tb.TempDir() // the master locks it, memory mode too
	cfg.Cluster.Shards = 64
	m, err := New(cfg, Options{}, hclog.NewNullLogger())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(m.unlockDataDir)
	full := func(bounds []float64) ipc.Histogram {
		h := ipc.Histogram{}
		for i, b := range bounds {
			for range i + 1 {
				h.Observe(bounds, b)
			}
		}
		return h
	}
	for i := range 16 {
		p := &proc{index: i, pid: 1000 + i, started: time.Now(), booted: true, lastCheckin: time.Now(),
			shards: []int{4 * i, 4*i + 1, 4*i + 2, 4*i + 3}}
		p.lastStatus = ipc.Status{JobsTotal: 1e6, JobsPlanned: 9e5, ExecutionsInflight: 3, Persistence: "memory",
			Compression: "idle", Framerate: 512, MaxThreads: 64, PoolCapacity: 61, RSSBytes: 200 << 20}
		wm := &ipc.WorkerMetrics{
			ExecutionSeconds: full(ipc.ExecutionBounds), TriggerLatenessSeconds: full(ipc.LatenessBounds),
			FsyncSeconds: full(ipc.FsyncBounds), CommitBatch: full(ipc.BatchBounds),
			Executions: []ipc.ExecutionCount{{Runner: "shell", Result: "success", Count: 10}, {Runner: "http", Result: "failure", Count: 2}},
		}
		for _, s := range p.shards {
			wm.Shards = append(wm.Shards, ipc.ShardMetrics{Shard: s, Owned: true, LogBytes: 1 << 30, Compactions: 3})
		}
		p.lastMetrics = wm
		m.slots = append(m.slots, &slot{index: i, cur: p, shards: p.shards})
	}
	now := time.Now().UTC()
	for i := range closedRingSize {
		stop := now.Add(time.Duration(i) * time.Millisecond)
		m.closedConns.push(ConnInfo{Cid: uint64(i + 1), Kind: "Client", Type: "ztick", IP: "127.0.0.1", Port: 40000 + i%20000,
			Start: now, LastActivity: now, Stop: &stop, Reason: reasonNames[1+i%int(numReasons-1)], RTT: "0s",
			Uptime: "1s", Idle: "0s", InMsgs: int64(i), OutMsgs: int64(i)})
	}
	return m
}

func benchEndpoint(b *testing.B, target string) {
	m := loadedMaster(b)
	req := httptest.NewRequest(http.MethodGet, target, nil)
	b.ReportAllocs()
	b.ResetTimer()
	var size int
	for range b.N {
		rec := httptest.NewRecorder()
		m.httpMux.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("%s: %d %s", target, rec.Code, rec.Body)
		}
		size = rec.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes/scrape")
}

// BenchmarkScrape: one scrape of each endpoint with 16 workers' figures
// and 10,000 closed connections.
func BenchmarkScrape(b *testing.B) {
	for _, target := range []string{"/stats", "/stats?compact=1", "/metrics", "/varz", "/connz", "/connz?state=closed&limit=1024&sort=stop"} {
		b.Run(target, func(b *testing.B) { benchEndpoint(b, target) })
	}
}

// TestScrapeLoaded: the loaded master answers every endpoint (the
// benchmark's fixture is valid) and the closed ring holds exactly its
// capacity, oldest first.
func TestScrapeLoaded(t *testing.T) {
	m := loadedMaster(t)
	late := time.Now().Add(time.Hour)
	m.closedConns.push(ConnInfo{Cid: 99999, Reason: "Client Closed", Stop: &late})
	list := m.closedConns.list()
	if len(list) != closedRingSize || list[0].Cid != 2 || list[len(list)-1].Cid != 99999 {
		t.Fatalf("ring: %d entries, first %d, last %d", len(list), list[0].Cid, list[len(list)-1].Cid)
	}
	for _, target := range []string{"/stats", "/metrics", "/varz", "/connz?state=closed", "/healthz", "/"} {
		rec := httptest.NewRecorder()
		m.httpMux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		if rec.Code != 200 && !(target == "/healthz" && rec.Code == 503) {
			t.Fatalf("%s: %d %s", target, rec.Code, rec.Body)
		}
	}
	cz, err := m.Connz(ConnzOptions{State: StateClosed, Sort: "stop", Limit: 3})
	if err != nil || cz.Total != closedRingSize || cz.Conns[0].Cid != 99999 {
		t.Fatalf("connz closed by stop: %v %+v", err, cz)
	}
}

func TestNatsDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", -time.Second: "0s", 59 * time.Second: "59s", 61 * time.Second: "1m1s",
		3723 * time.Second: "1h2m3s", 49 * time.Hour: "2d1h0m0s", 400 * 24 * time.Hour: "1y35d0h0m0s",
	} {
		if got := natsDuration(d); got != want {
			t.Errorf("natsDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestReplyIsError(t *testing.T) {
	for out, want := range map[string]bool{
		"r1 OK\n": false, "r1 ERROR not found\n": true, "ERROR line too long\n": true,
		"q a planned 1\nq ERROR ...\n": true, "q ERROR planned 1\nq OK\n": false, "r OK planned 5\n": false,
	} {
		if got := replyIsError([]byte(out)); got != want {
			t.Errorf("replyIsError(%q) = %v", out, got)
		}
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b ipc.Histogram
	a.Observe(ipc.BatchBounds, 1)
	b.Observe(ipc.BatchBounds, 3)
	b.Observe(ipc.BatchBounds, 1e9)
	a.Add(b)
	if a.Count() != 3 || a.Counts[0] != 1 || a.Counts[2] != 1 || a.Counts[len(a.Counts)-1] != 1 || a.Sum != 1e9+4 {
		t.Fatalf("merged: %+v", a)
	}
	m := ipc.WorkerMetrics{Shards: []ipc.ShardMetrics{{Shard: 1, Compactions: 2}}}
	m.Add(&ipc.WorkerMetrics{Shards: []ipc.ShardMetrics{{Shard: 1, Owned: true, LogBytes: 7, Compactions: 1}}})
	if m.Shards[0].Compactions != 3 || m.Shards[0].LogBytes != 7 {
		t.Fatalf("shards merged: %+v", m.Shards)
	}
}
