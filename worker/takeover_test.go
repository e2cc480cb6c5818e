package worker

import (
	"context"
	"testing"
	"time"

	"github.com/tockd/tock/internal/natstest"
	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
	"github.com/tockd/tock/store/jslog"
)

// TestJetStream_TakeoverAwaitsPreviousHost: a shard taken over from
// another host, which left two jobs triggered, waits for that host's
// outcomes before running them again: job.1's outcome (forwarded by the
// master) is recorded and job.1 does not run here; job.2's never comes and
// it runs here once the grace is over (regression: due.13 ran on h3, whose
// lease had lapsed, and again on h1, which took the shard over while h3's
// outcome was on its way).
func TestJetStream_TakeoverAwaitsPreviousHost(t *testing.T) {
	nc := natstest.Start(t, 3)
	set, cfg := jetStreamSettings(t, nc)
	cfg.Host = "h2"
	eng, err := jslog.Connect(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := eng.EnsureStreams(ctx, 2); err != nil {
		t.Fatal(err)
	}
	l, _, err := eng.OpenShard(ctx, 0, 0, store.NewJobs())
	if err != nil {
		t.Fatal(err)
	}
	exec := time.Now().UnixNano()
	var recs []store.Record
	for _, id := range []string{"job.1", "job.2"} {
		recs = append(recs, store.Record{Type: store.RecordJob, Job: store.Job{ID: id, Execution: exec, Status: store.Planned}},
			statusRecord(id, exec, store.Triggered, nil))
	}
	if err := l.Write(recs); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	fm := startTestWorker(t, set, []int{0, 1}, []store.Rule{shellRule("r", "job.", "true")}, runOptions{})
	fm.send(ipc.TypeOutcome, ipc.Outcome{Shard: 0, JobID: "job.1", Execution: exec, Outcome: store.Outcome{ExitCode: 3, Error: "exit status 3"}})
	fm.waitStatus(0, "job.1", store.Failed)
	fm.waitStatus(0, "job.2", store.Executed)
	if r := fm.do(ipc.Request{Op: ipc.OpInfo, Shard: 0, Key: "job.1"}); r.Outcome == nil || r.Outcome.ExitCode != 3 {
		t.Fatalf("job.1: %+v, want the previous host's outcome (exit 3), not a run here", r)
	}
}
