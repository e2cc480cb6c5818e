// Package cluster decides which tock host serves which shard when several
// hosts share the shards on NATS JetStream (docs/scale-out.md).
//
// Ownership is a lease per shard in a key-value bucket: a host acquires a
// shard by creating its key, renews it every ttl/3 with a compare-and-set
// on the revision it last wrote, and releases it by deleting it at that
// revision. Keys expire after ttl, and the bucket leaves a marker when one
// does, so every host's watch sees a dead host's leases go. The lease only
// says who should serve a shard: the shard's stream refuses appends from
// anyone but the last host that fenced it, so a host that loses its lease
// late can never write over the new owner.
//
// Machine is the lease state machine of one host, pure: time, the
// bucket's answers and watch updates go in, actions come out (KV requests,
// open/close a shard, route changes). Manager runs a Machine against real
// buckets (the KV interface; JetStream's in jetstream.go).
package cluster
