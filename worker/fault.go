package worker

import (
	"errors"
	"fmt"
	"time"

	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
	"github.com/tockd/tock/worker/runner"
)

// Shard failure (docs/operations.md, "Fencing"). A failed fsync, or a
// failed write the log could not undo, means memory may hold what the disk
// does not: the shard fails. Its mutations in flight are answered "shard unavailable: <reason>"
// (none was acknowledged), the reason shows in the worker's ShardErrors
// (and so in /healthz), the log is closed (which cuts the file back to the
// last good fsync) and, after shardRetry, the shard is reopened from its
// file, so memory is exactly what is durable.

// shardRetry is how long a failed shard stays down before it is reopened.
const shardRetry = 2 * time.Second

// failedShard is a shard down after a failure.
type failedShard struct {
	at    time.Time // of the failure or the last failed reopen
	epoch uint64
	// fenceSeq is the failed log's fence record (jetstream; 0: none, the
	// shard was never opened here).
	fenceSeq uint64
	// parked are results of executions that ran while the shard was down;
	// they are recorded once it is reopened.
	parked []runner.Result
}

// failsShard reports whether a write error of sh must fail the shard: one
// that left its log unusable does (it could not cut the write back off).
// One the log undid cleanly (a full disk, an invalid record) only fails
// the batch: the file holds nothing of it and the batch's mutations were
// rolled back, so memory already matches the disk, and reads go on.
func failsShard(sh *shard) bool {
	return sh.log.Durable() && sh.log.Failed() != nil
}

// failShard takes sh down after a failure of its log and tries to reopen
// it later. Replies already queued for its earlier batches are sent first.
func (w *Worker) failShard(sh *shard, cause error) {
	n := sh.id
	if w.shards[n] != sh {
		return // already down or released
	}
	w.log.Error("shard failed; it is reopened from its file so that memory matches what is durable", "shard", n, "error", cause, "retry_in", shardRetry)
	w.commit.wait()
	w.reapCompaction(sh, true)
	if err := sh.close(); err != nil {
		w.log.Warn("close failed shard", "shard", n, "error", err)
	}
	delete(w.shards, n)
	w.shardErrors[n] = cause.Error()
	if w.isFenced(sh, cause) {
		// Another host has it: not reopened (jetstream.go). Executions
		// still running here report to the master, which forwards them.
		w.log.Warn("shard fenced by another host; down until the master releases it", "shard", n, "epoch", sh.epoch)
		w.fenced[n] = true
		return
	}
	w.failed[n] = &failedShard{at: time.Now(), epoch: sh.epoch, fenceSeq: sh.fenceSeq}
}

// failSynced handles a sync failure reported by the committer.
func (w *Worker) failSynced(f syncFailure) {
	for _, ex := range f.dropped {
		w.untrack(ex.Shard, ex.JobID, ex.Execution)
	}
	for _, sh := range w.shards {
		if sh.log == f.log {
			w.failShard(sh, fmt.Errorf("fsync: %w", f.err))
			return
		}
	}
}

// retryFailed reopens the failed shards whose retry time has come.
func (w *Worker) retryFailed(now time.Time) {
	for n, f := range w.failed {
		if now.Sub(f.at) >= shardRetry {
			w.reopen(n, f, now)
		}
	}
}

// reopen opens failed shard n from its file. Executions of the shard still
// running here are awaited like those of an old owner, so they are neither
// run again nor lost.
func (w *Worker) reopen(n int, f *failedShard, now time.Time) {
	running := map[string]int64{}
	for id, exec := range w.running[n] {
		running[id] = exec
	}
	for _, r := range f.parked {
		running[r.Execution.JobID] = r.Execution.Execution
	}
	for id, exec := range w.awaiting[n] {
		running[id] = exec
	}
	sh, err := w.open(n, f.epoch, running, nil, f)
	if err != nil && w.jetStreamMode() && errors.Is(err, store.ErrFenced) {
		w.log.Warn("failed shard was taken by another host; not reopened", "shard", n, "error", err)
		w.shardErrors[n] = err.Error()
		w.fenced[n] = true
		delete(w.failed, n)
		return
	}
	if err != nil {
		w.log.Error("cannot reopen failed shard", "shard", n, "error", err, "retry_in", shardRetry)
		w.shardErrors[n] = "reopen after failure: " + err.Error()
		f.at = now
		return
	}
	w.shards[n] = sh
	delete(w.shardErrors, n)
	delete(w.failed, n)
	if len(running) > 0 {
		w.awaiting[n] = running
	}
	w.log.Info("failed shard reopened", "shard", n, "jobs", sh.jobs.Len())
	for _, r := range f.parked {
		w.applyRemoteOutcome(outcomeOf(r))
	}
}

// parkResult keeps the result of an execution of a failed shard, and
// reports whether it did.
func (w *Worker) parkResult(r runner.Result) bool {
	f, ok := w.failed[r.Execution.Shard]
	if ok {
		f.parked = append(f.parked, r)
	}
	return ok
}

// outcomeOf is a local result as an Outcome message.
func outcomeOf(r runner.Result) ipc.Outcome {
	ex := r.Execution
	return ipc.Outcome{Shard: ex.Shard, JobID: ex.JobID, Execution: ex.Execution, Outcome: r.Outcome,
		Requeue: r.Outcome.Error == runner.ErrShutdown.Error()}
}
