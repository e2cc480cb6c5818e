package jslog

import (
	"fmt"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/internal/natstest"
	"github.com/tockd/tock/store"
)

// TestReplayThroughLaggingReplica: a node is down while the owner writes,
// comes back, and the next owner is connected to that node only, so its
// direct gets (answered by the replicas in the queue group nearest it)
// meet a replica still catching up. The replay must wait for the
// messages up to the fence, not end early or skip, and hold every
// acknowledged record.
func TestReplayThroughLaggingReplica(t *testing.T) {
	c := natstest.Start(t, 3)
	cl := clusterName(t)
	e1 := engine(t, c, cl, "h1")
	if err := e1.EnsureStreams(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	l1, _, _ := open(t, e1, 0, 1)
	lag := (streamLeader(t, c, e1, 0) + 1) % 3 // a follower
	c.Kill(lag)
	var acked []string
	for b := 0; b < 300; b++ {
		var recs []store.Record
		for i := 0; i < 20; i++ {
			id := fmt.Sprintf("job-%d-%d", b, i)
			recs = append(recs, jobRec(id, int64(b)))
			acked = append(acked, id)
		}
		if err := l1.Write(recs); err != nil {
			t.Fatal(err)
		}
	}
	if err := l1.Close(); err != nil {
		t.Fatal(err)
	}
	c.Restart(lag)
	log := hclog.New(&hclog.LoggerOptions{Name: "h2", Level: hclog.Warn, Output: testWriter{t}})
	e2, err := Connect(Config{URLs: []string{c.Nodes[lag].URL()}, Cluster: cl, Replicas: 3, Host: "h2"}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	jobs := store.NewJobs()
	l2, o, err := e2.OpenShard(ctxT(t), 0, 2, jobs)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	got := jobsOf(jobs)
	for _, id := range acked {
		if _, ok := got[id]; !ok {
			t.Fatalf("%s missing from a replay through the lagging replica (fence %d, %d messages read)", id, o.FenceSeq, o.Messages)
		}
	}
	if len(got) != len(acked) {
		t.Fatalf("replayed %d jobs, want %d", len(got), len(acked))
	}
}
