package jslog

import (
	"fmt"
	"testing"

	"github.com/tockd/tock/internal/natstest"
)

// streamLeader is the index in c.Nodes of shard's stream leader.
func streamLeader(t *testing.T, c *natstest.Cluster, e *Engine, shard int) int {
	t.Helper()
	s, err := e.js.Stream(ctxT(t), StreamName(e.cfg.Cluster, shard))
	if err != nil {
		t.Fatal(err)
	}
	ci := s.CachedInfo().Cluster
	if ci == nil {
		t.Fatal("stream info has no cluster")
	}
	for i, n := range c.Nodes {
		if n.Name == ci.Leader {
			return i
		}
	}
	t.Fatalf("stream leader %q is not a node", ci.Leader)
	return -1
}

// TestLeaderKilledMidPipeline: the shard stream's leader is killed (-9)
// while an owner has a full pipeline of appends in flight, so some were
// stored and not acknowledged, some never arrived (ambiguous timeouts).
// The owner's Sync must get through the election (re-sends), keep
// acknowledging afterwards, and a later owner must replay every record
// any Sync acknowledged — each once, in order (a record written later for
// the same job wins).
func TestLeaderKilledMidPipeline(t *testing.T) {
	killMidPipeline(t, func(c *natstest.Cluster, e *Engine) int { return streamLeader(t, c, e, 0) })
}

// TestConnectionDroppedMidPipeline: the same with the node the owner is
// connected to killed (leader or not): the connection drops with appends
// in flight and reconnects to another node mid-batch.
func TestConnectionDroppedMidPipeline(t *testing.T) {
	killMidPipeline(t, func(c *natstest.Cluster, e *Engine) int {
		name := e.nc.ConnectedServerName()
		for i, n := range c.Nodes {
			if n.Name == name {
				return i
			}
		}
		t.Fatalf("connected to %q, not a node", name)
		return -1
	})
}

func killMidPipeline(t *testing.T, victim func(*natstest.Cluster, *Engine) int) {
	c := natstest.Start(t, 3)
	cl := clusterName(t)
	e1 := engine(t, c, cl, "h1")
	if err := e1.EnsureStreams(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	l1, _, _ := open(t, e1, 0, 1)
	load := startLoad(l1, "job")
	load.waitSyncs(t, 50)
	leader := victim(c, e1)
	c.Kill(leader)
	before := load.syncs()
	load.waitSyncs(t, before+50) // acknowledging again after the election
	close(load.stop)
	<-load.done
	acked, lerr := load.result()
	if lerr != nil {
		t.Fatalf("owner's log failed across a leader election: %v", lerr)
	}
	if err := l1.Close(); err != nil {
		t.Fatal(err)
	}
	c.Restart(leader)

	e2 := engine(t, c, cl, "h2")
	l2, jobs, o := open(t, e2, 0, 2)
	defer l2.Close()
	got := jobsOf(jobs)
	for i, id := range acked {
		j, ok := got[id]
		if !ok {
			t.Fatalf("acknowledged %s (%d of %d) lost across the leader kill; fence at %d", id, i, len(acked), o.FenceSeq)
		}
		if want := int64(i); j.Execution != want {
			t.Fatalf("%s replayed with execution %d, want %d", id, j.Execution, want)
		}
	}
	// Each record once: the stream holds no message twice.
	seen := map[string]uint64{}
	err := e2.ReadShard(ctxT(t), 0, func(m Message) error {
		for _, r := range m.Records {
			if s, dup := seen[r.Job.ID]; dup {
				return fmt.Errorf("%s stored at %d and again at %d", r.Job.ID, s, m.Seq)
			}
			seen[r.Job.ID] = m.Seq
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d records acknowledged, %d in the stream, fence at %d", len(acked), len(seen), o.FenceSeq)
}
