package jslog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Recovery after an append that was not acknowledged (a timeout, a lost
// connection, a leader election, a refusal). The log reads what the
// stream holds after its last confirmed message: its own messages found
// there are confirmed (whichever attempt stored them), records of an
// older epoch are a fenced owner's leftovers and skipped, a newer fence
// means the shard was taken (ErrFenced). The messages not found are sent
// again after the stream's last sequence, with fresh Msg-Ids. No message
// is stored twice: every attempt expects a sequence, and an attempt sent
// after a read of the stream expects a sequence past every earlier
// attempt's, so once one version is stored no other can follow.
//
// (Re-sending with the same Msg-Id is not enough: nats-server keeps the
// Msg-Id of a message it refused for the whole dedup window and answers a
// re-send of it with a conflict, or not at all.)

// errBroken is a stream this log cannot go on writing (not a fence).
var errBroken = errors.New("shard stream inconsistent with its writer")

// recoverLocked runs recovery rounds until every unconfirmed message is
// stored, the shard turns out to be fenced, or recoverTimeout passes.
func (l *ShardLog) recoverLocked() error {
	ctx, cancel := context.WithTimeout(context.Background(), recoverTimeout)
	defer cancel()
	for round := 1; ; round++ {
		err := l.recoverRound(ctx, round)
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrFenced) || errors.Is(err, errBroken) {
			return l.failLocked(err)
		}
		l.e.log.Debug("shard stream recovery round failed, retrying", "shard", l.shard, "round", round, "unconfirmed", len(l.inflight), "error", err)
		if perr := pause(ctx); perr != nil {
			return l.failLocked(fmt.Errorf("shard %d: %d messages not acknowledged within %v: %w", l.shard, len(l.inflight), recoverTimeout, err))
		}
	}
}

// sentN is the log counter in one of this log's Msg-Ids, ok false if the
// id is not this log's.
func (l *ShardLog) sentN(id string) (uint64, bool) {
	prefix := l.writer + ":" + strconv.FormatUint(l.epoch, 10) + ":"
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok {
		return 0, false
	}
	rest, _, _ = strings.Cut(rest, ":r")
	n, err := strconv.ParseUint(rest, 10, 64)
	return n, err == nil
}

func (l *ShardLog) recoverRound(ctx context.Context, round int) error {
	last, err := l.confirmStored(ctx)
	if err != nil {
		return err
	}
	if len(l.inflight) == 0 {
		return nil
	}
	seq := last
	for _, o := range l.inflight {
		seq++
		o.seq = seq
		o.msg.Header.Set(jetstream.MsgIDHeader, msgID(l.writer, l.epoch, o.n)+":r"+strconv.Itoa(round))
		l.send(o)
		if o.fut == nil {
			return fmt.Errorf("send message %d again: not sent", o.n)
		}
	}
	l.last = seq
	for len(l.inflight) > 0 {
		o := l.inflight[0]
		select {
		case ack := <-o.fut.Ok():
			if ack.Sequence != o.seq {
				return fmt.Errorf("message %d stored at sequence %d, not %d", o.n, ack.Sequence, o.seq)
			}
			l.confirmed = o.seq
			l.inflight = l.inflight[1:]
		case err := <-o.fut.Err():
			return fmt.Errorf("message %d: %w", o.n, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// confirmStored reads the stream after the last confirmed message, drops
// from inflight every message found stored, and returns the stream's last
// sequence.
func (l *ShardLog) confirmStored(ctx context.Context) (uint64, error) {
	last, err := l.e.lastSeq(ctx, l.stream)
	if err != nil || last <= l.confirmed {
		return last, err
	}
	err = l.e.readRange(ctx, l.stream, l.confirmed+1, last, func(m storedMsg) error {
		dm, err := decodeMessage(m.Seq, m.Subject, m.Header, m.Data, false)
		if err != nil {
			return fmt.Errorf("%w: %v", errBroken, err)
		}
		switch {
		case dm.Kind == KindOwn:
			return fmt.Errorf("shard %d at epoch %d: %w: host %q fenced it at epoch %d (seq %d)", l.shard, l.epoch, ErrFenced, dm.Host, dm.Epoch, dm.Seq)
		case dm.Epoch < l.epoch:
			return nil // a fenced owner's leftover
		}
		n, ours := l.sentN(m.Header.Get(jetstream.MsgIDHeader))
		if !ours || dm.Host != l.host || dm.Epoch != l.epoch || len(l.inflight) == 0 || n != l.inflight[0].n {
			return fmt.Errorf("shard %d at epoch %d: %w: message %d by %q at epoch %d where this log expected its own", l.shard, l.epoch, errBroken, m.Seq, dm.Host, dm.Epoch)
		}
		l.confirmed = m.Seq
		l.inflight = l.inflight[1:]
		return nil
	})
	return last, err
}
