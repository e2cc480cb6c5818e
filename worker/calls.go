package worker

import (
	"encoding/json"
	"strconv"

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
