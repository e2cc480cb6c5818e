package worker

import (
	"fmt"
	"testing"
	"time"

	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
)

// TestRelease_DrainWaitsForExecutions: a planned release to another host
// (Release.DrainNs) is answered only once the shard's running execution
// ended, with nothing listed as running, and its outcome is in the shard's
// log: the next owner, which cannot be told what ran here, finds the job
// executed instead of triggered and does not run it again (regression:
// due.51 ran on h1 and again on h2 after a rebalance). A job falling due
// during the drain is not triggered here.
func TestRelease_DrainWaitsForExecutions(t *testing.T) {
	dir := t.TempDir()
	set := testSettings(dir)
	gate := mkfifo(t, dir)
	rules := []store.Rule{shellRule("r", "job.", fmt.Sprintf("read x < %s; true", gate))}
	fm := startTestWorker(t, set, []int{0}, rules, runOptions{})
	exec := time.Now().UnixNano()
	if r := fm.do(ipc.Request{Op: ipc.OpSet, Shard: 0, Key: "job.1", Execution: exec}); r.Kind != ipc.KindOK {
		t.Fatalf("SET: %+v", r)
	}
	fm.waitStatus(0, "job.1", store.Triggered)
	fm.send(ipc.TypeRelease, ipc.Release{Shards: []int{0}, Seq: 7, DrainNs: int64(time.Minute)})
	if r := fm.do(ipc.Request{Op: ipc.OpSet, Shard: 0, Key: "job.2", Execution: time.Now().UnixNano()}); r.Kind != ipc.KindOK {
		t.Fatalf("SET during the drain: %+v", r)
	}
	openGate(t, gate)
	var rel ipc.Released
	fm.decode(fm.expect(ipc.TypeReleased), &rel)
	if rel.Seq != 7 || len(rel.Running) != 0 || rel.Error != "" {
		t.Fatalf("Released = %+v, want seq 7 with nothing running", rel)
	}
	if r := fm.do(ipc.Request{Op: ipc.OpGet, Shard: 0, Key: "job.1"}); r.Kind != ipc.KindNotOwned {
		t.Fatalf("GET after the release: %+v, want not owned", r)
	}
	fm.send(ipc.TypeAcquire, ipc.Acquire{Shards: []int{0}, Seq: 8})
	var ready ipc.Ready
	fm.decode(fm.expect(ipc.TypeReady), &ready)
	if ready.Error != "" {
		t.Fatalf("Ready: %+v", ready)
	}
	if r := fm.do(ipc.Request{Op: ipc.OpGet, Shard: 0, Key: "job.1"}); r.Status != store.Executed || r.Execution != exec {
		t.Fatalf("job.1 after reopening: %+v, want executed (its outcome written before the release)", r)
	}
}

// TestRelease_DrainIsBounded: an execution still running when the drain's
// time is up is listed in Released.Running, as in a release without one.
func TestRelease_DrainIsBounded(t *testing.T) {
	dir := t.TempDir()
	set := testSettings(dir)
	gate := mkfifo(t, dir)
	rules := []store.Rule{shellRule("r", "job.", fmt.Sprintf("read x < %s; true", gate))}
	fm := startTestWorker(t, set, []int{0}, rules, runOptions{})
	t.Cleanup(func() { openGate(t, gate) })
	exec := time.Now().UnixNano()
	if r := fm.do(ipc.Request{Op: ipc.OpSet, Shard: 0, Key: "job.1", Execution: exec}); r.Kind != ipc.KindOK {
		t.Fatalf("SET: %+v", r)
	}
	fm.waitStatus(0, "job.1", store.Triggered)
	fm.send(ipc.TypeRelease, ipc.Release{Shards: []int{0}, DrainNs: int64(100 * time.Millisecond)})
	var rel ipc.Released
	fm.decode(fm.expect(ipc.TypeReleased), &rel)
	if len(rel.Running) != 1 || rel.Running[0].JobID != "job.1" || rel.Running[0].Execution != exec {
		t.Fatalf("Released.Running = %+v, want job.1", rel.Running)
	}
}
