package master

import (
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/config"
)

// TestStats_BootingWorkerListed: a worker being booted (a phased restart's
// new process, or a scale up's) is a process the master tracks: /stats
// counts and lists it, not booted, with its start as last_checkin.
func TestStats_BootingWorkerListed(t *testing.T) {
	cfg := config.Default()
	cfg.Database.Persistence = config.PersistenceMemory
	cfg.Database.DataDir = t.TempDir() // the master locks it, memory mode too
	m, err := New(cfg, Options{}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.unlockDataDir)
	started := time.Now().Add(-time.Second)
	cur := &proc{index: 0, pid: 100, started: started, booted: true, lastCheckin: time.Now(), shards: []int{0, 1}}
	m.slots = []*slot{{index: 0, cur: cur, shards: cur.shards}}
	boot := &proc{index: 0, pid: 101, phase: 1, started: started}
	m.booting = []*proc{boot}
	m.live = []*proc{cur, boot}
	st := m.Stats()
	if st.Workers != 2 || st.BootedWorkers != 1 || len(st.WorkerStatus) != 2 {
		t.Fatalf("workers %d booted %d listed %d, want 2, 1, 2", st.Workers, st.BootedWorkers, len(st.WorkerStatus))
	}
	w := st.WorkerStatus[1]
	if w.PID != 101 || w.Booted || !w.LastCheckin.Equal(started) {
		t.Errorf("booting worker: %+v, want pid 101, not booted, last_checkin = its start %v", w, started)
	}
	if ls, n := w.LastStatus, int64(cfg.Execution.MaxInflight); ls.MaxThreads != n || ls.PoolCapacity != n {
		t.Errorf("booting worker: max_threads %d pool_capacity %d, want %d (Puma readers divide by max_threads)",
			ls.MaxThreads, ls.PoolCapacity, cfg.Execution.MaxInflight)
	}
	if got := len(m.allProcs()); got != 2 {
		t.Errorf("allProcs: %d processes, want 2 (each once)", got)
	}
}

// TestHealthy_HandoffIsServed: a shard moving between two live workers (a
// phased restart, a scale) has no owner for a moment, but its requests are
// held and answered, so readiness stays ok; a shard without an owner and
// not in a handoff is unready.
func TestHealthy_HandoffIsServed(t *testing.T) {
	cfg := config.Default()
	cfg.Database.Persistence = config.PersistenceMemory
	cfg.Database.DataDir = t.TempDir() // the master locks it, memory mode too
	cfg.Cluster.Shards = 4
	m, err := New(cfg, Options{}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.unlockDataDir)
	p := &proc{index: 0, pid: 100, started: time.Now(), booted: true, lastCheckin: time.Now(), shards: []int{0, 1, 2, 3}}
	m.slots = []*slot{{index: 0, cur: p, shards: p.shards}}
	m.router.SetOwner(p.shards, p)
	if ok, why := m.Healthy(); !ok {
		t.Fatalf("every shard owned: unhealthy (%s)", why)
	}
	m.router.SetHandoff([]int{2}, true)
	m.router.SetOwner([]int{2}, nil)
	if ok, why := m.Healthy(); !ok {
		t.Errorf("shard 2 in a handoff: unhealthy (%s), want ok", why)
	}
	m.router.SetHandoff([]int{2}, false)
	if ok, why := m.Healthy(); ok || why != "shard 2 has no ready worker" {
		t.Errorf("shard 2 without owner after the handoff: %v %q, want unready", ok, why)
	}
}
