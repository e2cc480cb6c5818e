package jslog

import (
	"fmt"
	"testing"

	"github.com/tockd/tock/internal/natstest"
	"github.com/tockd/tock/store"
)

// leaderOf is the index in c.Nodes of shard's stream leader.
func leaderOf(t *testing.T, c *natstest.Cluster, e *Engine, shard int) int {
	t.Helper()
	s, err := e.js.Stream(ctxT(t), StreamName(e.cfg.Cluster, shard))
	if err != nil {
		t.Fatal(err)
	}
	ci := s.CachedInfo().Cluster
	for i, n := range c.Nodes {
		if ci != nil && n.Name == ci.Leader {
			return i
		}
	}
	t.Fatalf("no leader for shard %d: %+v", shard, ci)
	return -1
}

// writeAcked writes n batches with ids prefix-i and syncs; it returns the
// ids acknowledged, or those and the error that ended it.
func writeAcked(l *ShardLog, prefix string, n int) ([]string, error) {
	var ids []string
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		if err := l.Write([]store.Record{jobRec(id, int64(i))}); err != nil {
			return ids, err
		}
		if i%10 == 9 || i == n-1 {
			if err := l.Sync(); err != nil {
				return ids, err
			}
			for j := i - i%10; j <= i; j++ {
				ids = append(ids, fmt.Sprintf("%s-%d", prefix, j))
			}
		}
	}
	return ids, nil
}

func mustHave(t *testing.T, jobs *store.Jobs, ids []string) {
	t.Helper()
	got := jobsOf(jobs)
	for _, id := range ids {
		if _, ok := got[id]; !ok {
			t.Fatalf("acknowledged job %s missing (%d jobs replayed)", id, len(got))
		}
	}
}

// TestLeaderKilled: kill -9 of the node leading the shard's stream. The
// owner's next Sync rides out the election (its appends are re-sent and
// confirmed once a new leader answers), and a new owner replays every
// acknowledged record, before and after the crash.
func TestLeaderKilled(t *testing.T) {
	c := natstest.Start(t, 3)
	cl := clusterName(t)
	e1 := engine(t, c, cl, "h1")
	if err := e1.EnsureStreams(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	l, _, _ := open(t, e1, 0, 1)
	before, err := writeAcked(l, "before", 100)
	if err != nil {
		t.Fatal(err)
	}
	leader := leaderOf(t, c, e1, 0)
	c.Kill(leader)
	after, err := writeAcked(l, "after", 50)
	if err != nil {
		t.Fatalf("writes after the leader's crash: %v", err)
	}
	e2 := engine(t, c, cl, "h2")
	_, jobs2, _ := open(t, e2, 0, 1)
	mustHave(t, jobs2, before)
	mustHave(t, jobs2, after)
	c.Restart(leader)
	c.WaitReady()
}

// TestTwoOfThreeRestart: kill -9 of two of the three nodes stops the
// shard's writes (no quorum); once both are back, writes resume — on the
// same log if its Sync outlasted the outage, or on the shard reopened as
// the worker would after a failed one — and nothing acknowledged is lost.
func TestTwoOfThreeRestart(t *testing.T) {
	c := natstest.Start(t, 3)
	cl := clusterName(t)
	e1 := engine(t, c, cl, "h1")
	if err := e1.EnsureStreams(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	l, _, _ := open(t, e1, 0, 1)
	acked, err := writeAcked(l, "before", 100)
	if err != nil {
		t.Fatal(err)
	}
	c.Kill(1)
	c.Kill(2)
	res := make(chan error, 1)
	var during []string
	go func() {
		var err error
		during, err = writeAcked(l, "during", 20)
		res <- err
	}()
	c.Restart(1)
	c.Restart(2)
	c.WaitReady()
	if err := <-res; err != nil {
		t.Logf("writes across the outage failed (%v); reopening the shard", err)
		var jobs *store.Jobs
		l, jobs, _ = open(t, e1, 0, l.Epoch())
		mustHave(t, jobs, acked)
	}
	acked = append(acked, during...)
	more, err := writeAcked(l, "after", 50)
	if err != nil {
		t.Fatalf("writes after the restart: %v", err)
	}
	acked = append(acked, more...)
	e2 := engine(t, c, cl, "h2")
	_, jobs2, _ := open(t, e2, 0, 1)
	mustHave(t, jobs2, acked)
}
