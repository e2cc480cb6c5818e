package jslog

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tockd/tock/store"
)

// Compaction of a shard stream: the live state is appended as a snapshot
// (a begin marker, chunks of records, an end marker), then every record
// message below the begin marker is purged by sequence. Fence records stay
// (one per open: the history a verifier checks). The snapshot's messages
// are CAS'd like any append, so a fenced writer cannot complete one; a
// purge by a writer fenced after its snapshot was stored only drops what
// that complete snapshot supersedes, and replay starts over at a complete
// snapshot, so even a purge racing a replay is harmless.

// purgeTimeout bounds the purge after the snapshot is stored; a purge
// that fails leaves a longer stream, not a wrong one.
const purgeTimeout = 30 * time.Second

// BeginCompaction marks the log's current end as the point the snapshot
// passed to Run describes, and holds every Write until Run has enqueued
// it. The caller must call Run (the worker does, at once, in the
// background).
func (l *ShardLog) BeginCompaction() (store.LogCompaction, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return nil, fmt.Errorf("compact shard %d: %w", l.shard, err)
	}
	if l.compacting {
		return nil, fmt.Errorf("compact shard %d: %w", l.shard, store.ErrCompacting)
	}
	l.compacting, l.gate = true, true
	return &compaction{l: l}, nil
}

type compaction struct{ l *ShardLog }

// Run appends the snapshot, opens the gate, waits for its acks and purges
// the records below it.
func (c *compaction) Run(snapshot []store.Record) error {
	l := c.l
	defer func() {
		l.mu.Lock()
		l.compacting = false
		l.mu.Unlock()
	}()
	begin, err := l.enqueueSnapshot(snapshot)
	if err != nil {
		return fmt.Errorf("compact shard %d: %w", l.shard, err)
	}
	if err := l.Sync(); err != nil {
		return fmt.Errorf("compact shard %d: %w", l.shard, err)
	}
	if err := l.purgeBelow(begin); err != nil {
		return fmt.Errorf("compact shard %d: %w", l.shard, err)
	}
	l.e.log.Debug("shard stream compacted", "shard", l.shard, "snapshot_seq", begin, "records", len(snapshot))
	return nil
}

// enqueueSnapshot publishes begin marker, chunks and end marker with no
// Write between them, then lets Writes go on.
func (l *ShardLog) enqueueSnapshot(snapshot []store.Record) (uint64, error) {
	var chunks [][]byte
	n := 0
	if len(snapshot) > 0 {
		var err error
		if chunks, n, err = pack(snapshot); err == nil {
			err = l.fits(chunks)
		}
		if err != nil {
			l.mu.Lock()
			l.gate = false
			l.cond.Broadcast()
			l.mu.Unlock()
			return 0, err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gate = false
	l.cond.Broadcast()
	if err := l.usableLocked(); err != nil {
		return 0, err
	}
	begin := l.publishLocked(KindSnapBegin, nil, 0)
	for _, ch := range chunks {
		l.publishLocked(KindSnap, ch, begin)
	}
	l.publishLocked(KindSnapEnd, nil, begin)
	l.size.Store(int64(n))
	return begin, nil
}

// purgeBelow purges the record messages below seq.
func (l *ShardLog) purgeBelow(seq uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), purgeTimeout)
	defer cancel()
	for {
		s, err := l.e.js.Stream(ctx, l.stream)
		if err == nil {
			err = s.Purge(ctx, jetstream.WithPurgeSubject(l.recSubj), jetstream.WithPurgeSequence(seq))
		}
		if err == nil {
			return nil
		}
		if perr := pause(ctx); perr != nil {
			return fmt.Errorf("purge %s below %d: %w (last error: %v)", l.stream, seq, perr, err)
		}
	}
}
