// Package store holds tock's durable state: the pure job and rule stores and
// the per-shard append-only logfile they are rebuilt from.
//
// Invariant: a mutation is acknowledged only after its record is in the
// shard's log and, under the configured fsync policy, durable; on startup the
// stores are rebuilt by replaying that log, so what was acknowledged is what
// comes back. A damaged tail left by a crash is trimmed; damage before the
// tail is an error naming the file and offset, never silent loss.
//
// The package has two halves:
//
//   - Pure state (jobs.go, rules.go, records.go): no I/O and no clock. Time
//     is passed in as int64 nanoseconds since the epoch. The codec turns
//     records into ztick-compatible payload bytes and back.
//   - Files (logfile.go, groupcommit.go, replay.go, compact.go): framing,
//     checksums, group commit, torn-tail repair and background compaction.
//     ShardLog is the seam between the two; MemoryLog implements it for
//     persistence = memory.
//
// On-disk format (format version 1):
//
//	file    := header frame*
//	header  := "TOCKLOG\x00" u32 version
//	frame   := u32 length | u32 CRC-32C(payload) | payload   (big-endian, length <= 16 MiB)
//	payload := u8 type, fields (see records.go)
//
// A shard file's first frame is a RecordOwner (file id, owner epoch; see
// owner.go); files from before fencing have none.
package store
