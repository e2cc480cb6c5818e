package worker

import (
	"bytes"
	"encoding/json"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/tockd/tock/ipc"
)

// GCStats is a process's Go memory and GC figures (GET /gc-stats).
type GCStats struct {
	PID          int    `json:"pid"`
	HeapAlloc    uint64 `json:"heap_alloc"`
	HeapSys      uint64 `json:"heap_sys"`
	HeapObjects  uint64 `json:"heap_objects"`
	TotalAlloc   uint64 `json:"total_alloc"`
	Sys          uint64 `json:"sys"`
	NumGC        uint32 `json:"num_gc"`
	PauseTotalNs uint64 `json:"pause_total_ns"`
	LastPauseNs  uint64 `json:"last_pause_ns"`
	Goroutines   int    `json:"goroutines"`
}

// ReadGCStats reads this process's figures.
func ReadGCStats() GCStats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return GCStats{
		PID: os.Getpid(), HeapAlloc: m.HeapAlloc, HeapSys: m.HeapSys, HeapObjects: m.HeapObjects,
		TotalAlloc: m.TotalAlloc, Sys: m.Sys, NumGC: m.NumGC, PauseTotalNs: m.PauseTotalNs,
		LastPauseNs: m.PauseNs[(m.NumGC+255)%256], Goroutines: runtime.NumGoroutine(),
	}
}

// Backtraces returns this process's goroutine dump.
func Backtraces() string {
	var b bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&b, 2); err != nil {
		return "goroutine dump failed: " + err.Error()
	}
	return b.String()
}

func (w *Worker) handleCall(c ipc.Call) {
	var result any
	reply := ipc.CallReply{ID: c.ID}
	switch c.Method {
	case "gc-stats":
		result = ReadGCStats()
	case "backtraces":
		result = map[string]any{"pid": os.Getpid(), "goroutines": Backtraces()}
	case "compact":
		started := w.compactAll()
		result = map[string]any{"started": started}
	default:
		reply.Error = "unknown call " + strconv.Quote(c.Method)
	}
	if result != nil {
		b, err := json.Marshal(result)
		if err != nil {
			reply.Error = err.Error()
		}
		reply.Result = b
	}
	w.send(ipc.TypeCallReply, reply)
}

// rssBytes reads the resident set size from /proc (0 where unavailable).
func rssBytes() int64 {
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
