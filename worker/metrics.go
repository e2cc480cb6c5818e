package worker

import (
	"sort"

	"github.com/tockd/tock/ipc"
)

// metrics are the worker's cumulative figures sent in every heartbeat
// (ipc.WorkerMetrics). Everything but the commit figures is touched only
// by the worker's loop goroutine; the committer has its own locked
// histograms.
type metrics struct {
	executions map[execKey]int64
	execution  ipc.Histogram
	lateness   ipc.Histogram
	shards     map[int]*ipc.ShardMetrics
	fsync      *ipc.SyncHistogram
	batch      *ipc.SyncHistogram
}

type execKey struct{ runner, result string }

func newMetrics() *metrics {
	return &metrics{
		executions: map[execKey]int64{}, shards: map[int]*ipc.ShardMetrics{},
		fsync: ipc.NewSyncHistogram(ipc.FsyncBounds), batch: ipc.NewSyncHistogram(ipc.BatchBounds),
	}
}

func (m *metrics) triggered(latenessNs int64) {
	m.lateness.Observe(ipc.LatenessBounds, float64(max(latenessNs, 0))/1e9)
}

func (m *metrics) executed(runner string, ok bool, durationNs int64) {
	res := "success"
	if !ok {
		res = "failure"
	}
	m.executions[execKey{runner, res}]++
	m.execution.Observe(ipc.ExecutionBounds, float64(max(durationNs, 0))/1e9)
}

func (m *metrics) shard(id int) *ipc.ShardMetrics {
	s := m.shards[id]
	if s == nil {
		s = &ipc.ShardMetrics{Shard: id}
		m.shards[id] = s
	}
	return s
}

func (m *metrics) compacted(id int, ok bool) {
	s := m.shard(id)
	if ok {
		s.Compactions++
	} else {
		s.CompactionFailures++
	}
}

// snapshot builds the heartbeat's figures; owned maps a shard the worker
// owns to its log's size.
func (m *metrics) snapshot(owned map[int]int64) *ipc.WorkerMetrics {
	out := &ipc.WorkerMetrics{
		CPUNs: ipc.CPUNs(), ExecutionSeconds: m.execution.Clone(), TriggerLatenessSeconds: m.lateness.Clone(),
		FsyncSeconds: m.fsync.Snapshot(), CommitBatch: m.batch.Snapshot(),
	}
	for k, n := range m.executions {
		out.Executions = append(out.Executions, ipc.ExecutionCount{Runner: k.runner, Result: k.result, Count: n})
	}
	sort.Slice(out.Executions, func(i, j int) bool {
		a, b := out.Executions[i], out.Executions[j]
		return a.Runner < b.Runner || a.Runner == b.Runner && a.Result < b.Result
	})
	for id := range owned {
		m.shard(id)
	}
	for id, s := range m.shards {
		c := *s
		c.LogBytes, c.Owned = owned[id]
		out.Shards = append(out.Shards, c)
	}
	sort.Slice(out.Shards, func(i, j int) bool { return out.Shards[i].Shard < out.Shards[j].Shard })
	return out
}
