package jslog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reading a stream by batched direct get ($JS.API.DIRECT.GET.<stream>
// with {"seq":S,"batch":N}): any replica answers, and no consumer is
// created, which would need the meta leader (seconds away after a crash).
// nats.go has no API for batches; this is a small one over an inbox.

const (
	directBatch    = 256
	directMaxBytes = 8 << 20
	// directWait bounds the wait for the next message of a batch; a
	// replica that stops answering (killed) is asked again.
	directWait = 3 * time.Second
)

// storedMsg is one message as a direct get returns it.
type storedMsg struct {
	Seq     uint64
	Subject string
	Header  nats.Header
	Data    []byte
}

type directRequest struct {
	Seq      uint64 `json:"seq,omitempty"`
	LastBy   string `json:"last_by_subj,omitempty"`
	Batch    int    `json:"batch,omitempty"`
	MaxBytes int    `json:"max_bytes,omitempty"`
}

func directSubject(stream string) string { return "$JS.API.DIRECT.GET." + stream }

// readRange calls fn for every message of stream with a sequence in
// [from, upTo], in order. A replica that has not caught up to upTo yet
// (it answers 404, or ends early) is asked again until ctx ends: the
// range was written, so some replica has it.
func (e *Engine) readRange(ctx context.Context, stream string, from, upTo uint64, fn func(storedMsg) error) error {
	next := from
	for next <= upTo {
		got, err := e.readBatch(ctx, stream, next, upTo, fn)
		if err != nil {
			var fe fnError
			if errors.As(err, &fe) {
				return fe.err
			}
		}
		next = got
		if next > upTo {
			return nil
		}
		if err != nil {
			e.log.Debug("direct get, retrying", "stream", stream, "seq", next, "error", err)
		}
		if err != nil || got == 0 {
			if perr := pause(ctx); perr != nil {
				return fmt.Errorf("read %s from %d: %w (last error: %v)", stream, next, perr, err)
			}
		}
	}
	return nil
}

// fnError is an error of the caller's fn, which ends the read.
type fnError struct{ err error }

func (f fnError) Error() string { return f.err.Error() }

// readBatch asks for one batch from next and returns the sequence to ask
// for next time (next itself if nothing new came).
func (e *Engine) readBatch(ctx context.Context, stream string, next, upTo uint64, fn func(storedMsg) error) (uint64, error) {
	batch := directBatch
	if left := upTo - next + 1; left < uint64(batch) {
		batch = int(left)
	}
	if batch < 2 {
		batch = 2 // batch 1 is a plain get, which has no end-of-batch marker
	}
	// A fresh inbox per batch, so a late answer to an abandoned batch is
	// never taken for part of this one.
	inbox := e.nc.NewRespInbox()
	sub, err := e.nc.SubscribeSync(inbox)
	if err != nil {
		return next, err
	}
	defer func() { _ = sub.Unsubscribe() }() // a dead subscription only costs the server a lookup
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return next, err
	}
	body, err := json.Marshal(directRequest{Seq: next, Batch: batch, MaxBytes: directMaxBytes})
	if err != nil {
		return next, err
	}
	if err := e.nc.PublishRequest(directSubject(stream), inbox, body); err != nil {
		return next, err
	}
	start := next
	for {
		wctx, cancel := context.WithTimeout(ctx, directWait)
		m, err := sub.NextMsgWithContext(wctx)
		cancel()
		if err != nil {
			return next, fmt.Errorf("direct get %s from %d: %w", stream, start, err)
		}
		switch status := m.Header.Get("Status"); status {
		case "":
		case "204": // end of batch
			return next, nil
		case "404":
			return next, fmt.Errorf("direct get %s from %d: no message (replica behind?)", stream, start)
		default:
			return next, fmt.Errorf("direct get %s from %d: status %s %s", stream, start, status, m.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return next, fmt.Errorf("direct get %s: %w: %s header %q", stream, ErrBadMessage, jetstream.SequenceHeader, m.Header.Get(jetstream.SequenceHeader))
		}
		if seq < next {
			continue // cannot happen on a fresh inbox; harmless
		}
		if seq > upTo {
			return upTo + 1, nil
		}
		if err := fn(storedMsg{Seq: seq, Subject: m.Header.Get(jetstream.SubjectHeader), Header: m.Header, Data: m.Data}); err != nil {
			return next, fnError{err}
		}
		next = seq + 1
		if next > upTo {
			return next, nil
		}
	}
}

// leaderLast is the last message on subject as the stream leader has it
// ($JS.API.STREAM.MSG.GET, not a direct get): a replica that is behind
// could show an older fence, and an opener must never pick an epoch that
// was already fenced. ok is false if the subject has none. The leader may
// be in an election: transient errors are retried until ctx ends.
func (e *Engine) leaderLast(ctx context.Context, stream, subject string) (storedMsg, bool, error) {
	body, err := json.Marshal(directRequest{LastBy: subject})
	if err != nil {
		return storedMsg{}, false, err
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, directWait)
		m, err := e.nc.RequestWithContext(rctx, "$JS.API.STREAM.MSG.GET."+stream, body)
		cancel()
		if err == nil {
			var resp msgGetResponse
			if err = json.Unmarshal(m.Data, &resp); err == nil {
				switch {
				case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
					return storedMsg{}, false, nil
				case resp.Error != nil:
					err = resp.Error
				case resp.Message == nil:
					err = fmt.Errorf("%w: empty message get response", ErrBadMessage)
				default:
					h, herr := nats.DecodeHeadersMsg(resp.Message.Header)
					if herr != nil {
						return storedMsg{}, false, fmt.Errorf("message %d of %s: %w: headers: %v", resp.Message.Sequence, stream, ErrBadMessage, herr)
					}
					return storedMsg{Seq: resp.Message.Sequence, Subject: resp.Message.Subject, Header: h, Data: resp.Message.Data}, true, nil
				}
			}
		}
		e.log.Debug("get last message from the stream leader, retrying", "stream", stream, "subject", subject, "error", err)
		if perr := pause(ctx); perr != nil {
			return storedMsg{}, false, fmt.Errorf("last message of %s on %s: %w (last error: %v)", stream, subject, perr, err)
		}
	}
}

type msgGetResponse struct {
	Error   *jetstream.APIError `json:"error,omitempty"`
	Message *struct {
		Subject  string `json:"subject"`
		Sequence uint64 `json:"seq"`
		Header   []byte `json:"hdrs,omitempty"`
		Data     []byte `json:"data,omitempty"`
	} `json:"message,omitempty"`
}
