package worker

import (
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
)

// commitBatch is a batch of replies that may be sent only once logs are
// synced. barrier, when set, is closed after the batch is out.
type commitBatch struct {
	logs    []store.ShardLog
	replies []ipc.Reply
	barrier chan struct{}
}

// committer syncs logs and then sends the replies waiting for them. It takes
// every batch queued while it was syncing and covers them with one fsync per
// log: this is the group commit that lets fsync = always keep up with
// pipelined traffic.
type committer struct {
	in      chan commitBatch
	link    *ipc.Link
	log     hclog.Logger
	metrics *metrics // fsync durations and batch sizes
	done    chan struct{}
}

func newCommitter(link *ipc.Link, log hclog.Logger, m *metrics) *committer {
	c := &committer{in: make(chan commitBatch, 1024), link: link, log: log, metrics: m, done: make(chan struct{})}
	go c.run()
	return c
}

func (c *committer) run() {
	defer close(c.done)
	for b := range c.in {
		batches := []commitBatch{b}
	drain:
		for len(batches) < 1024 {
			select {
			case nb, ok := <-c.in:
				if !ok {
					break drain
				}
				batches = append(batches, nb)
			default:
				break drain
			}
		}
		c.commit(batches)
	}
}

func (c *committer) commit(batches []commitBatch) {
	acks := 0
	for _, b := range batches {
		acks += len(b.replies)
	}
	if acks > 0 {
		c.metrics.batch.Observe(float64(acks))
	}
	failed := map[store.ShardLog]error{}
	seen := map[store.ShardLog]bool{}
	for _, b := range batches {
		for _, l := range b.logs {
			if seen[l] {
				continue
			}
			seen[l] = true
			start := time.Now()
			err := l.Sync()
			c.metrics.fsync.Observe(time.Since(start).Seconds())
			if err != nil {
				c.log.Error("sync shard log", "error", err)
				failed[l] = err
			}
		}
	}
	for _, b := range batches {
		syncErr := ""
		for _, l := range b.logs {
			if err := failed[l]; err != nil {
				syncErr = "write failed: " + err.Error()
			}
		}
		for _, r := range b.replies {
			if syncErr != "" && r.Kind == ipc.KindOK {
				r = ipc.Reply{Seq: r.Seq, Kind: ipc.KindError, Err: syncErr}
			}
			if err := c.link.SendReply(r); err != nil {
				c.log.Debug("send reply", "error", err)
			}
		}
		if b.barrier != nil {
			close(b.barrier)
		}
	}
}

// submit queues a batch.
func (c *committer) submit(b commitBatch) { c.in <- b }

// wait blocks until every batch submitted so far is out.
func (c *committer) wait() {
	ch := make(chan struct{})
	c.in <- commitBatch{barrier: ch}
	<-ch
}

func (c *committer) close() {
	close(c.in)
	<-c.done
}
