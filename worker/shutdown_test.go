package worker

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
)

// TestShutdown_FlushesOutcomesBeforeReturning: an execution whose shard was
// released runs on while the worker drains; its Outcome is the worker's
// last frame, and Run returns only once that frame is written and the link
// closed (regression: Run returned with the Outcome still queued, and the
// process exit dropped it, leaving the job triggered at its new owner).
func TestShutdown_FlushesOutcomesBeforeReturning(t *testing.T) {
	dir := t.TempDir()
	set := testSettings(dir)
	set.Persistence = "memory"
	gate := mkfifo(t, dir)
	rules := []store.Rule{shellRule("r", "job.", fmt.Sprintf("read x < %s; true", gate))}
	fm := startTestWorker(t, set, []int{0}, rules, runOptions{})
	exec := time.Now().UnixNano()
	if r := fm.do(ipc.Request{Op: ipc.OpSet, Shard: 0, Key: "job.1", Execution: exec}); r.Kind != ipc.KindOK {
		t.Fatalf("SET: %+v", r)
	}
	fm.waitStatus(0, "job.1", store.Triggered)
	fm.send(ipc.TypeRelease, ipc.Release{Shards: []int{0}})
	var rel ipc.Released
	fm.decode(fm.expect(ipc.TypeReleased), &rel)
	if len(rel.Running) != 1 || rel.Running[0].JobID != "job.1" || rel.Running[0].Execution != exec {
		t.Fatalf("Released.Running = %+v, want job.1", rel.Running)
	}
	fm.send(ipc.TypeShutdown, ipc.Shutdown{TimeoutNs: int64(time.Minute)})
	openGate(t, gate)
	if err := fm.waitExit(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// The process would exit here: whatever is still queued is lost.
	if err := fm.wlink.SendJSON(ipc.TypeStatus, ipc.Status{}); !errors.Is(err, ipc.ErrClosed) {
		t.Fatalf("link still open after Run returned (send: %v): queued frames die with the process", err)
	}
	fm.wlink.Abort()
	var o ipc.Outcome
	fm.decode(fm.expect(ipc.TypeOutcome), &o)
	if o.JobID != "job.1" || o.Execution != exec || o.Requeue || !o.Outcome.Succeeded() {
		t.Fatalf("outcome %+v, want job.1 succeeded", o)
	}
}
