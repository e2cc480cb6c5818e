package master

import (
	"strings"
	"time"

	"github.com/tockd/tock/ipc"
)

// Executions across a lease's closing and reopening (docs/scale-out.md,
// "Executions across a hand-over").
//
// A shard this host closes and then opens again itself (its lease lapsed
// during a NATS outage and it took it back) is reopened with the
// executions that still ran when it was closed, or whose outcome is held
// by the router, as Acquire.Running: the worker waits for their outcomes
// instead of running them a second time, exactly as after a local
// handoff. A shard handed to another host in a planned release
// (rebalancing, a graceful stop) is drained first: the worker stops
// triggering its jobs and lets their executions end and their outcomes
// reach the stream, bounded by maxReleaseDrain.

// maxReleaseDrain bounds how long a planned release waits for running
// executions (at most execution.timeout and half the worker boot timeout,
// within which the Release must be answered); what still runs then runs again
// at the new owner (at-least-once).
const maxReleaseDrain = 5 * time.Second

// drainFor is the Release.DrainNs for a Close: planned hand-overs only (the
// reasons cluster.Machine gives them). A lost or lapsed lease is closed at
// once: another host may be taking the shard.
func (h *hostLeases) drainFor(why string) int64 {
	if !strings.HasPrefix(why, "rebalancing") && why != "shutting down" {
		return 0
	}
	c := h.m.cfg
	// Half the boot timeout at most: the Release is answered within it.
	return int64(min(maxReleaseDrain, c.Execution.Timeout.Duration, c.Cluster.WorkerBootTimeout.Duration/2))
}

// runningOutside lists shard's executions that run in a worker that no
// longer has the shard, or whose outcome the router holds for the shard's
// next owner: the next local owner waits for them (Acquire.Running).
func (m *Master) runningOutside(shard int) []ipc.RunningJob {
	out := m.spans.forShard(shard)
	for _, o := range m.router.heldOutcomes(shard) {
		if !o.Requeue {
			out = append(out, ipc.RunningJob{Shard: o.Shard, JobID: o.JobID, Execution: o.Execution})
		}
	}
	if len(out) > 0 {
		m.log.Info("opening a shard with executions from before its close; their outcomes are awaited, not run again", "shard", shard, "executions", len(out))
	}
	return out
}

// forShard lists the executions of shard that span a handoff.
func (s *spanning) forShard(shard int) []ipc.RunningJob {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ipc.RunningJob
	for k := range s.runs {
		if k.shard == shard {
			out = append(out, ipc.RunningJob{Shard: k.shard, JobID: k.job, Execution: k.exec})
		}
	}
	return out
}

// heldOutcomes is a copy of the outcomes held for shard's next owner.
func (r *Router) heldOutcomes(shard int) []ipc.Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	if shard < 0 || shard >= len(r.shards) {
		return nil
	}
	return append([]ipc.Outcome(nil), r.shards[shard].outcomes...)
}
