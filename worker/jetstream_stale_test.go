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

// TestJetStream_AcquireAfterAnotherOwner: the worker has shard 0 open and
// writes nothing while another host fences it and writes a job; then the
// master acquires shard 0 again at a higher epoch (its lease came back)
// without a Release in between. The worker must not answer from what it
// held before: it reopens the shard from the stream, at an epoch above
// the other host's, and serves the other host's job.
func TestJetStream_AcquireAfterAnotherOwner(t *testing.T) {
	nc := natstest.Start(t, 3)
	set, cfg := jetStreamSettings(t, nc)
	cfg.Host = "master"
	m, err := jslog.Connect(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := m.EnsureStreams(ctx, 1); err != nil {
		t.Fatal(err)
	}
	fm := startTestWorker(t, set, []int{0}, nil, runOptions{})
	if r := set0(fm, 0, "keep"); r.Kind != ipc.KindOK {
		t.Fatalf("SET keep: %+v", r)
	}

	cfg.Host = "h2"
	h2, err := jslog.Connect(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	l2, o2, err := h2.OpenShard(ctx, 0, 0, store.NewJobs())
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.Write([]store.Record{{Type: store.RecordJob, Job: store.Job{ID: "by-h2", Execution: 4102444800000000000, Status: store.Planned}}}); err != nil {
		t.Fatal(err)
	}
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}

	fm.send(ipc.TypeAcquire, ipc.Acquire{Shards: []int{0}, Epoch: o2.Epoch + 1})
	var ready ipc.Ready
	fm.decode(fm.expect(ipc.TypeReady), &ready)
	if len(ready.ShardErrors) > 0 || ready.Epochs[0] <= o2.Epoch {
		t.Fatalf("acquired again: %+v (h2 had epoch %d)", ready, o2.Epoch)
	}
	if r := get0(fm, "by-h2"); r.Kind != ipc.KindJob {
		t.Fatalf("GET by-h2, written by the other host meanwhile: %+v", r)
	}
	if r := set0(fm, 0, "after"); r.Kind != ipc.KindOK {
		t.Fatalf("SET after reacquiring: %+v", r)
	}
}
