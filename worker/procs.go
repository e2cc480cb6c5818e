package worker

import (
	"os"
	"runtime"

	"github.com/hashicorp/go-hclog"
)

// limitProcs runs the worker on one P (GOMAXPROCS=1) unless the operator
// set GOMAXPROCS. A worker serves from one goroutine, its loop; the
// cluster's parallelism is its worker processes. With more Ps, every
// garbage collection has to stop each of them, and when the OS is not
// running the thread that holds one (a busy machine: the master, the other
// workers and the clients want the cores too), the world waits for it: on
// the 2-core bench machine that made worker GC pauses 1-7 ms at p99, nearly
// all of it stopping the world, against under 0.4 ms on one P (issue 11;
// see docs/operations.md). Blocking system calls (fsync, the IPC socket)
// still hand the P to another thread, so the group commit keeps running
// while the loop serves.
func limitProcs(log hclog.Logger) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	prev := runtime.GOMAXPROCS(1)
	log.Debug("worker runs on one P", "gomaxprocs_was", prev)
}
