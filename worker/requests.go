package worker

import (
	"fmt"

	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
)

// handleRequest applies one request to the in-memory store. Reads are
// answered at once; mutations queue their record and reply until endBatch.
func (w *Worker) handleRequest(req ipc.Request) {
	w.requests.Add(1)
	if req.Op == ipc.OpQuery || req.Op == ipc.OpStat {
		w.reply(w.answerAll(req))
		return
	}
	sh, ok := w.shards[req.Shard]
	if !ok {
		w.reply(w.notServed(req))
		return
	}
	switch req.Op {
	case ipc.OpGet:
		j, ok := sh.jobs.Get(req.Key)
		if !ok {
			w.reply(ipc.Reply{Seq: req.Seq, Kind: ipc.KindError, Err: "not found"})
			return
		}
		w.reply(ipc.Reply{Seq: req.Seq, Kind: ipc.KindJob, Status: j.Status, Execution: j.Execution})
	case ipc.OpInfo:
		j, ok := sh.jobs.Get(req.Key)
		if !ok {
			w.reply(ipc.Reply{Seq: req.Seq, Kind: ipc.KindError, Err: "not found"})
			return
		}
		w.reply(ipc.Reply{Seq: req.Seq, Kind: ipc.KindInfo, Status: j.Status, Execution: j.Execution, Outcome: j.Outcome})
	case ipc.OpList:
		w.reply(listPage(sh, req))
	case ipc.OpSet:
		if req.Retried && sh.setInEffect(req.Key, req.Execution) {
			// The worker this SET was first sent to applied it and died
			// before replying; this shard replayed it and may have run
			// the job already. Applying it again would re-plan the job
			// and run it twice with no crash of the run in between.
			// Acknowledged with the batch, after what came before it.
			w.batch = append(w.batch, batchReply{r: ipc.Reply{Seq: req.Seq, Kind: ipc.KindOK}, sh: sh})
			return
		}
		sh.remember(req.Key)
		sh.jobs.Set(req.Key, req.Execution)
		delete(w.awaiting[sh.id], req.Key) // a re-SET supersedes a remote run
		w.queue(sh, store.Record{Type: store.RecordJob, Job: store.Job{ID: req.Key, Execution: req.Execution, Status: store.Planned}})
		w.batch = append(w.batch, batchReply{r: ipc.Reply{Seq: req.Seq, Kind: ipc.KindOK}, sh: sh})
	case ipc.OpRemove:
		if _, ok := sh.jobs.Get(req.Key); !ok {
			w.reply(ipc.Reply{Seq: req.Seq, Kind: ipc.KindError, Err: "not found"})
			return
		}
		sh.remember(req.Key)
		sh.jobs.Remove(req.Key)
		delete(w.awaiting[sh.id], req.Key)
		w.queue(sh, store.Record{Type: store.RecordJobRemoval, ID: req.Key})
		w.batch = append(w.batch, batchReply{r: ipc.Reply{Seq: req.Seq, Kind: ipc.KindOK}, sh: sh})
	}
}

// answerAll answers QUERY and STAT over every owned shard.
func (w *Worker) answerAll(req ipc.Request) ipc.Reply {
	if req.Op == ipc.OpStat {
		st := w.statusNow()
		return ipc.Reply{Seq: req.Seq, Kind: ipc.KindStat, Stat: ipc.Stat{
			JobsTotal: st.JobsTotal, JobsPlanned: st.JobsPlanned, JobsTriggered: st.JobsTriggered,
			JobsExecuted: st.JobsExecuted, JobsFailed: st.JobsFailed,
			ExecutionsPending: st.ExecutionsPending, ExecutionsInflight: st.ExecutionsInflight,
			Compression: st.Compression,
		}}
	}
	shards := w.shards
	if req.Shard != ipc.AllShards {
		sh, ok := w.shards[req.Shard]
		if !ok {
			return w.notServed(req)
		}
		shards = map[int]*shard{sh.id: sh}
	}
	var jobs []ipc.JobLine
	for _, sh := range shards {
		sh.jobs.Query(req.Key, func(j store.Job) bool {
			jobs = append(jobs, ipc.JobLine{ID: j.ID, Status: j.Status, Execution: j.Execution})
			return true
		})
	}
	return ipc.Reply{Seq: req.Seq, Kind: ipc.KindJobs, Jobs: jobs}
}

// reply sends a reply that needs no commit. It must not overtake an earlier
// mutation's reply of the same batch only on the same connection, which the
// master orders; so reads go out at once.
func (w *Worker) reply(r ipc.Reply) {
	if err := w.link.SendReply(r); err != nil {
		w.log.Debug("send reply", "error", err)
	}
}

// queue adds a record to sh's batch.
func (w *Worker) queue(sh *shard, r store.Record) {
	if len(sh.pending) == 0 {
		w.touched = append(w.touched, sh)
	}
	sh.pending = append(sh.pending, r)
}

// batchReply is a mutation's reply waiting for its shard's write.
type batchReply struct {
	r  ipc.Reply
	sh *shard
}

// endBatch writes every touched shard once, turns the replies of a shard
// whose write failed into errors (the shard fails and is reopened from its
// file, see fault.go), and hands the replies to the committer, which sends
// them once the logs are synced, and the batch's executions, which it
// starts once their triggered records are durable.
func (w *Worker) endBatch() {
	if len(w.touched) == 0 && len(w.batch) == 0 {
		return
	}
	failed := map[*shard]string{}
	var broken []*shard
	var logs []store.ShardLog
	// A stream's acks are what makes a write acknowledged (a quorum has
	// it), whatever database.fsync says; nats-server's own sync_interval
	// decides its fsyncs.
	durable := w.jetStreamMode() || w.set.Fsync == "always" && w.set.Persistence != "memory"
	b := commitBatch{replies: make([]ipc.Reply, 0, len(w.batch))}
	for _, sh := range w.touched {
		execs := sh.execs
		sh.execs = nil
		if err := sh.flush(); err != nil {
			w.log.Error("write failed", "shard", sh.id, "error", err)
			if failsShard(sh) {
				failed[sh] = unavailable(err)
				broken = append(broken, sh)
			} else {
				failed[sh] = "write failed: " + err.Error()
			}
			for _, ex := range execs {
				w.untrack(ex.Shard, ex.JobID, ex.Execution)
			}
			continue
		}
		logs = append(logs, sh.log)
		for _, ex := range execs {
			pe := pendingExec{ex: ex}
			if durable {
				pe.log = sh.log
			}
			b.execs = append(b.execs, pe)
		}
	}
	w.touched = w.touched[:0]
	for _, br := range w.batch {
		if reason, ok := failed[br.sh]; ok {
			br.r = ipc.Reply{Seq: br.r.Seq, Kind: ipc.KindError, Err: reason}
		}
		b.replies = append(b.replies, br.r)
	}
	w.batch = w.batch[:0]
	if durable {
		b.logs = logs
		w.commit.queue(b)
	} else {
		w.sendNow(b)
	}
	for _, sh := range broken {
		w.failShard(sh, fmt.Errorf("write: %w", sh.lastErr))
	}
}

// sendNow hands out a batch that waits for no sync (fsync is not
// "always"): every batch of such a worker comes here, so none waits in the
// committer before it, and sending from the loop saves a goroutine switch
// per batch. Its executions start at once, as the committer would start
// them, and its replies go out with one lock of the link.
func (w *Worker) sendNow(b commitBatch) {
	if n := len(b.replies); n > 0 {
		w.metrics.batch.Observe(float64(n))
	}
	for _, pe := range b.execs {
		w.pipe.Submit(pe.ex)
	}
	if err := w.link.SendReplies(b.replies); err != nil {
		w.log.Debug("send replies", "error", err)
	}
}

// notServed answers a request for a shard this worker does not serve: one
// that failed to open gets the reason, one it does not own goes back to the
// master to be routed again.
func (w *Worker) notServed(req ipc.Request) ipc.Reply {
	if reason, ok := w.shardErrors[req.Shard]; ok {
		return ipc.Reply{Seq: req.Seq, Kind: ipc.KindError, Err: "shard unavailable: " + reason}
	}
	return ipc.Reply{Seq: req.Seq, Kind: ipc.KindNotOwned}
}

// maxPageBytes bounds the ids of one shard's page, so a page of long ids
// stays a reasonable frame; the master asks again after the last one.
const maxPageBytes = 1 << 20

// listPage answers one shard's share of a paged listing.
func listPage(sh *shard, req ipc.Request) ipc.Reply {
	page, more := sh.jobs.Page(store.PageQuery{Prefix: req.Key, After: req.After, Limit: int(req.Limit),
		Statuses: req.Statuses, MaxBytes: maxPageBytes})
	r := ipc.Reply{Seq: req.Seq, Kind: ipc.KindPage, More: more}
	if len(page) > 0 {
		r.Jobs = make([]ipc.JobLine, len(page))
		for i, j := range page {
			r.Jobs[i] = ipc.JobLine{ID: j.ID, Status: j.Status, Execution: j.Execution}
		}
	}
	return r
}
