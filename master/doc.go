// Package master is the front door and the supervisor of a tock cluster.
//
// The master owns the listeners and every client connection, the rule set
// and the shard map. It parses client lines, routes each command to the
// worker that owns the job's shard, and writes replies back in request
// order. It starts workers by re-executing its own binary, watches their
// heartbeats and exits, replaces crashed or hung ones, and moves shards
// between workers for phased restarts and scaling.
//
// Invariant: each shard has at most one owner, and a request for a shard is
// either in flight at its owner or held in the shard's queue — never
// dropped. During a handoff the shard has no owner and its requests are
// held; they are released, in order, to the new owner once it has replayed
// the shard.
package master
