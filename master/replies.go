package master

import (
	"errors"

	"github.com/tockd/tock/ipc"
)

// maxReplyBatch bounds the replies a link reader decodes before it
// delivers them.
const maxReplyBatch = 1024

// replyBatch is the replies a worker's link reader has decoded and not yet
// delivered, with its scratch space.
type replyBatch struct {
	replies []ipc.Reply
	pes     []*pending
	wake    []*callRing
}

// deliverReplies hands a batch of a worker's replies to their requests:
// the in-flight entries are taken under one lock of the worker, and each
// connection's writer is woken once for the batch, not once per reply.
func (m *Master) deliverReplies(p *proc, b *replyBatch) error {
	if len(b.replies) == 0 {
		return nil
	}
	b.pes = b.pes[:0]
	p.mu.Lock()
	for i := range b.replies {
		seq := b.replies[i].Seq
		b.pes = append(b.pes, p.inflight[seq])
		delete(p.inflight, seq)
	}
	p.mu.Unlock()
	var err error
	for i, pe := range b.pes {
		if pe == nil {
			continue
		}
		r := b.replies[i]
		if r.Kind == ipc.KindNotOwned {
			if pe.proc != nil || pe.req.Shard < 0 || pe.req.Shard >= m.cfg.Cluster.Shards {
				// Only a single-shard request can be "not owned".
				pe.finish(ipc.Reply{Kind: ipc.KindStat})
				err = errors.New("not-owned reply to a request bound to this worker")
				continue
			}
			m.router.Rehold(pe)
			continue
		}
		if ring := pe.finishQuiet(r); ring != nil {
			b.addWake(ring)
		}
	}
	for i, ring := range b.wake {
		notify(ring.wake)
		b.wake[i] = nil
	}
	b.wake = b.wake[:0]
	clear(b.pes)
	clear(b.replies) // drop the jobs and strings they hold
	b.replies = b.replies[:0]
	return err
}

// addWake adds a ring to wake unless it is among the latest few (a
// connection's replies mostly come together); a duplicate costs only a
// second, cheap notify.
func (b *replyBatch) addWake(ring *callRing) {
	for j := len(b.wake) - 1; j >= 0 && j >= len(b.wake)-8; j-- {
		if b.wake[j] == ring {
			return
		}
	}
	b.wake = append(b.wake, ring)
}

// badFrame closes a worker's link and kills it after a frame that breaks
// the protocol.
func (m *Master) badFrame(p *proc, err error) {
	p.log.Error("bad frame from worker, closing its link", "error", err)
	p.link.Abort()
	p.setState(workerKilled, "bad frame: "+err.Error())
	p.kill()
}
