package ipc

import (
	"math"
	"runtime"
	"runtime/metrics"
	"testing"
)

func TestPauseQuantiles(t *testing.T) {
	inf := math.Inf(1)
	h := &metrics.Float64Histogram{
		// [0,1µs) [1µs,10µs) [10µs,1ms) [1ms,+Inf)
		Buckets: []float64{0, 1e-6, 1e-5, 1e-3, inf},
		Counts:  []uint64{0, 98, 1, 1},
	}
	got := pauseQuantiles(h)
	want := PauseQuantiles{Count: 100, P50Ns: 10_000, P99Ns: 1_000_000, MaxNs: 1_000_000}
	if got != want {
		t.Fatalf("pauseQuantiles = %+v, want %+v", got, want)
	}
	if got := pauseQuantiles(&metrics.Float64Histogram{Buckets: []float64{0, 1}, Counts: []uint64{0}}); got != (PauseQuantiles{}) {
		t.Fatalf("empty histogram = %+v", got)
	}
}

// TestReadGCStatsPauses: after a GC the runtime's pause histogram is read
// (the metric name is one the runtime knows).
func TestReadGCStatsPauses(t *testing.T) {
	runtime.GC()
	g := ReadGCStats()
	if g.GCPauses.Count == 0 || g.GCPauses.P99Ns == 0 || g.GCPauses.MaxNs < g.GCPauses.P99Ns || g.GCStopping.Count != g.GCPauses.Count {
		t.Fatalf("gc pauses after a GC: %+v", g.GCPauses)
	}
}
