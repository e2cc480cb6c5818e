package worker

import "github.com/tockd/tock/ipc"

// frameBatch is frames the reader read together: their payloads are copied
// into one buffer, reused once the loop has handled them, so a frame costs
// no allocation and the loop one channel receive per batch, not per frame.
type frameBatch struct {
	buf    []byte
	marks  []frameMark
	frames []ipc.Frame
	// reqs are the decoded request frames, by frame (decode, in the loop).
	reqs []decoded
}

// decoded is a request frame decoded ahead of its turn.
type decoded struct {
	req ipc.Request
	err error
}

// frameMark is where a frame's payload is in buf, recorded while buf may
// still grow (and move).
type frameMark struct {
	t          ipc.Type
	start, end int
}

const (
	// batchFrames and batchBytes end a batch early: the loop handles at
	// most maxBatchFrames per endBatch anyway, and a batch's buffer stays
	// small enough to keep.
	batchFrames = 1024
	batchBytes  = 256 << 10
	// keepBatchBytes: a batch that held a larger frame (a big Acquire)
	// gives its buffer back to the GC rather than pinning it.
	keepBatchBytes = 1 << 20
	// inboxBatches bounds the batches read ahead of the loop.
	inboxBatches = 16
)

func (b *frameBatch) add(f ipc.Frame) {
	start := len(b.buf)
	b.buf = append(b.buf, f.Payload...)
	b.marks = append(b.marks, frameMark{t: f.Type, start: start, end: len(b.buf)})
}

// seal makes frames point into buf, which no longer grows.
func (b *frameBatch) seal() {
	b.frames = b.frames[:0]
	for _, m := range b.marks {
		b.frames = append(b.frames, ipc.Frame{Type: m.t, Payload: b.buf[m.start:m.end:m.end]})
	}
}

func (b *frameBatch) reset() {
	b.buf, b.marks = b.buf[:0], b.marks[:0]
	clear(b.frames) // drop the payload slices and keys before reuse
	b.frames = b.frames[:0]
	clear(b.reqs)
	b.reqs = b.reqs[:0]
}

// readLoop feeds frames to the loop, a batch at a time: it blocks for one
// frame, then takes every whole frame already buffered (a read batch of
// the master's), and sends them in one batch; its end closes inbox.
func (w *Worker) readLoop() {
	defer close(w.inbox)
	for {
		var b *frameBatch
		select {
		case b = <-w.spare:
		default:
			b = &frameBatch{}
		}
		for {
			f, err := w.link.RecvShared()
			if err != nil {
				if len(b.marks) > 0 {
					b.seal()
					w.inbox <- b
				}
				w.linkErr.Store(err)
				return
			}
			b.add(f)
			if len(b.marks) >= batchFrames || len(b.buf) >= batchBytes || !w.link.FrameBuffered() {
				break
			}
		}
		b.seal()
		w.inbox <- b
	}
}

// decode decodes b's requests, then warms the store's index for each job
// id among them, in a loop that does nothing else (store.Jobs.Warm): in a
// store of millions of jobs each lookup's first read is a cache miss, and
// issued back to back the misses of a batch overlap instead of each SET
// waiting for its own. The warming is only a hint: a frame handled before
// a request (a Release) may change the shards, which costs nothing but a
// wasted read.
func (w *Worker) decode(b *frameBatch) {
	for _, f := range b.frames {
		var d decoded
		if f.Type == ipc.TypeRequest {
			d.req, d.err = ipc.DecodeRequest(f.Payload)
		}
		b.reqs = append(b.reqs, d)
	}
	var sh *shard
	for i := range b.reqs {
		r := &b.reqs[i].req
		switch r.Op {
		case ipc.OpSet, ipc.OpGet, ipc.OpInfo, ipc.OpRemove:
		default:
			continue
		}
		if sh == nil || sh.id != r.Shard {
			if sh = w.shards[r.Shard]; sh == nil {
				continue
			}
		}
		w.warmJobs = append(w.warmJobs, sh.jobs)
		w.warmHashes = append(w.warmHashes, sh.jobs.Hash(r.Key))
	}
	// Nothing but the reads here: the fewer instructions between them,
	// the more of them are in flight at once.
	sink := w.warmSink
	for i, j := range w.warmJobs {
		sink += j.Warm(w.warmHashes[i])
	}
	w.warmSink = sink
	clear(w.warmJobs)
	w.warmJobs, w.warmHashes = w.warmJobs[:0], w.warmHashes[:0]
}

// recycle gives a handled batch back to the reader.
func (w *Worker) recycle(b *frameBatch) {
	if cap(b.buf) > keepBatchBytes {
		return
	}
	b.reset()
	select {
	case w.spare <- b:
	default:
	}
}
