package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tockd/tock/internal/natstest"
	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
	"github.com/tockd/tock/store/jslog"
)

var jsClusterSeq atomic.Int64

// jetStreamSettings is a worker keeping shards 0 and 1 in streams on nc.
func jetStreamSettings(t *testing.T, nc *natstest.Cluster) (ipc.Settings, jslog.Config) {
	t.Helper()
	set := testSettings(t.TempDir())
	set.Persistence = "jetstream"
	set.NumShards = 2
	set.CheckIntervalNs = int64(20 * time.Millisecond)
	name := fmt.Sprintf("w%d", jsClusterSeq.Add(1))
	set.JetStream = &ipc.JetStreamSettings{URLs: nc.URLs(), ClusterName: name, Replicas: 3, HostName: "w1"}
	return set, jslog.Config{URLs: nc.URLs(), Cluster: name, Replicas: 3}
}

// TestJetStream_FencedShard: a worker with persistence = "jetstream"
// serves its shards from their streams; when another host opens one of
// them, the worker's next write there is refused and answered "shard
// unavailable", the shard is listed in Status.Fenced and is not reopened
// (which would fence the new owner out), the other shard goes on, and
// after the master releases it and hands it back, the shard is reopened
// from its stream with what both hosts wrote, at a higher epoch.
func TestJetStream_FencedShard(t *testing.T) {
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
	if err := m.EnsureStreams(ctx, 2); err != nil {
		t.Fatal(err)
	}
	fm := startTestWorker(t, set, []int{0, 1}, nil, runOptions{})
	if r := set0(fm, 0, "keep"); r.Kind != ipc.KindOK {
		t.Fatalf("SET keep: %+v", r)
	}
	f, _, err := m.LastFence(ctx, 0)
	if err != nil || f.Host != "w1" {
		t.Fatalf("shard 0's fence: %+v, %v", f, err)
	}

	cfg.Host = "h2"
	h2, err := jslog.Connect(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	jobs := store.NewJobs()
	l2, o2, err := h2.OpenShard(ctx, 0, 0, jobs)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := jobs.Get("keep"); !ok || o2.Epoch <= f.Epoch {
		t.Fatalf("h2 opened shard 0 at %+v without keep", o2)
	}
	if err := l2.Write([]store.Record{{Type: store.RecordJob, Job: store.Job{ID: "by-h2", Execution: 4102444800000000000, Status: store.Planned}}}); err != nil {
		t.Fatal(err)
	}
	if err := l2.Sync(); err != nil {
		t.Fatal(err)
	}

	r := set0(fm, 0, "refused")
	if r.Kind != ipc.KindError || !strings.HasPrefix(r.Err, "shard unavailable: ") || !strings.Contains(r.Err, "fenced") {
		t.Fatalf("SET on the fenced shard: %+v", r)
	}
	st := fm.waitHeartbeat("shard 0 fenced", func(st ipc.Status) bool { return len(st.Fenced) == 1 && st.Fenced[0] == 0 })
	if st.ShardErrors["0"] == "" {
		t.Fatalf("no shard error for the fenced shard: %+v", st.ShardErrors)
	}
	if r := set0(fm, 1, "other"); r.Kind != ipc.KindOK {
		t.Fatalf("SET on shard 1: %+v", r)
	}
	// Past the retry time of a failed shard it is still down and h2 still
	// owns the stream: the worker did not take it back.
	until := time.Now().Add(shardRetry + time.Second)
	for time.Now().Before(until) {
		var st ipc.Status
		fm.decode(fm.expect(ipc.TypeStatus), &st)
		if len(st.Fenced) != 1 {
			t.Fatalf("fenced shard reopened by the worker: %+v", st)
		}
	}
	if f, _, err := m.LastFence(ctx, 0); err != nil || f.Host != "h2" {
		t.Fatalf("shard 0's fence after the retry time: %+v, %v", f, err)
	}
	if err := l2.Write([]store.Record{{Type: store.RecordJobRemoval, ID: "keep"}}); err != nil {
		t.Fatal(err)
	}
	if err := l2.Sync(); err != nil {
		t.Fatalf("h2 lost shard 0 to the fenced worker: %v", err)
	}

	fm.send(ipc.TypeRelease, ipc.Release{Shards: []int{0}})
	var rel ipc.Released
	fm.decode(fm.expect(ipc.TypeReleased), &rel)
	fm.waitHeartbeat("shard 0 no longer fenced", func(st ipc.Status) bool { return len(st.Fenced) == 0 })
	fm.send(ipc.TypeAcquire, ipc.Acquire{Shards: []int{0}, Epoch: 1})
	var ready ipc.Ready
	fm.decode(fm.expect(ipc.TypeReady), &ready)
	if len(ready.ShardErrors) > 0 || ready.Epochs[0] <= o2.Epoch {
		t.Fatalf("reacquired: %+v (h2 had epoch %d)", ready, o2.Epoch)
	}
	if r := get0(fm, "by-h2"); r.Kind != ipc.KindJob {
		t.Fatalf("GET by-h2 after reacquiring: %+v", r)
	}
	if r := get0(fm, "keep"); r.Kind != ipc.KindError || r.Err != "not found" {
		t.Fatalf("GET keep (removed by h2): %+v", r)
	}
	if err := l2.Write([]store.Record{{Type: store.RecordJobRemoval, ID: "by-h2"}}); err == nil {
		err = l2.Sync()
		if !errors.Is(err, store.ErrFenced) {
			t.Fatalf("h2 after the worker took shard 0 back: %v", err)
		}
	}
}

func set0(fm *fakeMaster, shard int, key string) ipc.Reply {
	return fm.do(ipc.Request{Op: ipc.OpSet, Shard: shard, Key: key, Execution: 4102444800000000000})
}

func get0(fm *fakeMaster, key string) ipc.Reply {
	return fm.do(ipc.Request{Op: ipc.OpGet, Shard: 0, Key: key})
}
