package ipc

import (
	"slices"
	"sort"
	"sync"
)

// WorkerMetrics are a worker's cumulative figures for the master's
// /metrics, carried in every heartbeat (Status.Metrics) so the master never
// asks a worker for them. Counters and histograms only grow over the
// worker's life; the master adds a dead worker's last figures to its
// totals, so the cluster's never go back.
type WorkerMetrics struct {
	// CPUNs is the worker's user+system CPU time.
	CPUNs int64 `json:"cpu_ns"`
	// Executions counts finished executions by runner and result.
	Executions []ExecutionCount `json:"executions,omitempty"`
	// ExecutionSeconds: duration of finished executions.
	ExecutionSeconds Histogram `json:"execution_seconds"`
	// TriggerLatenessSeconds: fire time − scheduled time of triggered jobs.
	TriggerLatenessSeconds Histogram `json:"trigger_lateness_seconds"`
	// FsyncSeconds: duration of each shard log fsync.
	FsyncSeconds Histogram `json:"fsync_seconds"`
	// CommitBatch: acknowledgements covered by one group commit.
	CommitBatch Histogram `json:"commit_batch"`
	// Shards has one entry per shard the worker has owned.
	Shards []ShardMetrics `json:"shards,omitempty"`
}

// ExecutionCount is the number of executions of one runner with one result
// ("success" or "failure").
type ExecutionCount struct {
	Runner string `json:"runner"`
	Result string `json:"result"`
	Count  int64  `json:"count"`
}

// ShardMetrics are one shard's figures at one worker.
type ShardMetrics struct {
	Shard int `json:"shard"`
	// Owned: the worker owns the shard now (LogBytes is current).
	Owned bool `json:"owned"`
	// LogBytes is the size of the shard's logfile.
	LogBytes int64 `json:"log_bytes"`
	// Compactions counts the compactions by result while this worker
	// owned the shard.
	Compactions        int64 `json:"compactions"`
	CompactionFailures int64 `json:"compaction_failures"`
}

// Bucket upper bounds (seconds, or acknowledgements for CommitBatch) of
// the heartbeat histograms; a Histogram's Counts has one entry more, for
// +Inf.
var (
	LatenessBounds  = []float64{0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10}
	ExecutionBounds = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}
	FsyncBounds     = []float64{0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5}
	BatchBounds     = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096}
)

// Histogram counts observations per bucket (not cumulative).
type Histogram struct {
	Counts []uint64 `json:"counts"`
	Sum    float64  `json:"sum"`
}

// Observe adds v to h with the given bounds.
func (h *Histogram) Observe(bounds []float64, v float64) {
	if len(h.Counts) != len(bounds)+1 {
		h.Counts = make([]uint64, len(bounds)+1)
	}
	h.Counts[sort.SearchFloat64s(bounds, v)]++
	h.Sum += v
}

// Count is the number of observations.
func (h Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Add merges o into h (same bounds).
func (h *Histogram) Add(o Histogram) {
	if len(o.Counts) == 0 {
		return
	}
	if len(h.Counts) < len(o.Counts) {
		h.Counts = append(h.Counts, make([]uint64, len(o.Counts)-len(h.Counts))...)
	}
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.Sum += o.Sum
}

// Clone copies h.
func (h Histogram) Clone() Histogram { return Histogram{Counts: slices.Clone(h.Counts), Sum: h.Sum} }

// SyncHistogram is a Histogram observed from several goroutines.
type SyncHistogram struct {
	mu     sync.Mutex
	bounds []float64
	h      Histogram
}

// NewSyncHistogram returns an empty histogram with bounds.
func NewSyncHistogram(bounds []float64) *SyncHistogram { return &SyncHistogram{bounds: bounds} }

// Observe adds v.
func (s *SyncHistogram) Observe(v float64) {
	s.mu.Lock()
	s.h.Observe(s.bounds, v)
	s.mu.Unlock()
}

// Snapshot copies the histogram.
func (s *SyncHistogram) Snapshot() Histogram {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.h.Clone()
}

// Add merges o into m: counters and histograms add up, and a shard's
// LogBytes is taken from whichever side owns it.
func (m *WorkerMetrics) Add(o *WorkerMetrics) {
	m.CPUNs += o.CPUNs
	for _, e := range o.Executions {
		i := slices.IndexFunc(m.Executions, func(x ExecutionCount) bool { return x.Runner == e.Runner && x.Result == e.Result })
		if i < 0 {
			m.Executions = append(m.Executions, e)
		} else {
			m.Executions[i].Count += e.Count
		}
	}
	m.ExecutionSeconds.Add(o.ExecutionSeconds)
	m.TriggerLatenessSeconds.Add(o.TriggerLatenessSeconds)
	m.FsyncSeconds.Add(o.FsyncSeconds)
	m.CommitBatch.Add(o.CommitBatch)
	for _, s := range o.Shards {
		i := slices.IndexFunc(m.Shards, func(x ShardMetrics) bool { return x.Shard == s.Shard })
		if i < 0 {
			m.Shards = append(m.Shards, s)
			continue
		}
		t := &m.Shards[i]
		t.Compactions += s.Compactions
		t.CompactionFailures += s.CompactionFailures
		if s.Owned {
			t.Owned, t.LogBytes = true, s.LogBytes
		}
	}
}

// Clone deep-copies m.
func (m *WorkerMetrics) Clone() WorkerMetrics {
	c := *m
	c.Executions = slices.Clone(m.Executions)
	c.Shards = slices.Clone(m.Shards)
	c.ExecutionSeconds = m.ExecutionSeconds.Clone()
	c.TriggerLatenessSeconds = m.TriggerLatenessSeconds.Clone()
	c.FsyncSeconds = m.FsyncSeconds.Clone()
	c.CommitBatch = m.CommitBatch.Clone()
	return c
}
