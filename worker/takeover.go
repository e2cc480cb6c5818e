package worker

import (
	"maps"
	"time"

	"github.com/tockd/tock/store"
)

// A shard taken over from another host (persistence = "jetstream") may
// hold jobs that host triggered and is still running, or has just run: a
// host whose lease lapsed in a NATS outage closes the shard, but its
// executions go on and their outcomes are forwarded to the new owner's
// master (docs/scale-out.md, "Executions across a hand-over"). Such jobs
// are awaited for takeoverGrace, like an old worker's executions, before
// they are planned again: an outcome that arrives in time is recorded and
// the job does not run twice; after a crash they run again once the grace
// is over (at-least-once).
const takeoverGrace = 2 * time.Second

// awaitTakeover adds the shard's triggered jobs to running (so they are
// not planned again now) and keeps them as its grace set.
func (sh *shard) awaitTakeover(running map[string]int64) map[string]int64 {
	out := maps.Clone(running)
	if out == nil {
		out = map[string]int64{}
	}
	sh.jobs.Query("", func(j store.Job) bool {
		if j.Status == store.Triggered {
			if _, ok := out[j.ID]; !ok {
				if sh.grace == nil {
					sh.grace = map[string]int64{}
				}
				sh.grace[j.ID] = j.Execution
				out[j.ID] = j.Execution
			}
		}
		return true
	})
	if len(sh.grace) > 0 {
		sh.graceUntil = time.Now().Add(takeoverGrace)
	}
	return out
}

// awaitGrace makes the worker await sh's grace set (applyRemoteOutcome
// records what arrives).
func (w *Worker) awaitGrace(sh *shard) {
	if len(sh.grace) == 0 {
		return
	}
	if w.awaiting[sh.id] == nil {
		w.awaiting[sh.id] = map[string]int64{}
	}
	maps.Copy(w.awaiting[sh.id], sh.grace)
	w.log.Info("awaiting the previous host's outcomes before running its triggered jobs again", "shard", sh.id, "jobs", len(sh.grace), "for", takeoverGrace)
}

// endGraces plans again the grace jobs whose outcome did not come in time.
func (w *Worker) endGraces(now time.Time) {
	for n, sh := range w.shards {
		if len(sh.grace) == 0 || now.Before(sh.graceUntil) {
			continue
		}
		again := 0
		for id, exec := range sh.grace {
			if got, ok := w.awaiting[n][id]; ok && got == exec {
				delete(w.awaiting[n], id)
				if j, ok := sh.jobs.Get(id); ok && j.Status == store.Triggered && j.Execution == exec {
					sh.jobs.Replan(id, exec)
					again++
				}
			}
		}
		sh.grace = nil
		if again > 0 {
			w.log.Info("no outcome from the previous host; its triggered jobs run again", "shard", n, "jobs", again)
		}
	}
}
