package worker

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
	"github.com/tockd/tock/worker/runner"
)

// shard is one shard owned by this worker: its jobs and its log.
type shard struct {
	id   int
	jobs *store.Jobs
	log  store.ShardLog
	path string

	// pending are records encoded in this batch, written once at its end.
	pending []store.Record
	// undo restores the jobs of this batch if the write fails.
	undo []undoEntry
	// dirty: written since the last sync.
	dirty bool
	// execs are executions triggered in this batch, started once their
	// triggered records are durable (endBatch).
	execs []runner.Execution
	// epoch is the owner epoch the shard was opened at; lastErr the last
	// write error (fault.go).
	epoch   uint64
	lastErr error
	// fenceSeq is the stream sequence of the shard's fence record
	// (persistence = "jetstream"; 0 otherwise): a reopen after a failure
	// fences again only over that one (jslog.ReopenShard).
	fenceSeq uint64
	// openedAt is when this worker opened the shard (wall clock, ns): a
	// job whose last run started since was planned or triggered at open.
	openedAt int64
	// grace are jobs another host left triggered, awaited until graceUntil
	// (takeover.go).
	grace      map[string]int64
	graceUntil time.Time

	compaction  string // idle, running, success, failure
	lastCompact time.Time
	compactDone chan error // set while a compaction runs
}

// undoEntry is the state of a job before a mutation of this batch.
type undoEntry = store.Saved

// ShardPath is the logfile of shard n under dataDir.
func ShardPath(dataDir string, n int) string {
	return filepath.Join(dataDir, "shards", fmt.Sprintf("%03d.log", n))
}

// openShard replays and opens shard n for an owner at epoch (see
// store.OpenShard: the file is locked, and refused if a newer owner has
// it). Jobs left triggered without an outcome (the worker died while they
// ran) are planned again, unless they are still running in another worker
// (running), so delivery is at-least-once across crashes and exactly-once
// across handoffs.
//
// With a read-ahead (pre), only the records written after it are replayed.
// persistence = "jetstream" opens shards with openStreamShard instead
// (w.open).
func openShard(set ipc.Settings, n int, epoch uint64, running map[string]int64, pre *staged, log hclog.Logger, opts runOptions) (*shard, error) {
	sh := &shard{id: n, jobs: store.NewJobs(), compaction: "idle", lastCompact: time.Now(), epoch: epoch, openedAt: time.Now().UnixNano()}
	if set.Persistence == "memory" {
		sh.log = store.NewMemoryLog()
		return sh, nil
	}
	sh.path = ShardPath(set.DataDir, n)
	if err := os.MkdirAll(filepath.Dir(sh.path), 0o755); err != nil {
		return nil, fmt.Errorf("open shard %d: %w", n, err)
	}
	journal, err := opts.journal.journalFor(set)
	if err != nil {
		return nil, fmt.Errorf("open shard %d: %w", n, err)
	}
	so := store.ShardOptions{Policy: fsyncPolicy(set.Fsync), Epoch: epoch, Fsync: opts.fsync, Journal: journal}
	if pre != nil {
		sh.jobs, so.From, so.Seen = pre.jobs, pre.offset, pre.owner
	}
	so.Jobs = sh.jobs
	lf, opened, err := store.OpenShard(sh.path, so)
	if err != nil {
		return nil, fmt.Errorf("open shard %d: %w", n, err)
	}
	res := opened.Replay
	if opened.Recovered > 0 {
		log.Warn("put journaled writes a crash lost back into shard files", "shard", n, "recovered", opened.Recovered)
	}
	if res.Trimmed {
		log.Warn("trimmed torn tail of shard log", "shard", n, "path", sh.path, "bytes", res.TrimmedBytes)
	}
	sh.log = lf
	if opts.wrapLog != nil {
		sh.log = opts.wrapLog(n, sh.log)
	}
	rerun := replanTriggered(sh, running)
	log.Debug("shard opened", "shard", n, "records", res.Records, "from", so.From, "jobs", sh.jobs.Len(), "rerun", rerun,
		"epoch", epoch, "previous_epoch", opened.Previous.Epoch, "file_id", fmt.Sprintf("%016x", opened.Owner.FileID))
	return sh, nil
}

// replanTriggered plans again the jobs of a just-opened shard left
// triggered without an outcome, except those still running in the old
// owner (running), and returns how many were triggered.
func replanTriggered(sh *shard, running map[string]int64) int {
	var rerun []store.Job
	sh.jobs.Query("", func(j store.Job) bool {
		if j.Status == store.Triggered {
			rerun = append(rerun, j)
		}
		return true
	})
	for _, j := range rerun {
		if exec, ok := running[j.ID]; ok && exec == j.Execution {
			continue // still running in the old owner; its outcome will come
		}
		sh.jobs.Replan(j.ID, j.Execution) // a second attempt, not a new schedule
	}
	return len(rerun)
}

// open opens shard n the way the persistence setting says: from its
// JetStream stream (jetstream.go), or with openShard (file, memory).
func (w *Worker) open(n int, epoch uint64, running map[string]int64, pre *staged, reopen *failedShard) (*shard, error) {
	if w.jetStreamMode() {
		return w.openStreamShard(n, epoch, running, reopen)
	}
	return openShard(w.set, n, epoch, running, pre, w.log, w.opts)
}

// setInEffect reports whether a retried SET of id at exec (ipc.Request
// Retried) is already in effect here, so that applying it again would only
// run the job a second time. It is when the job has that execution and is
// planned or triggered (the SET, or one identical to it, is what planned
// it), or finished a run that started after this worker opened the shard
// (it was planned or triggered at open, so the SET had been applied by the
// worker that died). A job that had already run when the shard was opened
// is planned again: then the lost SET asked for a new run.
func (sh *shard) setInEffect(id string, exec int64) bool {
	j, ok := sh.jobs.Get(id)
	if !ok || j.Execution != exec {
		return false
	}
	switch j.Status {
	case store.Planned, store.Triggered:
		return true
	case store.Executed, store.Failed:
		return j.Outcome != nil && j.Outcome.StartedAt >= sh.openedAt
	}
	return false
}

func fsyncPolicy(s string) store.FsyncPolicy {
	switch s {
	case "interval":
		return store.FsyncInterval
	case "never":
		return store.FsyncNever
	}
	return store.FsyncAlways
}

// remember records the job's state before a mutation, for rollback. A
// memory log cannot fail a write, so it needs none.
func (sh *shard) remember(id string) {
	if !sh.log.Durable() {
		return
	}
	sh.undo = append(sh.undo, sh.jobs.Save(id))
}

// rollback undoes this batch's mutations, newest first.
func (sh *shard) rollback() {
	for i := len(sh.undo) - 1; i >= 0; i-- {
		sh.jobs.Restore(sh.undo[i])
	}
}

// flush writes the batch's records in one write. On error the batch's
// mutations are rolled back and the error returned.
func (sh *shard) flush() error {
	defer func() { sh.pending, sh.undo = sh.pending[:0], sh.undo[:0] }()
	if len(sh.pending) == 0 {
		return nil
	}
	if err := sh.log.Write(sh.pending); err != nil {
		sh.rollback()
		sh.lastErr = err
		return fmt.Errorf("write shard %d: %w", sh.id, err)
	}
	sh.dirty = true
	return nil
}

// close closes the log; a running compaction must have been reaped.
func (sh *shard) close() error {
	if err := sh.log.Close(); err != nil {
		return fmt.Errorf("close shard %d: %w", sh.id, err)
	}
	return nil
}
