package worker

import (
	"slices"
	"time"

	"github.com/tockd/tock/ipc"
)

// A planned hand-over of a shard to another host (persistence =
// "jetstream", docs/scale-out.md "Executions across a hand-over") sends a
// Release with DrainNs: the new owner cannot learn what still runs here,
// so instead of listing the running executions in Released.Running (as a
// local handoff does, whose new owner waits for their outcomes) the worker
// keeps the shard open without triggering its jobs, lets its executions
// end and writes their outcomes to the shard's log, and only then closes
// it and answers Released. Bounded by DrainNs: what still runs then is
// listed as usual (at-least-once: the new owner runs it again).

// drain is a deferred Release.
type drain struct {
	rel   ipc.Release
	until time.Time
}

// deferRelease defers r when it asks for a drain and one of its shards
// has executions running here; it reports whether it did.
func (w *Worker) deferRelease(r ipc.Release) bool {
	if r.DrainNs <= 0 || !w.busy(r.Shards) {
		return false
	}
	w.drains = append(w.drains, drain{rel: r, until: time.Now().Add(time.Duration(r.DrainNs))})
	w.log.Info("release waits for running executions", "shards", r.Shards, "up_to", time.Duration(r.DrainNs))
	return true
}

// busy reports whether an open shard of shards has executions running here.
func (w *Worker) busy(shards []int) bool {
	for _, n := range shards {
		if _, open := w.shards[n]; open && len(w.running[n]) > 0 {
			return true
		}
	}
	return false
}

// draining reports whether shard n waits in a deferred Release.
func (w *Worker) draining(n int) bool {
	for _, d := range w.drains {
		if slices.Contains(d.rel.Shards, n) {
			return true
		}
	}
	return false
}

// finishDrains answers the deferred Releases whose executions have ended
// (their outcomes are queued to the log; release syncs it) or whose time
// is up.
func (w *Worker) finishDrains(now time.Time) {
	for i := 0; i < len(w.drains); {
		d := w.drains[i]
		idle := !w.busy(d.rel.Shards)
		if !idle && now.Before(d.until) {
			i++
			continue
		}
		if !idle {
			w.log.Warn("executions still running when the release's drain ended; the shard's next owner runs them again", "shards", d.rel.Shards)
		}
		w.drains = slices.Delete(w.drains, i, i+1)
		d.rel.DrainNs = 0
		w.release(d.rel)
	}
}
