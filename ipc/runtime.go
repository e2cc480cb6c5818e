package ipc

import (
	"bytes"
	"math"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
)

// GCStats is one process's Go memory and GC figures (GET /gc-stats),
// the same for the master and for every worker.
type GCStats struct {
	// PID of the process.
	PID int `json:"pid"`
	// HeapAlloc is the bytes of allocated heap objects.
	HeapAlloc uint64 `json:"heap_alloc"`
	// HeapSys is the heap memory obtained from the OS.
	HeapSys uint64 `json:"heap_sys"`
	// HeapObjects is the number of allocated heap objects.
	HeapObjects uint64 `json:"heap_objects"`
	// TotalAlloc is the cumulative bytes allocated.
	TotalAlloc uint64 `json:"total_alloc"`
	// Sys is the total memory obtained from the OS.
	Sys uint64 `json:"sys"`
	// NumGC is the number of completed GC cycles.
	NumGC uint32 `json:"num_gc"`
	// PauseTotalNs is the cumulative stop-the-world pause time.
	PauseTotalNs uint64 `json:"pause_total_ns"`
	// LastPauseNs is the latest GC pause.
	LastPauseNs uint64 `json:"last_pause_ns"`
	// Goroutines is the number of goroutines.
	Goroutines int `json:"goroutines"`
	// GCPauses is the distribution of every GC stop-the-world pause since
	// the process started (runtime/metrics), the figure the job store's
	// design is judged by: a pause stops the worker from serving.
	GCPauses PauseQuantiles `json:"gc_pauses"`
	// GCStopping is the part of each of those pauses spent stopping the
	// world (until every P stopped): when it is most of a pause, the
	// pause is a thread the OS did not run or a long non-preemptible
	// operation, not the collector's work.
	GCStopping PauseQuantiles `json:"gc_stopping"`
}

// PauseQuantiles summarises a pause histogram. Each quantile is the upper
// bound of the histogram bucket it falls in (the runtime's buckets are
// about 12 % wide), so it never understates a pause.
type PauseQuantiles struct {
	Count uint64 `json:"count"`
	P50Ns uint64 `json:"p50_ns"`
	P99Ns uint64 `json:"p99_ns"`
	MaxNs uint64 `json:"max_ns"`
}

// The runtime's histograms of GC stop-the-world pauses (the first replaces
// /gc/pauses:seconds, which is the same data) and of their stopping part.
const (
	gcPauseMetric    = "/sched/pauses/total/gc:seconds"
	gcStoppingMetric = "/sched/pauses/stopping/gc:seconds"
)

// readGCPauses reads the GC pause histograms; zero when the runtime does
// not have one.
func readGCPauses() (total, stopping PauseQuantiles) {
	s := []metrics.Sample{{Name: gcPauseMetric}, {Name: gcStoppingMetric}}
	metrics.Read(s)
	q := make([]PauseQuantiles, len(s))
	for i := range s {
		if s[i].Value.Kind() == metrics.KindFloat64Histogram {
			q[i] = pauseQuantiles(s[i].Value.Float64Histogram())
		}
	}
	return q[0], q[1]
}

// pauseQuantiles summarises h (Counts[i] falls in [Buckets[i],
// Buckets[i+1])).
func pauseQuantiles(h *metrics.Float64Histogram) PauseQuantiles {
	var q PauseQuantiles
	for _, c := range h.Counts {
		q.Count += c
	}
	if q.Count == 0 {
		return q
	}
	// upper is bucket i's upper bound in ns; the last bucket may be
	// unbounded, and then its lower bound is the best we can say.
	upper := func(i int) uint64 {
		b := h.Buckets[i+1]
		if math.IsInf(b, 1) {
			b = h.Buckets[i]
		}
		return uint64(math.Ceil(b * 1e9))
	}
	p50, p99 := (q.Count+1)/2, q.Count-q.Count/100
	var seen uint64
	for i, c := range h.Counts {
		if c == 0 {
			continue
		}
		if seen < p50 && seen+c >= p50 {
			q.P50Ns = upper(i)
		}
		if seen < p99 && seen+c >= p99 {
			q.P99Ns = upper(i)
		}
		seen += c
		q.MaxNs = upper(i)
	}
	return q
}

// ReadGCStats reads this process's figures.
func ReadGCStats() GCStats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	pauses, stopping := readGCPauses()
	return GCStats{
		PID: os.Getpid(), HeapAlloc: ms.HeapAlloc, HeapSys: ms.HeapSys, HeapObjects: ms.HeapObjects,
		TotalAlloc: ms.TotalAlloc, Sys: ms.Sys, NumGC: ms.NumGC, PauseTotalNs: ms.PauseTotalNs,
		LastPauseNs: ms.PauseNs[(ms.NumGC+255)%256], Goroutines: runtime.NumGoroutine(),
		GCPauses: pauses, GCStopping: stopping,
	}
}

// Backtraces is one process's goroutine dump (GET /backtraces).
type Backtraces struct {
	// PID of the process.
	PID int `json:"pid"`
	// Goroutines is the dump in Go's panic format.
	Goroutines string `json:"goroutines"`
}

// ReadBacktraces dumps this process's goroutines.
func ReadBacktraces() Backtraces {
	var b bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&b, 2); err != nil {
		b.WriteString("goroutine dump failed: " + err.Error())
	}
	return Backtraces{PID: os.Getpid(), Goroutines: b.String()}
}

// RSSBytes is this process's resident set size (Linux; 0 elsewhere).
func RSSBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// CPUNs is this process's user+system CPU time.
func CPUNs() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
