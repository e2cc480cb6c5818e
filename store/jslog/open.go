package jslog

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/tockd/tock/store"
)

// ErrFenced is wrapped when a shard log refuses a writer because another
// one fenced the stream after it: the same sentinel as a fenced Logfile's,
// so the worker treats both alike.
var ErrFenced = store.ErrFenced

// Fence is the last fence record of a shard: who opened it last at which
// epoch, at which stream sequence.
type Fence struct {
	Epoch uint64
	Host  string
	Seq   uint64
}

// LastFence is shard's last fence record as the stream leader has it; ok
// is false if the shard was never opened.
func (e *Engine) LastFence(ctx context.Context, shard int) (Fence, bool, error) {
	m, ok, err := e.leaderLast(ctx, StreamName(e.cfg.Cluster, shard), OwnSubject(e.cfg.Cluster, shard))
	if err != nil || !ok {
		return Fence{}, false, err
	}
	dm, err := decodeMessage(m.Seq, m.Subject, m.Header, m.Data, false)
	if err != nil {
		return Fence{}, false, err
	}
	return Fence{Epoch: dm.Epoch, Host: dm.Host, Seq: dm.Seq}, true, nil
}

// Opened is what OpenShard did.
type Opened struct {
	Epoch    uint64 // the epoch the shard was fenced at
	FenceSeq uint64 // the fence record's stream sequence
	Records  int    // records replayed
	Previous Fence  // the fence before ours (Epoch 0: none)
	Messages int    // messages read by the replay
}

// OpenShard fences shard at epoch max(hint, last fence's epoch + 1): it
// publishes a fence record with Nats-Expected-Last-Sequence, so from then
// on every append of an earlier owner fails its CAS, and everything that
// owner had acknowledged is below the fence. If the old owner's in-flight
// appends land first, it tries again after them; if another opener's
// fence lands first, it fails with ErrFenced (one of two racing openers
// wins). Then it replays every message up to the fence into jobs (by
// batched direct get) and returns the log whose appends follow the fence.
// jobs is replaced by the replayed state; a replay that fails (a bad
// message) leaves it as it was. Transient errors (no stream leader during an election) are retried
// until ctx ends.
func (e *Engine) OpenShard(ctx context.Context, shard int, hint uint64, jobs *store.Jobs) (*ShardLog, Opened, error) {
	stream := StreamName(e.cfg.Cluster, shard)
	writer := newWriter(e.cfg.Host)
	fence, prev, err := e.fence(ctx, shard, hint, writer)
	if err != nil {
		return nil, Opened{}, fmt.Errorf("open shard %d (stream %s): %w", shard, stream, err)
	}
	opened := Opened{Epoch: fence.Epoch, FenceSeq: fence.Seq, Previous: prev}
	// Replayed into a store of its own, which becomes jobs only once the
	// replay reached the fence: a bad message half way must not leave
	// half a shard in the caller's store.
	r := newReplayer(store.NewJobs())
	err = e.readRange(ctx, stream, 1, fence.Seq, func(m storedMsg) error {
		opened.Messages++
		return r.apply(m.Seq, m.Subject, m.Header, m.Data)
	})
	if err != nil {
		return nil, opened, fmt.Errorf("open shard %d (stream %s): replay: %w", shard, stream, err)
	}
	if r.lastSeq != fence.Seq {
		return nil, opened, fmt.Errorf("open shard %d (stream %s): replay ended at %d, before the fence at %d", shard, stream, r.lastSeq, fence.Seq)
	}
	opened.Records = r.records
	*jobs = *r.jobs
	l := newShardLog(e, shard, writer, fence.Epoch, fence.Seq, r.bytes)
	e.log.Debug("shard stream opened", "shard", shard, "epoch", fence.Epoch, "fence_seq", fence.Seq,
		"previous_epoch", prev.Epoch, "previous_host", prev.Host, "records", r.records, "messages", opened.Messages)
	return l, opened, nil
}

// wrongLastRE finds the stream's last sequence in a CAS failure.
var wrongLastRE = regexp.MustCompile(`wrong last sequence: (\d+)`)

// isCASError reports whether err is a failed Expected-Last-Sequence check
// (10071; 10164 is what replicated streams may return).
func isCASError(err error) bool {
	var ae *jetstream.APIError
	if !errors.As(err, &ae) {
		return false
	}
	return ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// fence publishes our fence record (Msg-Id prefix writer) and returns it
// with the one before.
func (e *Engine) fence(ctx context.Context, shard int, hint uint64, writer string) (Fence, Fence, error) {
	stream := StreamName(e.cfg.Cluster, shard)
	for {
		// The last sequence first, then the last fence: a fence that lands
		// between the two reads is seen by the second, and one that lands
		// after both makes our CAS fail. Either way no epoch is fenced twice.
		last, err := e.lastSeq(ctx, stream)
		if err != nil {
			return Fence{}, Fence{}, err
		}
		prev, _, err := e.LastFence(ctx, shard)
		if err != nil {
			return Fence{}, Fence{}, err
		}
		epoch := max(hint, prev.Epoch+1)
		for {
			f := Fence{Epoch: epoch, Host: e.cfg.Host, Seq: last + 1}
			m := newMsg(OwnSubject(e.cfg.Cluster, shard), KindOwn, e.cfg.Host, writer, epoch, f.Seq, encodeFence(fenceRecord{Epoch: epoch, Host: e.cfg.Host}))
			pctx, cancel := context.WithTimeout(ctx, asyncAckTimeout)
			ack, err := e.js.PublishMsg(pctx, m)
			cancel()
			if err == nil {
				if ack.Sequence != f.Seq {
					return Fence{}, Fence{}, fmt.Errorf("fence at epoch %d stored at %d, expected %d", epoch, ack.Sequence, f.Seq)
				}
				return f, prev, nil
			}
			if isCASError(err) {
				// Someone appended since we read. If it is a fence, another
				// opener won; if not, the old owner's in-flight appends
				// landed: read again and fence after them.
				now, _, ferr := e.LastFence(ctx, shard)
				if ferr != nil {
					return Fence{}, Fence{}, ferr
				}
				if now.Seq != prev.Seq {
					return Fence{}, Fence{}, fmt.Errorf("%w: host %q fenced it at epoch %d (seq %d) while this host opened it", ErrFenced, now.Host, now.Epoch, now.Seq)
				}
				if sm := wrongLastRE.FindStringSubmatch(err.Error()); sm != nil {
					if n, perr := strconv.ParseUint(sm[1], 10, 64); perr == nil && n > last {
						last = n
						continue
					}
				}
				break // re-read both
			}
			// Ambiguous (timeout, no leader yet): publish the same message
			// again; its Msg-Id makes a stored one come back as a duplicate.
			e.log.Debug("publish fence, retrying", "shard", shard, "epoch", epoch, "error", err)
			if perr := pause(ctx); perr != nil {
				return Fence{}, Fence{}, fmt.Errorf("publish fence at epoch %d: %w (last error: %v)", epoch, perr, err)
			}
		}
	}
}

// lastSeq is the stream's last sequence, from the stream leader.
func (e *Engine) lastSeq(ctx context.Context, stream string) (uint64, error) {
	for {
		sctx, cancel := context.WithTimeout(ctx, directWait)
		s, err := e.js.Stream(sctx, stream)
		cancel()
		if err == nil {
			return s.CachedInfo().State.LastSeq, nil
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return 0, fmt.Errorf("stream %s: %w (EnsureStreams creates it)", stream, err)
		}
		e.log.Debug("stream info, retrying", "stream", stream, "error", err)
		if perr := pause(ctx); perr != nil {
			return 0, fmt.Errorf("stream %s info: %w (last error: %v)", stream, perr, err)
		}
	}
}

// openTimeout bounds OpenShard for callers with no deadline of their own:
// a NATS election (up to 9 s) plus a replay.
const openTimeout = 60 * time.Second
