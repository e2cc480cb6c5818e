package jslog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tockd/tock/internal/natstest"
	"github.com/tockd/tock/store"
)

// ownerLoad is an owner appending as fast as it can, the way a worker
// does: one goroutine Writes (the loop), another Syncs over and over (the
// committer), so the pipeline never drains. acked are the ids of every
// record written before a Sync that returned nil: what its clients were
// told is durable.
type ownerLoad struct {
	l       *ShardLog
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	written []string
	nacked  int // written[:nacked] are acknowledged
	n       int // Syncs that returned nil
	err     error
}

func startLoad(l *ShardLog, prefix string) *ownerLoad {
	o := &ownerLoad{l: l, stop: make(chan struct{}), done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	deadline := time.Now().Add(testTimeout)
	go func() { // the loop
		defer wg.Done()
		for i := 0; time.Now().Before(deadline) && !o.ended(); i++ {
			id := fmt.Sprintf("%s-%d", prefix, i)
			if err := l.Write([]store.Record{jobRec(id, int64(i))}); err != nil {
				o.finish(err)
				return
			}
			o.mu.Lock()
			o.written = append(o.written, id)
			o.mu.Unlock()
		}
	}()
	go func() { // the committer
		defer wg.Done()
		for time.Now().Before(deadline) && !o.ended() {
			o.mu.Lock()
			n := len(o.written)
			o.mu.Unlock()
			if err := l.Sync(); err != nil {
				o.finish(err)
				return
			}
			o.mu.Lock()
			o.nacked, o.n = n, o.n+1
			o.mu.Unlock()
		}
	}()
	go func() { wg.Wait(); close(o.done) }()
	return o
}

func (o *ownerLoad) ended() bool {
	select {
	case <-o.stop:
		return true
	default:
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err != nil
}

func (o *ownerLoad) finish(err error) {
	o.mu.Lock()
	if o.err == nil {
		o.err = err
	}
	o.mu.Unlock()
}

func (o *ownerLoad) result() ([]string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.written[:o.nacked], o.err
}

// syncs is how many Syncs have returned nil so far.
func (o *ownerLoad) syncs() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}

// waitSyncs polls until n Syncs have succeeded (the load is running).
func (o *ownerLoad) waitSyncs(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for o.syncs() < n {
		if time.Now().After(deadline) {
			t.Fatalf("load made %d syncs, want %d", o.syncs(), n)
		}
		select {
		case <-o.done:
			_, err := o.result()
			t.Fatalf("load ended early: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestTakeoverWhileOldOwnerAppends: a new owner fences a shard whose old
// owner keeps appending pipelined batches (a partitioned host that has
// not noticed it lost its lease). The fence must land, the old owner's
// log must fail with ErrFenced, and every record it had acknowledged must
// be in the new owner's replay.
func TestTakeoverWhileOldOwnerAppends(t *testing.T) {
	c := natstest.Start(t, 3)
	cl := clusterName(t)
	e1 := engine(t, c, cl, "h1")
	if err := e1.EnsureStreams(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	l1, _, _ := open(t, e1, 0, 1)
	load := startLoad(l1, "old")
	defer func() { close(load.stop); <-load.done }()
	load.waitSyncs(t, 20)

	e2 := engine(t, c, cl, "h2")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	jobs := store.NewJobs()
	l2, o2, err := e2.OpenShard(ctx, 0, 2, jobs)
	if err != nil {
		t.Fatalf("takeover while the old owner appends: %v (old owner synced %d times)", err, load.syncs())
	}
	defer l2.Close()
	<-load.done
	acked, lerr := load.result()
	if !errors.Is(lerr, ErrFenced) {
		t.Fatalf("old owner's log ended with %v, want ErrFenced", lerr)
	}
	got := jobsOf(jobs)
	for _, id := range acked {
		if _, ok := got[id]; !ok {
			t.Fatalf("acknowledged %s missing after takeover at seq %d", id, o2.FenceSeq)
		}
	}
	t.Logf("old owner acknowledged %d records; fence at %d", len(acked), o2.FenceSeq)
}
