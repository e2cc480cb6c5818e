package worker

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
	"github.com/tockd/tock/worker/runner"
)

// commitBatch is a batch of replies that may be sent only once logs are
// synced. barrier, when set, is closed after the batch is out.
type commitBatch struct {
	logs    []store.ShardLog
	replies []ipc.Reply
	barrier chan struct{}
	// execs start once their shard's log is synced: a job's triggered
	// record is durable before its execution starts.
	execs []pendingExec
}

// pendingExec is an execution waiting for its triggered record's sync.
type pendingExec struct {
	log store.ShardLog
	ex  runner.Execution
}

// syncFailure reports a log whose sync failed to the loop, which fails and
// reopens its shard; dropped are the executions not started because of it.
type syncFailure struct {
	log     store.ShardLog
	err     error
	dropped []runner.Execution
}

// committer syncs logs and then sends the replies waiting for them. It takes
// every batch queued while it was syncing and covers them with one fsync per
// log: this is the group commit that lets fsync = always keep up with
// pipelined traffic.
type committer struct {
	in      chan commitBatch
	link    *ipc.Link
	log     hclog.Logger
	metrics *metrics // fsync durations and batch sizes
	done    chan struct{}
	submit  func(runner.Execution)
	// failures go to the loop (failSynced); buffered, and the loop drains
	// it on every turn.
	failures chan syncFailure
}

func newCommitter(link *ipc.Link, log hclog.Logger, m *metrics, submit func(runner.Execution)) *committer {
	c := &committer{in: make(chan commitBatch, 1024), link: link, log: log, metrics: m, done: make(chan struct{}),
		submit: submit, failures: make(chan syncFailure, 1024)}
	go c.run()
	return c
}

func (c *committer) run() {
	defer close(c.done)
	for b := range c.in {
		batches := []commitBatch{b}
	drain:
		for len(batches) < 1024 {
			select {
			case nb, ok := <-c.in:
				if !ok {
					break drain
				}
				batches = append(batches, nb)
			default:
				break drain
			}
		}
		c.commit(batches)
	}
}

func (c *committer) commit(batches []commitBatch) {
	acks := 0
	for _, b := range batches {
		acks += len(b.replies)
	}
	if acks > 0 {
		c.metrics.batch.Observe(float64(acks))
	}
	// Every log is synced (or has failed) before any execution starts or
	// any reply goes out: an execution starts only after its own
	// triggered record is durable, and a failed shard's replies become
	// errors while the other shards' acks still go out.
	failed := c.syncAll(batches)
	dropped := map[store.ShardLog][]runner.Execution{}
	for _, b := range batches {
		syncErr := ""
		for _, l := range b.logs {
			if err := failed[l]; err != nil {
				syncErr = unavailable(err)
			}
		}
		for _, pe := range b.execs {
			if failed[pe.log] != nil {
				dropped[pe.log] = append(dropped[pe.log], pe.ex)
				continue
			}
			c.submit(pe.ex)
		}
		for _, r := range b.replies {
			if syncErr != "" && r.Kind == ipc.KindOK {
				r = ipc.Reply{Seq: r.Seq, Kind: ipc.KindError, Err: syncErr}
			}
			if err := c.link.SendReply(r); err != nil {
				c.log.Debug("send reply", "error", err)
			}
		}
		if b.barrier != nil {
			close(b.barrier)
		}
	}
	for l, err := range failed {
		c.failures <- syncFailure{log: l, err: err, dropped: dropped[l]}
	}
}

// unavailable is the error a client gets for a mutation of a failed shard.
func unavailable(err error) string { return "shard unavailable: " + err.Error() }

// syncAll syncs every log the batches touched, once each, and returns the
// failures. With fsync = always the logs are journaled (store.Journal,
// journal.go): the first Sync fsyncs the worker's journal, which covers
// every log, so a group commit costs one fsync however many shard files it
// touched, and the logs are synced one after the other. Logs that fsync
// their own files (a test's wrapped log) are synced concurrently: the
// filesystem folds concurrent fsyncs into one journal commit, about one
// fsync's time rather than one per file (issue 11: 8 files, 1.8-2.1 ms
// concurrently against 4.5-9.6 ms one after the other on this machine's
// ext4, and 4-5x the CPU of one journal fsync). Each shard keeps its own
// file, so it stays separable for a handoff.
func (c *committer) syncAll(batches []commitBatch) map[store.ShardLog]error {
	var logs []store.ShardLog
	seen := map[store.ShardLog]bool{}
	for _, b := range batches {
		for _, l := range b.logs {
			if !seen[l] {
				seen[l] = true
				logs = append(logs, l)
			}
		}
	}
	errs := syncLogsObserved(logs, true, c.metrics.fsync)
	failed := map[store.ShardLog]error{}
	for i, err := range errs {
		if err != nil {
			c.log.Error("sync shard log", "error", err)
			failed[logs[i]] = err
		}
	}
	return failed
}

// syncLogs syncs logs, concurrently or one after the other (the latter
// only for BenchmarkGroupCommitSync's comparison), and returns each error.
func syncLogs(logs []store.ShardLog, concurrently bool) []error {
	return syncLogsObserved(logs, concurrently, nil)
}

// syncLogsObserved is syncLogs observing each fsync's duration in h (safe
// from several goroutines) when h is not nil.
func syncLogsObserved(logs []store.ShardLog, concurrently bool, h *ipc.SyncHistogram) []error {
	errs := make([]error, len(logs))
	sync1 := func(i int, l store.ShardLog) {
		start := time.Now()
		errs[i] = l.Sync()
		if h != nil {
			h.Observe(time.Since(start).Seconds())
		}
	}
	if len(logs) == 1 || !concurrently || allJournaled(logs) {
		for i, l := range logs {
			sync1(i, l)
		}
		return errs
	}
	var wg sync.WaitGroup
	for i, l := range logs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sync1(i, l)
		}()
	}
	wg.Wait()
	return errs
}

// allJournaled reports whether every log syncs through a journal
// (store.Journal): then the first Sync's one fsync covers them all, and
// the others only check that it did, so there is nothing to overlap.
func allJournaled(logs []store.ShardLog) bool {
	for _, l := range logs {
		if j, ok := l.(interface{ Journaled() bool }); !ok || !j.Journaled() {
			return false
		}
	}
	return true
}

// submit queues a batch.
func (c *committer) queue(b commitBatch) { c.in <- b }

// wait blocks until every batch submitted so far is out.
func (c *committer) wait() {
	ch := make(chan struct{})
	c.in <- commitBatch{barrier: ch}
	<-ch
}

func (c *committer) close() {
	close(c.in)
	<-c.done
}
