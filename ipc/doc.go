// Package ipc is the wire protocol between the tock master and its workers,
// and the status types both sides share.
//
// # Transport
//
// Each worker is started with one end of a Unix socketpair as fd 3 (see
// WorkerFD) and the environment variable in EnvWorker set. Master death
// reaches the worker as EOF on that link; the worker then exits.
//
// # Framing
//
// Every message is one frame:
//
//	u32 big-endian length N | u8 type | N-1 payload bytes
//
// N counts the type byte, is at least 1 and at most MaxFrame. A frame that
// breaks these rules, or whose payload does not decode, is a protocol error:
// the reader returns an error and the link is closed. Decoding never panics.
//
// Frames are coalesced on write: every frame queued while a write is in
// flight goes out in the next single write, so pipelined client traffic
// costs one syscall per batch on each side, not one per request.
//
// # Handshake
//
// The worker speaks first with Hello{Proto, PID, Index, Phase}. The master
// checks Proto == ProtoVersion and answers Welcome (the worker's settings,
// its shards and the rule set), or closes the link. The worker opens and
// replays its shards and answers Ready. Both sides bound the handshake by
// the boot timeout.
//
// # Handoff
//
// Moving shards from worker A to worker B (phased restart, scaling):
//
//	M→B Prepare{shards}    B reads them ahead in the background → Prepared
//	    (the master now holds new requests for one shard at a time)
//	M→A Release{shard}     A answers what it has, syncs, closes → Released{running}
//	M→B Acquire{shard, running}  B reads what A wrote since, opens → Ready
//	    (the master releases the held requests to B)
//	A→M Outcome            results of A's executions still running; the
//	M→B Outcome            master forwards them to the shard's owner
//
// A request that reaches a worker after it released the shard is answered
// KindNotOwned and routed again. Acquire and Release carry a Seq that the
// answer echoes, so a late or duplicated answer is never taken for the
// current one; Welcome and Acquire carry the owner Epoch the worker records
// in the shard file (fencing). A worker that exits writes all its queued
// frames (its last Outcomes) and closes the link first.
//
// # Peer links
//
// Masters of several tock hosts talk the same frames over TCP (mutual TLS
// when configured): the dialing master sends PeerHello{Cluster, Host,
// Proto, PeerProto} as TypePeerHello, the listening one answers its own
// as TypePeerWelcome, or one with Error set before it closes the link
// (another cluster, another ProtoVersion or PeerProto, the same host
// name). Then the dialer sends Requests and Outcomes and reads Replies,
// as a master does with a worker; a request for a shard the other host
// does not own is answered KindNotOwned and never sent on. Both sides
// send TypePeerPing frames so that a silent link is found dead.
//
// # Evolving the protocol
//
// Control messages (Hello, Welcome, Status, ...) are JSON objects: a field
// is added by adding an optional JSON field that older peers ignore. The
// hot-path messages (Request, Reply) are binary; changing their layout
// requires bumping ProtoVersion, and a master refuses workers of another
// version (which a phased restart onto a mismatched binary reports as a
// boot failure).
package ipc
