package worker

import (
	"time"

	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
	"github.com/tockd/tock/worker/runner"
)

// maxTriggersPerTick bounds the work of one tick so requests keep flowing
// when a burst of jobs falls due; the rest go on the next tick.
const maxTriggersPerTick = 20000

// tick triggers every due job of every shard, writes the status changes and
// hands the executions to the pipeline.
func (w *Worker) tick(now time.Time) {
	w.lastTick = now
	ns := now.UnixNano()
	for _, sh := range w.shards {
		if w.draining(sh.id) {
			continue // being handed over: its next owner triggers it
		}
		plan := Due(sh.jobs, w.rules, ns, maxTriggersPerTick)
		for _, t := range plan {
			w.lateness.add(ns - t.record.Job.Execution)
			w.metrics.triggered(ns - t.record.Job.Execution)
			w.queue(sh, t.record)
			if t.exec == nil {
				// Due with no rule: failed without running. Logged here,
				// the runner logs the failures of executions it ran.
				w.dispatch.Failures().Warn("execution failed", "job", t.record.Job.ID, "rule", "", "runner", "", "error", t.record.Job.Outcome.Error)
			}
			if t.exec != nil {
				t.exec.Shard = sh.id
				w.track(sh.id, t.exec.JobID, t.exec.Execution)
				// Started by the committer once the triggered record is
				// durable (endBatch).
				sh.execs = append(sh.execs, *t.exec)
			}
		}
	}
	w.endBatch()
	w.applyResults()
	w.finishDrains(now)
	w.endGraces(now)
	for _, sh := range w.shards {
		w.reapCompaction(sh, false)
		w.maybeCompact(sh, now)
	}
	w.retryFailed(now)
}

// minWakeGap is the least time between two early wakes: it bounds the
// wake rate (to 4000/s) when jobs fall due continuously.
const minWakeGap = 250 * time.Microsecond

// armWake sets the wake timer for the earliest planned job when that is
// sooner than the next tick; the ticker handles the rest.
func (w *Worker) armWake(t *time.Timer) {
	next, ok := int64(0), false
	for _, sh := range w.shards {
		if n, has := sh.jobs.NextDue(); has && (!ok || n < next) {
			next, ok = n, true
		}
	}
	if !ok {
		return
	}
	at := time.Unix(0, next)
	if earliest := w.lastTick.Add(minWakeGap); at.Before(earliest) {
		at = earliest
	}
	if at.After(w.lastTick.Add(time.Second / time.Duration(w.set.Framerate))) {
		return // the ticker comes first
	}
	if !w.wakeAt.IsZero() && !at.Before(w.wakeAt) {
		return // already armed for earlier
	}
	w.wakeAt = at
	t.Reset(time.Until(at))
}

// trigger is the scheduler's decision for one due job: the status record to
// write and, when a rule matched, the execution to start.
type trigger struct {
	record store.Record
	exec   *runner.Execution
}

// Due is the pure scheduling step: it pops the jobs of jobs due at now (at
// most max), matches each against rules and returns what to persist and
// run. A job with no matching rule fails at once. It does no I/O.
func Due(jobs *store.Jobs, rules *store.Rules, now int64, max int) []trigger {
	var out []trigger
	jobs.PopDue(now, max, func(j store.Job, gen uint64) {
		rule, ok := rules.Match(j.ID)
		if !ok {
			o := &store.Outcome{StartedAt: now, ExitCode: -1, Error: "no matching rule"}
			jobs.SetStatus(j.ID, store.Failed, o)
			out = append(out, trigger{record: statusRecord(j.ID, j.Execution, store.Failed, o)})
			return
		}
		out = append(out, trigger{
			record: statusRecord(j.ID, j.Execution, store.Triggered, nil),
			exec:   &runner.Execution{JobID: j.ID, Execution: j.Execution, RuleID: rule.ID, Runner: rule.Runner, Gen: gen},
		})
	})
	return out
}

func statusRecord(id string, exec int64, st store.Status, o *store.Outcome) store.Record {
	return store.Record{Type: store.RecordStatus, Job: store.Job{ID: id, Execution: exec, Status: st, Outcome: o}}
}

func (w *Worker) track(shard int, id string, exec int64) {
	m := w.running[shard]
	if m == nil {
		m = map[string]int64{}
		w.running[shard] = m
	}
	m[id] = exec
}

func (w *Worker) untrack(shard int, id string, exec int64) {
	if m := w.running[shard]; m != nil && m[id] == exec {
		delete(m, id)
	}
}

// applyResults records finished executions. A result for a shard this
// worker released goes to the master, which forwards it to the new owner.
func (w *Worker) applyResults() {
	w.results = w.pipe.TakeResults(w.results[:0])
	if len(w.results) == 0 {
		return
	}
	for _, res := range w.results {
		ex := res.Execution
		w.untrack(ex.Shard, ex.JobID, ex.Execution)
		o := res.Outcome
		// Cut short by this worker's shutdown: not an outcome of the job.
		// It stays triggered, so it runs again (at-least-once): here after
		// the next start, or at the shard's new owner.
		interrupted := o.Error == runner.ErrShutdown.Error()
		sh, ok := w.shards[ex.Shard]
		if !ok && w.parkResult(res) {
			continue // its shard is down; recorded when it reopens
		}
		if exec, awaited := w.awaiting[ex.Shard][ex.JobID]; ok && awaited && exec == ex.Execution {
			// Started before the shard was reopened: awaited like an
			// old owner's execution.
			w.applyRemoteOutcome(outcomeOf(res))
			continue
		}
		if !ok {
			w.send(ipc.TypeOutcome, ipc.Outcome{Shard: ex.Shard, JobID: ex.JobID, Execution: ex.Execution, Outcome: o, Requeue: interrupted})
			continue
		}
		if interrupted {
			continue
		}
		w.metrics.executed(ex.Runner.Kind.String(), o.Succeeded(), o.Duration)
		st := store.Executed
		if !o.Succeeded() {
			st = store.Failed
		}
		if sh.jobs.Complete(ex.JobID, ex.Gen, st, &o) {
			w.queue(sh, statusRecord(ex.JobID, ex.Execution, st, &o))
		}
	}
	w.endBatch()
}

// applyRemoteOutcome records the outcome of a job of an acquired shard that
// ran to its end in the shard's previous owner.
func (w *Worker) applyRemoteOutcome(o ipc.Outcome) {
	sh, ok := w.shards[o.Shard]
	if !ok {
		if _, down := w.shardErrors[o.Shard]; down {
			w.log.Warn("outcome for a shard that cannot be served; the job runs again once it opens", "shard", o.Shard, "job", o.JobID)
			return
		}
		// Released after the master forwarded it: back to the master, which
		// holds it for the shard's next owner (it lists the job as running).
		w.send(ipc.TypeOutcome, o)
		return
	}
	if exec, ok := w.awaiting[o.Shard][o.JobID]; !ok || exec != o.Execution {
		return // re-SET or removed meanwhile
	}
	delete(w.awaiting[o.Shard], o.JobID)
	j, ok := sh.jobs.Get(o.JobID)
	if !ok || j.Status != store.Triggered || j.Execution != o.Execution {
		return
	}
	if o.Requeue {
		sh.jobs.Replan(o.JobID, o.Execution) // due: the next tick triggers it here
		return
	}
	st := store.Executed
	if !o.Outcome.Succeeded() {
		st = store.Failed
	}
	out := o.Outcome
	sh.jobs.SetStatus(o.JobID, st, &out)
	w.queue(sh, statusRecord(o.JobID, o.Execution, st, &out))
}
