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
// after a failure (reopen) fences again only if the failed log's fence is
// still the last one (jslog.ReopenShard, one compare-and-set): if another
// host fenced the shard meanwhile, even just before, it is not taken back
// (ErrFenced). A shard whose open failed before it was fenced here checks
// that no other host opened it since.
func (w *Worker) openStreamShard(n int, hint uint64, running map[string]int64, reopen *failedShard) (*shard, error) {
	e, err := w.jetStream()
	if err != nil {
		return nil, fmt.Errorf("open shard %d: %w", n, err)
	}
	timeout := jetStreamOpenTimeout
	if reopen != nil {
		timeout = jetStreamReopenTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if reopen != nil && reopen.fenceSeq == 0 {
		f, ok, err := e.LastFence(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("open shard %d: %w", n, err)
		}
		if ok && (f.Host != e.Config().Host || f.Epoch > hint) {
			return nil, fmt.Errorf("open shard %d: %w: host %q opened it at epoch %d (seq %d)", n, store.ErrFenced, f.Host, f.Epoch, f.Seq)
		}
	}
	sh := &shard{id: n, jobs: store.NewJobs(), compaction: "idle", lastCompact: time.Now(), openedAt: time.Now().UnixNano()}
	var l *jslog.ShardLog
	var opened jslog.Opened
	if reopen != nil && reopen.fenceSeq != 0 {
		mine := jslog.Fence{Epoch: reopen.epoch, Host: e.Config().Host, Seq: reopen.fenceSeq}
		l, opened, err = e.ReopenShard(ctx, n, mine, sh.jobs)
	} else {
		l, opened, err = e.OpenShard(ctx, n, hint, sh.jobs)
	}
	if err != nil {
		return nil, fmt.Errorf("open shard %d: %w", n, err)
	}
	sh.log, sh.epoch, sh.fenceSeq = l, opened.Epoch, opened.FenceSeq
	if w.opts.wrapLog != nil {
		sh.log = w.opts.wrapLog(n, sh.log)
	}
	if reopen == nil && opened.Previous.Host != "" && opened.Previous.Host != e.Config().Host {
		running = sh.awaitTakeover(running) // takeover.go
	}
	rerun := replanTriggered(sh, running)
	w.log.Debug("shard opened from its stream", "shard", n, "records", opened.Records, "messages", opened.Messages,
		"jobs", sh.jobs.Len(), "rerun", rerun, "epoch", opened.Epoch, "fence_seq", opened.FenceSeq,
		"previous_epoch", opened.Previous.Epoch, "previous_host", opened.Previous.Host)
	return sh, nil
}

// staleStreamShard reports whether open shard sh is behind its stream: the
// master acquires it at a higher epoch than sh's (its lease moved on since
// this worker opened the shard) and the stream's last fence is not sh's.
// A shard that wrote nothing since another host fenced it has not failed
// yet, and would serve reads from before that host's writes.
func (w *Worker) staleStreamShard(sh *shard, epoch uint64) bool {
	if !w.jetStreamMode() || epoch <= sh.epoch || sh.fenceSeq == 0 {
		return false
	}
	e, err := w.jetStream()
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), jetStreamReopenTimeout)
	defer cancel()
	f, ok, err := e.LastFence(ctx, sh.id)
	if err != nil {
		w.log.Warn("cannot check the shard's last fence; keeping it open", "shard", sh.id, "error", err)
		return false
	}
	return ok && f.Seq != sh.fenceSeq
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
