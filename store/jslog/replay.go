package jslog

import (
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/tockd/tock/store"
)

// replayer applies a shard stream's messages, in sequence order, to a job
// store. Batches apply as they come. A snapshot (begin marker, chunks, end
// marker, contiguous because the writer holds its appends while it
// enqueues them) is built in a store of its own and replaces the state at
// its end marker: it is the whole state as of its begin marker, so what
// came before it (including records a concurrent purge may have half
// removed) no longer counts. A snapshot cut short (any other message
// before its end: the writer died or was fenced in the middle) is
// discarded, and the state it would have replaced goes on. Messages of an
// epoch older than the fence before them are skipped: a fenced owner's
// appends that were in flight when the fence landed (never acknowledged).
type replayer struct {
	jobs    *store.Jobs
	snap    *store.Jobs // the snapshot being read, nil outside one
	begin   uint64      // its begin marker's sequence
	records int         // records applied (snapshot records once complete)
	pending int         // records of the open snapshot
	bytes   int64       // payload bytes that make up the state now
	snapB   int64       // payload bytes of the open snapshot
	lastSeq uint64
	fence   Fence // the last fence read
	// incomplete counts snapshots discarded, stale the messages of a
	// fenced owner after its fence.
	incomplete, stale int
}

func newReplayer(jobs *store.Jobs) *replayer { return &replayer{jobs: jobs} }

// apply takes the next stored message.
func (r *replayer) apply(seq uint64, subject string, h nats.Header, data []byte) error {
	if seq <= r.lastSeq {
		return fmt.Errorf("message %d after %d: %w: out of order", seq, r.lastSeq, ErrBadMessage)
	}
	m, err := decodeMessage(seq, subject, h, data, false)
	if err != nil {
		return err
	}
	r.lastSeq = seq
	if m.Kind != KindOwn && m.Epoch < r.fence.Epoch {
		// Written by an owner already fenced, after its fence: never
		// acknowledged (see ShardLog), not part of the shard.
		r.stale++
		return nil
	}
	chunk := m.Kind == KindSnap || m.Kind == KindSnapEnd
	if r.snap != nil && (!chunk || m.Snap != r.begin) {
		r.dropSnapshot()
	}
	switch m.Kind {
	case KindOwn:
		r.fence = Fence{Epoch: m.Epoch, Host: m.Host, Seq: seq}
	case KindRec:
		n, err := r.jobs.ApplyFrames(data)
		if err != nil {
			return fmt.Errorf("message %d: %w", seq, err)
		}
		r.records += n
		r.bytes += int64(len(data))
	case KindSnapBegin:
		r.snap, r.begin, r.pending, r.snapB = store.NewJobs(), seq, 0, 0
	case KindSnap:
		if r.snap == nil {
			return nil // a chunk of a discarded snapshot
		}
		n, err := r.snap.ApplyFrames(data)
		if err != nil {
			return fmt.Errorf("message %d: %w", seq, err)
		}
		r.pending += n
		r.snapB += int64(len(data))
	case KindSnapEnd:
		if r.snap == nil {
			return nil
		}
		*r.jobs = *r.snap // the snapshot is the state now
		r.records, r.bytes = r.pending, r.snapB
		r.snap = nil
	}
	return nil
}

func (r *replayer) dropSnapshot() {
	if r.snap != nil {
		r.incomplete++
	}
	r.snap = nil
}
