package ipc

import (
	"bytes"
	"os"
	"runtime"
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
}

// ReadGCStats reads this process's figures.
func ReadGCStats() GCStats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return GCStats{
		PID: os.Getpid(), HeapAlloc: ms.HeapAlloc, HeapSys: ms.HeapSys, HeapObjects: ms.HeapObjects,
		TotalAlloc: ms.TotalAlloc, Sys: ms.Sys, NumGC: ms.NumGC, PauseTotalNs: ms.PauseTotalNs,
		LastPauseNs: ms.PauseNs[(ms.NumGC+255)%256], Goroutines: runtime.NumGoroutine(),
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
