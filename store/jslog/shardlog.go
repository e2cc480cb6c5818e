package jslog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tockd/tock/store"
)

// ShardLog is a shard's log on its stream (store.ShardLog). Write packs a
// batch's records into one message (more above maxMsgBytes) and publishes
// it asynchronously with a Msg-Id and Nats-Expected-Last-Sequence = the
// sequence before it: the log is the only writer, so it knows the next
// sequences, and many messages are in flight at once. Sync waits until
// every message written before it is acknowledged, in order, which
// JetStream does once a quorum of the replicas has stored it.
//
// Fencing. Another opener's fence record takes the sequence one of this
// log's in-flight appends expected, and the server refuses that append.
// Sync confirms in order, so it stops there: nothing at or after the
// fence is acknowledged, and the log finds the fence in the stream
// (recover.go) and fails for good with an error wrapping ErrFenced.
// (Appends already in flight that expected the sequences after the fence
// may still be stored: a sequence check cannot tell whose message holds a
// sequence. They are never acknowledged, they carry the old epoch, and
// replay skips records of an epoch older than the fence before them.
// The server's other checks cannot close this: an expected last Msg-Id is
// only checked as a message is applied, where a mismatch wedges a
// replicated stream, and an expected subject sequence allows one message
// in flight per subject, which would end pipelining.)
type ShardLog struct {
	e       *Engine
	shard   int
	stream  string
	recSubj string
	epoch   uint64
	host    string

	size  atomic.Int64 // payload bytes of the state in the stream
	msgs  atomic.Uint64
	recs  atomic.Uint64
	fence uint64 // our fence's sequence

	mu   sync.Mutex
	cond *sync.Cond // on mu: the compaction gate opened, or the log closed/failed
	last uint64     // sequence the last message published is expected at
	n    uint64     // messages published, for their Msg-Ids
	// confirmed is the sequence of the last message known to be stored.
	confirmed uint64
	// inflight are published messages not yet known to be stored, in
	// order.
	inflight []*outMsg
	err      error // sticky failure
	closed   bool
	// gate holds Writes from BeginCompaction until Run has enqueued the
	// snapshot, so the snapshot sits exactly where it was taken and its
	// chunks are contiguous.
	gate       bool
	compacting bool

	syncMu sync.Mutex // one Sync at a time
}

var _ store.ShardLog = (*ShardLog)(nil)

// outMsg is a published message awaiting its ack; fut is nil when it
// could not even be sent (Sync sends it).
type outMsg struct {
	n   uint64 // the log's n-th message
	seq uint64 // the sequence it expects to be stored at
	msg *nats.Msg
	fut jetstream.PubAckFuture
}

// maxMsgBytes is where a batch is split into several messages: well under
// nats-server's 1 MiB max_payload, so one message never holds up a raft
// group for long.
const maxMsgBytes = 256 << 10

// recoverTimeout bounds how long Sync re-sends unacknowledged messages
// (through a stream leader election, 4–9 s) before the log fails. Writes
// wait meanwhile, so it stays under the master's default worker_timeout
// (30 s), past which a worker that sent no heartbeat is killed.
const recoverTimeout = 20 * time.Second

func newShardLog(e *Engine, shard int, epoch, fence uint64, size int64) *ShardLog {
	l := &ShardLog{e: e, shard: shard, stream: StreamName(e.cfg.Cluster, shard), recSubj: RecSubject(e.cfg.Cluster, shard),
		epoch: epoch, host: e.cfg.Host, last: fence, confirmed: fence, fence: fence}
	l.cond = sync.NewCond(&l.mu)
	l.size.Store(size)
	return l
}

// Epoch is the epoch the log was fenced at.
func (l *ShardLog) Epoch() uint64 { return l.epoch }

// FenceSeq is the sequence of the log's fence record.
func (l *ShardLog) FenceSeq() uint64 { return l.fence }

// LastSeq is the sequence of the last message written.
func (l *ShardLog) LastSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// Stats are the messages and records written since the log was opened.
func (l *ShardLog) Stats() (msgs, records uint64) { return l.msgs.Load(), l.recs.Load() }

// Write publishes recs, packed, without waiting for the acks. Invalid
// records fail the Write before anything is published. A message that
// cannot be sent now (disconnected, too many in flight) stays queued for
// Sync, so Write fails only on a closed or failed log.
func (l *ShardLog) Write(recs []store.Record) error {
	if len(recs) == 0 {
		return nil
	}
	chunks, n, err := pack(recs)
	if err != nil {
		return fmt.Errorf("write shard %d: %w", l.shard, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.gate && l.usableLocked() == nil {
		l.cond.Wait()
	}
	if err := l.usableLocked(); err != nil {
		return fmt.Errorf("write shard %d: %w", l.shard, err)
	}
	for _, c := range chunks {
		l.publishLocked(KindRec, c, 0)
	}
	l.size.Add(int64(n))
	l.recs.Add(uint64(len(recs)))
	return nil
}

// pack frames recs and cuts the frames into messages of at most
// maxMsgBytes (a single larger frame gets a message of its own).
func pack(recs []store.Record) ([][]byte, int, error) {
	buf, err := store.AppendFrames(nil, recs)
	if err != nil {
		return nil, 0, err
	}
	var chunks [][]byte
	start, off := 0, 0
	for off < len(buf) {
		frame := 8 + int(binary.BigEndian.Uint32(buf[off:]))
		if off > start && off+frame-start > maxMsgBytes {
			chunks = append(chunks, buf[start:off:off])
			start = off
		}
		off += frame
	}
	chunks = append(chunks, buf[start:])
	return chunks, len(buf), nil
}

func (l *ShardLog) usableLocked() error {
	if l.closed {
		return store.ErrClosed
	}
	return l.err
}

// publishLocked publishes the next message asynchronously and returns
// the sequence it expects. snap is the Tock-Snap header (0: none).
func (l *ShardLog) publishLocked(kind string, data []byte, snap uint64) uint64 {
	l.n++
	seq := l.last + 1
	m := newMsg(l.recSubj, kind, l.host, l.epoch, msgID(l.host, l.epoch, l.n), data)
	if snap != 0 {
		m.Header.Set(hdrSnap, strconv.FormatUint(snap, 10))
	}
	o := &outMsg{n: l.n, seq: seq, msg: m}
	l.send(o)
	l.inflight = append(l.inflight, o)
	l.last = seq
	l.msgs.Add(1)
	return seq
}

// send publishes o asynchronously, expecting the sequence before o.seq. A
// message that cannot be sent now is left to Sync (fut nil).
func (l *ShardLog) send(o *outMsg) {
	o.msg.Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(o.seq-1, 10))
	fut, err := l.e.js.PublishMsgAsync(copyMsg(o.msg), jetstream.WithStallWait(stallWait))
	if err != nil {
		l.e.log.Debug("async publish deferred to sync", "shard", l.shard, "seq", o.seq, "error", err)
		fut = nil
	}
	o.fut = fut
}

// copyMsg is m with its own header map: nats.go may add to the headers of
// what it publishes, and the original is kept to be sent again as it was.
func copyMsg(m *nats.Msg) *nats.Msg {
	c := nats.NewMsg(m.Subject)
	for k, v := range m.Header {
		c.Header[k] = append([]string(nil), v...)
	}
	c.Data = m.Data
	return c
}

// Sync returns once every message written before it is stored by a
// quorum. If one was not acknowledged (refused, timed out, not sent), the
// log finds out what the stream holds and sends the rest again
// (recover.go), or fails: with ErrFenced if another host fenced the
// shard. While it recovers, Writes wait.
func (l *ShardLog) Sync() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	if err := l.usableLocked(); err != nil {
		l.mu.Unlock()
		return fmt.Errorf("sync shard %d: %w", l.shard, err)
	}
	list := append([]*outMsg(nil), l.inflight...)
	l.mu.Unlock()

	confirmed := 0
	var failure error
	for _, o := range list {
		if o.fut == nil {
			failure = errors.New("not sent")
			break
		}
		select {
		case ack := <-o.fut.Ok():
			if ack.Sequence != o.seq {
				failure = fmt.Errorf("message %d stored at sequence %d", o.seq, ack.Sequence)
			}
		case err := <-o.fut.Err():
			failure = err
		}
		if failure != nil {
			break
		}
		confirmed++
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if confirmed > 0 {
		l.confirmed = l.inflight[confirmed-1].seq
		l.inflight = l.inflight[confirmed:]
	}
	if failure == nil {
		return nil
	}
	if err := l.usableLocked(); err != nil {
		return fmt.Errorf("sync shard %d: %w", l.shard, err)
	}
	l.e.log.Warn("shard stream append not acknowledged, recovering", "shard", l.shard, "seq", l.inflight[0].seq, "error", failure)
	if err := l.recoverLocked(); err != nil {
		return fmt.Errorf("sync shard %d: %w", l.shard, err)
	}
	return nil
}

func (l *ShardLog) fail(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failLocked(err)
}

// failLocked makes err the log's sticky failure (the first one wins).
func (l *ShardLog) failLocked(err error) error {
	if l.err == nil {
		l.err = err
		l.e.log.Error("shard stream log failed", "shard", l.shard, "epoch", l.epoch, "error", err)
	}
	l.cond.Broadcast()
	return l.err
}

// Size is the payload bytes of the records that make up the shard's state
// in the stream: what compaction is triggered on.
func (l *ShardLog) Size() int64 { return l.size.Load() }

// Durable is true: records are in a replicated stream.
func (l *ShardLog) Durable() bool { return true }

// Failed is the sticky failure, nil if none.
func (l *ShardLog) Failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Close waits for every written message (unless the log failed) and
// closes the log. The Engine stays open.
func (l *ShardLog) Close() error {
	l.mu.Lock()
	closed, failed := l.closed, l.err
	l.mu.Unlock()
	if closed {
		return nil
	}
	var err error
	if failed == nil {
		err = l.Sync()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.inflight = nil
	l.cond.Broadcast()
	return err
}
