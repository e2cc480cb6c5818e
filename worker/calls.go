package worker

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"

	"github.com/tockd/tock/ipc"
)

func (w *Worker) handleCall(c ipc.Call) {
	var result any
	reply := ipc.CallReply{ID: c.ID}
	switch c.Method {
	case "gc-stats":
		result = ipc.ReadGCStats()
	case "backtraces":
		result = ipc.ReadBacktraces()
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
