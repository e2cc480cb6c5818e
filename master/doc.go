// Package master is the front door and the supervisor of a tock cluster.
//
// The master owns the listeners and every client connection, the rule set
// and the shard map. It parses client lines, routes each command to the
// worker that owns the job's shard, and writes replies back in request
// order. It starts workers by re-executing its own binary (through a
// Spawner, so tests can script fake workers), watches their heartbeats and
// exits, replaces crashed or hung ones, and moves shards between workers
// for phased restarts and scaling.
//
// Invariant: each shard has exactly one owner — the worker that has it
// open, or, while none has, the one process meant to open it next — and a
// request for a shard is either in flight at its owner or held in the
// shard's queue, never dropped. No two processes ever have a shard open:
// the OS enforces it (each worker holds the shard file's lock, and the
// file records its owner's epoch; see docs/operations.md), and the master
// never gives a shard to a worker while a process that may still write it
// is alive.
//
// # The handoff state machine
//
// States and transitions are in states.go (one log line each: "worker
// state", "shard state"); the handoff itself is handoff.go. A shard moves
// from worker A (old) to worker B (new):
//
//	shard state  who has it open      requests  on failure
//	-----------  -------------------  --------  ---------------------------------------------
//	owned        A                    to A      -
//	releasing    A, closing it        held      Release times out or A dies: A is killed and
//	                                            reaped, then the handoff goes on from disk.
//	                                            Released.Error (a failed final fsync): the
//	                                            handoff fails and A reopens it (reclaiming).
//	acquiring    nobody, then B       held      Acquire times out or B dies: B is killed and
//	                                            reaped first; then A takes it back
//	                                            (reclaiming), or, if A is dead, it is
//	                                            orphaned to B's slot.
//	reclaiming   nobody, then A       held      A fails too: A is killed and reaped; its
//	                                            successor opens it (orphaned).
//	orphaned     nobody               held      the slot's next worker (the supervisor's
//	                                            replacement) opens it at boot; held requests
//	                                            expire as "shard unavailable" if that takes
//	                                            longer than the boot timeout.
//	owned        B                    to B      -
//
// Worker states: booting → serving → draining (replaced or removed; its
// shards leave one by one, its executions run on) → retiring (told to
// shut down) → exited; killed → exited when the master SIGKILLs it. A
// killed worker's shards are opened by another only once it is reaped.
//
// Executions that span a handoff: A lists the jobs still running for the
// shard in Released.Running; B waits for their outcomes instead of running
// them again. The master tracks each (spanning.go) until its outcome
// arrives from A; if A dies first, the master requeues the job to the
// shard's owner, which runs it again (at-least-once, as after a crash).
package master
