// Package worker is the process that owns shards of the job store.
//
// A worker is started by the master (`tock worker`, never by hand) with its
// IPC link on fd 3. It says Hello, receives its settings, shards and the
// rule set, opens and replays its shards, and then runs one event loop that
// owns all of its state: requests from the master, the scheduler tick at
// the configured framerate, execution results from the pipeline, and the
// heartbeat. Only the loop touches the stores, so they need no locks.
//
// Invariants:
//   - a mutating request is answered only after its record is written and,
//     with fsync = always, synced (group commit: one fsync covers every
//     batch queued while the previous one ran);
//   - a write that fails is rolled back in memory and answered ERROR;
//   - every status change (triggered, executed, failed) is written to the
//     shard's log before anyone can observe it through a reply;
//   - the tick and request handling never wait for an execution.
//
// When the link reaches EOF the master is gone and the worker exits.
package worker
