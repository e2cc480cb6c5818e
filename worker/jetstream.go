package worker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/tockd/tock/config"
	"github.com/tockd/tock/store"
	"github.com/tockd/tock/store/jslog"
)

// persistence = "jetstream" (docs/scale-out.md, "Shard streams"): a
// shard's log is its JetStream stream. Opening a shard fences the stream
// at an epoch of at least the master's hint, and replays it; a write the
// stream refuses because another host fenced it fails the shard through
// the usual fault path (fault.go), except that a fenced shard is never
// reopened here: reopening would fence the new owner out and take the
// shard back. It stays down, listed in Status.Fenced, until the master
// releases it.

// Opening a shard blocks the worker's loop. jetStreamOpenTimeout bounds
// it at an Acquire: a NATS leader election (up to 9 s) plus the replay,
// under the master's default worker_timeout (30 s). A reopen after a
// failure is retried every shardRetry anyway, so it gives up sooner and
// the shard's siblings are not held up for long while NATS has no quorum.
const (
	jetStreamOpenTimeout   = 20 * time.Second
	jetStreamReopenTimeout = 5 * time.Second
)

func (w *Worker) jetStreamMode() bool { return w.set.Persistence == config.PersistenceJetStream }

// jetStream is the worker's engine, connected on first use: one
// connection for every shard of the process.
func (w *Worker) jetStream() (*jslog.Engine, error) {
	if w.js != nil {
		return w.js, nil
	}
	if w.set.JetStream == nil {
		return nil, errors.New(`persistence = "jetstream" but the master sent no [jetstream] settings`)
	}
	e, err := jslog.Connect(jslog.ConfigFrom(w.set.JetStream), w.log.Named("jetstream"))
	if err != nil {
		return nil, err
	}
	w.js = e
	return e, nil
}

// closeJetStream closes the engine after the shards are closed.
func (w *Worker) closeJetStream() {
	if w.js != nil {
		w.js.Close()
		w.js = nil
	}
}

// openStreamShard opens shard n from its stream with epoch hint. A reopen
// after a failure first checks that the last fence is still this host's
// at that epoch: if another host fenced the shard meanwhile, it is not
// taken back (ErrFenced).
func (w *Worker) openStreamShard(n int, hint uint64, running map[string]int64, reopen bool) (*shard, error) {
	e, err := w.jetStream()
	if err != nil {
		return nil, fmt.Errorf("open shard %d: %w", n, err)
	}
	timeout := jetStreamOpenTimeout
	if reopen {
		timeout = jetStreamReopenTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if reopen {
		f, ok, err := e.LastFence(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("open shard %d: %w", n, err)
		}
		if ok && (f.Host != e.Config().Host || f.Epoch > hint) {
			return nil, fmt.Errorf("open shard %d: %w: host %q opened it at epoch %d (seq %d)", n, store.ErrFenced, f.Host, f.Epoch, f.Seq)
		}
	}
	sh := &shard{id: n, jobs: store.NewJobs(), compaction: "idle", lastCompact: time.Now(), openedAt: time.Now().UnixNano()}
	l, opened, err := e.OpenShard(ctx, n, hint, sh.jobs)
	if err != nil {
		return nil, fmt.Errorf("open shard %d: %w", n, err)
	}
	sh.log, sh.epoch = l, opened.Epoch
	if w.opts.wrapLog != nil {
		sh.log = w.opts.wrapLog(n, sh.log)
	}
	if !reopen && opened.Previous.Host != "" && opened.Previous.Host != e.Config().Host {
		running = sh.awaitTakeover(running) // takeover.go
	}
	rerun := replanTriggered(sh, running)
	w.log.Debug("shard opened from its stream", "shard", n, "records", opened.Records, "messages", opened.Messages,
		"jobs", sh.jobs.Len(), "rerun", rerun, "epoch", opened.Epoch, "fence_seq", opened.FenceSeq,
		"previous_epoch", opened.Previous.Epoch, "previous_host", opened.Previous.Host)
	return sh, nil
}

// isFenced reports whether a shard failure means another host has it.
func (w *Worker) isFenced(sh *shard, cause error) bool {
	if !w.jetStreamMode() {
		return false
	}
	return errors.Is(cause, store.ErrFenced) || errors.Is(sh.log.Failed(), store.ErrFenced)
}

// fencedShards is Status.Fenced.
func (w *Worker) fencedShards() []int {
	if len(w.fenced) == 0 {
		return nil
	}
	out := make([]int, 0, len(w.fenced))
	for n := range w.fenced {
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}
