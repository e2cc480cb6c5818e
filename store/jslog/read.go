package jslog

import (
	"context"
	"fmt"

	"github.com/tockd/tock/store"
)

// ReadShard calls fn with every message of shard's stream in order, up to
// its last sequence when the call starts, records decoded: for
// verification tools and tests, which check what the stream holds
// independently of any worker (one writer per epoch, nothing acknowledged
// lost). It reads by batched direct get, like a replay.
func (e *Engine) ReadShard(ctx context.Context, shard int, fn func(m Message) error) error {
	stream := StreamName(e.cfg.Cluster, shard)
	last, err := e.lastSeq(ctx, stream)
	if err != nil {
		return fmt.Errorf("read shard %d: %w", shard, err)
	}
	if last == 0 {
		return nil
	}
	var fence uint64
	return e.readRange(ctx, stream, 1, last, func(m storedMsg) error {
		dm, err := decodeMessage(m.Seq, m.Subject, m.Header, m.Data, true)
		if err != nil {
			return err
		}
		if dm.Kind == KindOwn {
			fence = dm.Epoch
		} else {
			dm.Stale = dm.Epoch < fence
		}
		return fn(dm)
	})
}

// ReplayShard rebuilds shard's state from its whole stream into jobs, as
// OpenShard's replay does, without fencing it: for verification (the state
// a new owner would start from). It returns the records that make up the
// state and the last fence read.
func (e *Engine) ReplayShard(ctx context.Context, shard int, jobs *store.Jobs) (int, Fence, error) {
	stream := StreamName(e.cfg.Cluster, shard)
	last, err := e.lastSeq(ctx, stream)
	if err != nil {
		return 0, Fence{}, fmt.Errorf("replay shard %d: %w", shard, err)
	}
	r := newReplayer(store.NewJobs()) // jobs only if the whole replay succeeds
	if last > 0 {
		if err := e.readRange(ctx, stream, 1, last, func(m storedMsg) error {
			return r.apply(m.Seq, m.Subject, m.Header, m.Data)
		}); err != nil {
			return 0, Fence{}, fmt.Errorf("replay shard %d: %w", shard, err)
		}
	}
	*jobs = *r.jobs
	return r.records, r.fence, nil
}
