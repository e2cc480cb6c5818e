package jslog

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/tockd/tock/internal/natstest"
	"github.com/tockd/tock/store"
)

// reopenFn reopens shard for a host whose log of it (fenced at mine)
// failed without being fenced.
type reopenFn func(ctx context.Context, e *Engine, shard int, mine Fence) (*ShardLog, Opened, error)

func reopenShard(ctx context.Context, e *Engine, shard int, mine Fence) (*ShardLog, Opened, error) {
	return e.ReopenShard(ctx, shard, mine, store.NewJobs())
}

// TestReopenNeverTakesBack: a host whose log failed (a timeout, not a
// fence) reopens the shard while another host takes it over. The reopen
// must never fence the other host out: either it lands first (and the
// other host's fence follows it, at a higher epoch) or it fails with
// ErrFenced. A check of the last fence followed by an OpenShard was not
// enough (the takeover could land between them).
func TestReopenNeverTakesBack(t *testing.T) {
	c := natstest.Start(t, 3)
	raceReopen(t, c, reopenShard)
}

func raceReopen(t *testing.T, c *natstest.Cluster, reopen reopenFn) {
	cl := clusterName(t)
	const rounds = 12
	e1 := engine(t, c, cl, "h1")
	e2 := engine(t, c, cl, "h2")
	if err := e1.EnsureStreams(ctxT(t), rounds); err != nil {
		t.Fatal(err)
	}
	// Sequential: the takeover is in; the reopen is refused.
	l, _, o := open(t, e1, 0, 1)
	_ = l.Close() // the failed log
	l2, _, o2 := open(t, e2, 0, 1)
	defer l2.Close()
	if _, _, err := reopen(ctxT(t), e1, 0, Fence{Epoch: o.Epoch, Host: "h1", Seq: o.FenceSeq}); !errors.Is(err, ErrFenced) {
		t.Fatalf("reopen after a takeover at epoch %d: %v, want ErrFenced", o2.Epoch, err)
	}
	for shard := 1; shard < rounds; shard++ {
		l, _, o := open(t, e1, shard, 1)
		_ = l.Close()
		mine := Fence{Epoch: o.Epoch, Host: "h1", Seq: o.FenceSeq}
		var wg sync.WaitGroup
		var r1, r2 Opened
		var err1, err2 error
		start := make(chan struct{})
		ctx := ctxT(t)
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			var l *ShardLog
			if l, r1, err1 = reopen(ctx, e1, shard, mine); err1 == nil {
				_ = l.Close()
			}
		}()
		go func() {
			defer wg.Done()
			<-start
			var l *ShardLog
			if l, r2, err2 = e2.OpenShard(ctx, shard, 1, store.NewJobs()); err2 == nil {
				_ = l.Close()
			}
		}()
		close(start)
		wg.Wait()
		if err1 != nil && !errors.Is(err1, ErrFenced) {
			t.Fatalf("round %d: reopen: %v", shard, err1)
		}
		if err2 != nil && !errors.Is(err2, ErrFenced) {
			t.Fatalf("round %d: takeover: %v", shard, err2)
		}
		if err1 == nil && err2 == nil && r1.Epoch > r2.Epoch {
			t.Fatalf("round %d: the reopen (epoch %d, seq %d) fenced out the takeover (epoch %d, seq %d)", shard, r1.Epoch, r1.FenceSeq, r2.Epoch, r2.FenceSeq)
		}
	}
}
