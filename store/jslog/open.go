package jslog

import (
	"context"
	"errors"
	"fmt"
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
// publishes a fence record (see fence), after which the earlier owner
// acknowledges nothing more, and everything it had acknowledged is below
// the fence. If another opener's fence lands first, it fails with
// ErrFenced (one of two racing openers wins). Then it replays every
// message up to the fence into jobs (by batched direct get) and returns
// the log whose appends follow the fence (and any leftovers of the
// earlier owner: settle). Transient errors (no stream leader during an
// election) are retried until ctx ends.
func (e *Engine) OpenShard(ctx context.Context, shard int, hint uint64, jobs *store.Jobs) (*ShardLog, Opened, error) {
	stream := StreamName(e.cfg.Cluster, shard)
	fence, prev, err := e.fence(ctx, shard, hint)
	if err != nil {
		return nil, Opened{}, fmt.Errorf("open shard %d (stream %s): %w", shard, stream, err)
	}
	opened := Opened{Epoch: fence.Epoch, FenceSeq: fence.Seq, Previous: prev}
	r := newReplayer(jobs)
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
	start, err := e.settle(ctx, stream, fence.Seq)
	if err != nil {
		return nil, opened, fmt.Errorf("open shard %d (stream %s): %w", shard, stream, err)
	}
	l := newShardLog(e, shard, fence.Epoch, fence.Seq, r.bytes)
	l.last, l.confirmed = start, start
	e.log.Debug("shard stream opened", "shard", shard, "epoch", fence.Epoch, "fence_seq", fence.Seq,
		"previous_epoch", prev.Epoch, "previous_host", prev.Host, "records", r.records, "messages", opened.Messages)
	return l, opened, nil
}

// isCASError reports whether err is a failed expectation of the stream's
// or the fence subject's last sequence (10071; 10164 is what replicated
// streams may return).
func isCASError(err error) bool {
	var ae *jetstream.APIError
	if !errors.As(err, &ae) {
		return false
	}
	return ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// fenceID is the Msg-Id of host's fence record at epoch.
func fenceID(host string, epoch uint64) string {
	return host + ":" + strconv.FormatUint(epoch, 10) + ":own"
}

// fence publishes our fence record and returns it with the one before.
// The fence expects the fence subject's last sequence to be the previous
// fence's, so of two openers racing only one gets its fence in and no
// epoch is fenced twice. It does not expect the stream's last sequence:
// the previous owner may still be appending, and a fence that had to find
// a gap in its pipeline might wait as long as that owner writes. Wherever
// it lands, the previous owner's append that expected the fence's slot is
// refused, so that owner acknowledges nothing from there on (ShardLog),
// and whatever of its in-flight appends still lands after the fence is of
// an older epoch: replay skips it.
func (e *Engine) fence(ctx context.Context, shard int, hint uint64) (Fence, Fence, error) {
	prev, _, err := e.LastFence(ctx, shard)
	if err != nil {
		return Fence{}, Fence{}, err
	}
	epoch := max(hint, prev.Epoch+1)
	m := newMsg(OwnSubject(e.cfg.Cluster, shard), KindOwn, e.cfg.Host, epoch, fenceID(e.cfg.Host, epoch), encodeFence(fenceRecord{Epoch: epoch, Host: e.cfg.Host}))
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(prev.Seq, 10))
	for {
		pctx, cancel := context.WithTimeout(ctx, asyncAckTimeout)
		ack, err := e.js.PublishMsg(pctx, copyMsg(m))
		cancel()
		if err == nil {
			return Fence{Epoch: epoch, Host: e.cfg.Host, Seq: ack.Sequence}, prev, nil
		}
		if isCASError(err) {
			now, _, ferr := e.LastFence(ctx, shard)
			if ferr != nil {
				return Fence{}, Fence{}, fmt.Errorf("%w: another fence landed while this host opened the shard (%v), and it cannot be read: %v", ErrFenced, err, ferr)
			}
			return Fence{}, Fence{}, fmt.Errorf("%w: host %q fenced it at epoch %d (seq %d) while this host opened it", ErrFenced, now.Host, now.Epoch, now.Seq)
		}
		// Ambiguous (timeout, no leader yet). If the fence is stored, or
		// another one is, the last fence says so; if not, publish the same
		// message again (its Msg-Id makes one still in flight come back
		// as a duplicate).
		if now, ok, ferr := e.LastFence(ctx, shard); ferr == nil && ok && now.Seq != prev.Seq {
			if now.Host == e.cfg.Host && now.Epoch == epoch {
				return now, prev, nil
			}
			return Fence{}, Fence{}, fmt.Errorf("%w: host %q fenced it at epoch %d (seq %d) while this host opened it", ErrFenced, now.Host, now.Epoch, now.Seq)
		}
		e.log.Debug("publish fence, retrying", "shard", shard, "epoch", epoch, "error", err)
		if perr := pause(ctx); perr != nil {
			return Fence{}, Fence{}, fmt.Errorf("publish fence at epoch %d: %w (last error: %v)", epoch, perr, err)
		}
	}
}

// Settling after the fence. Appends of the previous owner that were in
// flight when the fence landed may still be stored after it (never
// acknowledged, skipped by replay). Appends of ours that raced them could
// interleave with them out of order, so the log starts after them: it
// waits until the stream's end stops moving (not at all when the previous
// owner is dead, the usual takeover).
const (
	settlePoll = 50 * time.Millisecond
	settleMax  = 2 * time.Second
)

// settle returns the sequence the new log's first append follows.
func (e *Engine) settle(ctx context.Context, stream string, fence uint64) (uint64, error) {
	last, err := e.lastSeq(ctx, stream)
	if err != nil || last <= fence {
		return max(last, fence), err
	}
	deadline := time.Now().Add(settleMax)
	for time.Now().Before(deadline) {
		t := time.NewTimer(settlePoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-t.C:
		}
		now, err := e.lastSeq(ctx, stream)
		if err != nil {
			return 0, err
		}
		if now == last {
			break
		}
		last = now
	}
	e.log.Debug("previous owner's appends landed after the fence", "stream", stream, "fence_seq", fence, "last_seq", last)
	return last, nil
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
