package master

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tockd/tock/cluster"
	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
)

// bareLeases is the master's lease side without a lease manager or NATS:
// the tests call open and close as the manager's Open and Close would.
func bareLeases(m *Master) *hostLeases {
	n := m.cfg.Cluster.Shards
	h := &hostLeases{m: m, cfg: cluster.Config{Host: "h1", Shards: n}, quit: make(chan struct{}),
		local: make([]localState, n), opened: make([]time.Time, n), epoch: make([]uint64, n), routes: make([]cluster.Route, n), seqs: make([]uint64, n)}
	for i := range h.local {
		h.local[i] = localOpen // the fake workers booted with every shard
		h.routes[i].Shard = i
	}
	return h
}

// controlLog records the Acquires and Releases a fake worker got.
type controlLog struct {
	mu       sync.Mutex
	acquires []ipc.Acquire
	releases []ipc.Release
}

func (c *controlLog) script(running map[int][]ipc.RunningJob) *fakeScript {
	return &fakeScript{running: running,
		onAcquire: func(_ *fakeWorker, a ipc.Acquire) bool {
			c.mu.Lock()
			c.acquires = append(c.acquires, a)
			c.mu.Unlock()
			return false
		},
		onRelease: func(_ *fakeWorker, r ipc.Release) bool {
			c.mu.Lock()
			c.releases = append(c.releases, r)
			c.mu.Unlock()
			return false
		}}
}

// TestLeases_ReopenAwaitsRunning: a shard whose lease lapsed (a NATS
// outage) is closed at once, with no drain, and when this host takes the
// lease back and reopens it, the worker is told which executions still
// run from before (and which ended meanwhile, their outcome held by the
// router), so it waits for their outcomes instead of running them again
// (regression: "start, end, start, end" on h3 in TestScaleOut_KillHostAndNATS).
func TestLeases_ReopenAwaitsRunning(t *testing.T) {
	ended := ipc.RunningJob{Shard: 0, JobID: "k", Execution: 8}
	var cl controlLog
	fc := startFakeCluster(t, map[wp]*fakeScript{old0: cl.script(map[int][]ipc.RunningJob{0: {spanJob, ended}})})
	h := bareLeases(fc.m)
	h.close(0, "lease deadline passed before a renewal succeeded")
	cl.mu.Lock()
	rels := slices.Clone(cl.releases)
	cl.mu.Unlock()
	if len(rels) != 1 || rels[0].DrainNs != 0 {
		t.Fatalf("releases %+v, want one without a drain", rels)
	}
	fw := fc.w(old0)
	fw.send(ipc.TypeOutcome, ipc.Outcome{Shard: 0, JobID: "k", Execution: 8, Outcome: store.Outcome{ExitCode: 0}})
	waitUntil(t, "k's outcome held for the shard", func() bool { return len(fc.m.router.heldOutcomes(0)) == 1 })

	epoch, err := h.open(0, 9)
	if err != nil || epoch != 9 {
		t.Fatalf("open: %d, %v", epoch, err)
	}
	cl.mu.Lock()
	acqs := slices.Clone(cl.acquires)
	cl.mu.Unlock()
	if len(acqs) != 1 {
		t.Fatalf("acquires %+v, want one", acqs)
	}
	got := acqs[0].Running
	if len(got) != 2 || !slices.Contains(got, spanJob) || !slices.Contains(got, ended) {
		t.Fatalf("Acquire.Running = %+v, want %v and %v", got, spanJob, ended)
	}
	if o := waitOutcome(t, fw); o.JobID != "k" {
		t.Fatalf("outcome %+v, want k's", o)
	}
	// j runs in the worker that reopened the shard: it records j itself.
	waitUntil(t, "tracking to end", func() bool { return fc.m.spans.count() == 0 })
}

// TestLeases_PlannedReleaseDrains: a rebalance or a graceful stop asks the
// worker to drain the shard's executions (bounded) before the lease goes;
// a lost lease does not.
func TestLeases_PlannedReleaseDrains(t *testing.T) {
	var cl controlLog
	fc := startFakeCluster(t, map[wp]*fakeScript{old0: cl.script(nil)})
	h := bareLeases(fc.m)
	h.close(0, "rebalancing: 3 shards, target 2")
	h.close(2, "shutting down")
	cl.mu.Lock()
	rels := slices.Clone(cl.releases)
	cl.mu.Unlock()
	want := int64(min(maxReleaseDrain, fc.m.cfg.Cluster.WorkerBootTimeout.Duration/2))
	if len(rels) != 2 || rels[0].DrainNs != want || rels[1].DrainNs != want {
		t.Fatalf("releases %+v, want two with DrainNs %d", rels, want)
	}
	if d := h.drainFor("lease lost: its revision changed"); d != 0 {
		t.Fatalf("a lost lease drains for %d", d)
	}
}
