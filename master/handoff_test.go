package master

import (
	"strings"
	"testing"
	"time"

	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
)

// Scenario tests of the handoff against scripted fake workers, named by
// index and phase: in a 2-worker, 4-shard cluster, old0 and old1 boot
// with shards 0,2 and 1,3; a rollout spawns new0 (takes 0 then 2 from
// old0), then new1 (1 and 3 from old1).
var (
	old0 = wp{0, 0}
	new0 = wp{0, 1}
)

func (fc *fakeCluster) w(k wp) *fakeWorker { return fc.fs.worker(k.index, k.phase) }

// hang never answers.
func hang(*fakeWorker, ipc.Release) bool { return true }

// TestHandoffScenario_ReleaseTimeout: the old owner never answers Release;
// it is killed and reaped before the new owner opens the shard, and the
// rollout still moves every shard.
func TestHandoffScenario_ReleaseTimeout(t *testing.T) {
	fc := startFakeCluster(t, map[wp]*fakeScript{old0: {onRelease: hang}})
	if err := fc.rollOut(); err != nil {
		t.Fatalf("rollout: %v", err)
	}
	if !fc.w(old0).isDead() {
		t.Fatal("the worker that did not release is alive")
	}
	fc.settled()
	for s := 0; s < 4; s++ {
		if ph := fc.fs.ownerOf(s).phase; ph != 1 {
			t.Errorf("shard %d is with a worker of phase %d, want 1", s, ph)
		}
	}
}

// TestHandoffScenario_AcquireTimeout: the new owner starts opening the
// shard but does not answer Acquire in time (a slow replay); it is killed
// and reaped before the old owner takes the shard back, at a higher epoch
// (regression: the new owner lived on and both wrote the shard). The next
// rollout moves every shard.
func TestHandoffScenario_AcquireTimeout(t *testing.T) {
	slow := &fakeScript{onAcquire: func(fw *fakeWorker, a ipc.Acquire) bool {
		fw.open(a.Shards, a.Epoch) // replaying; would write once done
		return true
	}}
	fc := startFakeCluster(t, map[wp]*fakeScript{new0: slow})
	if err := fc.rollOut(); err == nil {
		t.Fatal("rollout with a new worker that never acquires succeeded")
	}
	newer, old := fc.w(new0), fc.w(old0)
	if !newer.isDead() {
		t.Fatal("the new worker that timed out on Acquire is alive")
	}
	if fc.fs.ownerOf(0) != old || old.epochOf(0) <= newer.epochOf(0) {
		t.Fatalf("shard 0 with #%d at epoch %d, the timed-out owner had %d", fc.fs.ownerOf(0).n, old.epochOf(0), newer.epochOf(0))
	}
	fc.settled()
	if err := fc.rollOut(); err != nil {
		t.Fatalf("second rollout: %v", err)
	}
	fc.settled()
}

// TestHandoffScenario_ReleaseAndAcquireTimeout: both owners fail; the
// shard is never left without one: the new owner's replacement opens it
// (regression: the shard had no owner and every later rollout failed).
func TestHandoffScenario_ReleaseAndAcquireTimeout(t *testing.T) {
	slow := &fakeScript{onAcquire: func(fw *fakeWorker, a ipc.Acquire) bool {
		fw.open(a.Shards, a.Epoch)
		return true
	}}
	fc := startFakeCluster(t, map[wp]*fakeScript{old0: {onRelease: hang}, new0: slow})
	if err := fc.rollOut(); err == nil {
		t.Fatal("rollout succeeded")
	}
	fc.settled()
	if err := fc.rollOut(); err != nil {
		t.Fatalf("second rollout: %v", err)
	}
	fc.settled()
}

// TestHandoffScenario_DeathMidHandoff: the old owner dies instead of
// answering Release; the new owner opens the shard from disk once the old
// one is reaped, and its other shard is adopted too.
func TestHandoffScenario_DeathMidHandoff(t *testing.T) {
	die := func(fw *fakeWorker, _ ipc.Release) bool { fw.die(); return true }
	fc := startFakeCluster(t, map[wp]*fakeScript{old0: {onRelease: die}})
	if err := fc.rollOut(); err != nil {
		t.Fatalf("rollout: %v", err)
	}
	fc.settled()
}

// running job j of shard 0, execution 7.
var spanJob = ipc.RunningJob{Shard: 0, JobID: "j", Execution: 7}

// waitOutcome returns the next Outcome fw gets from the master.
func waitOutcome(t *testing.T, fw *fakeWorker) ipc.Outcome {
	t.Helper()
	select {
	case o := <-fw.outcomes:
		return o
	case <-time.After(20 * time.Second):
		t.Fatalf("worker #%d got no outcome", fw.n)
		return ipc.Outcome{}
	}
}

// TestHandoffScenario_DeathWhileDraining: the old owner dies with an
// execution of a moved shard still running; the new owner is told to run
// the job again (regression: it waited for the outcome for ever).
func TestHandoffScenario_DeathWhileDraining(t *testing.T) {
	old := &fakeScript{running: map[int][]ipc.RunningJob{0: {spanJob}}, onShutdown: func(fw *fakeWorker) { fw.die() }}
	fc := startFakeCluster(t, map[wp]*fakeScript{old0: old})
	if err := fc.rollOut(); err != nil {
		t.Fatalf("rollout: %v", err)
	}
	o := waitOutcome(t, fc.w(new0))
	if !o.Requeue || o.JobID != "j" || o.Execution != 7 || o.Shard != 0 {
		t.Fatalf("new owner got %+v, want a requeue of j", o)
	}
	if n := fc.m.spans.count(); n != 0 {
		t.Fatalf("%d executions still tracked", n)
	}
}

// TestHandoffScenario_ExecutionSpansHandoff: the old owner's execution of
// a moved shard finishes while it drains; its outcome reaches the new
// owner once, and nothing is requeued after the old owner exits.
func TestHandoffScenario_ExecutionSpansHandoff(t *testing.T) {
	old := &fakeScript{running: map[int][]ipc.RunningJob{0: {spanJob}}, onShutdown: func(fw *fakeWorker) {
		fw.send(ipc.TypeOutcome, ipc.Outcome{Shard: 0, JobID: "j", Execution: 7, Outcome: store.Outcome{ExitCode: 0}})
	}}
	fc := startFakeCluster(t, map[wp]*fakeScript{old0: old})
	if err := fc.rollOut(); err != nil {
		t.Fatalf("rollout: %v", err)
	}
	o := waitOutcome(t, fc.w(new0))
	if o.Requeue || o.JobID != "j" {
		t.Fatalf("new owner got %+v, want j's outcome", o)
	}
	waitUntil(t, "old worker exit", fc.w(old0).isDead)
	waitUntil(t, "tracking to end", func() bool { return fc.m.spans.count() == 0 })
	select {
	case o := <-fc.w(new0).outcomes:
		t.Fatalf("second outcome %+v", o)
	default:
	}
}

// TestHandoffScenario_ReleasedError: the old owner's final fsync fails
// (Released.Error); the handoff fails, the new owner never opens the shard
// and the old one reopens it from its file (regression: the error was
// ignored and the new owner replayed records answered ERROR).
func TestHandoffScenario_ReleasedError(t *testing.T) {
	fsyncFails := func(fw *fakeWorker, r ipc.Release) bool {
		fw.release(r, "sync 000.log: fsync: input/output error")
		return true
	}
	fc := startFakeCluster(t, map[wp]*fakeScript{old0: {onRelease: fsyncFails}})
	err := fc.rollOut()
	if err == nil || !strings.Contains(err.Error(), "input/output error") {
		t.Fatalf("rollout: %v, want the release error", err)
	}
	if e := fc.w(new0).epochOf(0); e != 0 {
		t.Fatalf("the new owner opened shard 0 (epoch %d)", e)
	}
	fc.settled()
	if fc.fs.ownerOf(0) != fc.w(old0) {
		t.Fatalf("shard 0 with #%d, want the old owner back", fc.fs.ownerOf(0).n)
	}
}

// TestHandoffScenario_DuplicateAndStaleAnswers: a Released sent twice and a
// Ready answering another request are dropped, not taken as the answer
// and not a reason to kill the worker.
func TestHandoffScenario_DuplicateAndStaleAnswers(t *testing.T) {
	dup := func(fw *fakeWorker, r ipc.Release) bool {
		fw.send(ipc.TypeReleased, ipc.Released{Seq: r.Seq + 1000, Shards: r.Shards}) // another request's
		fw.release(r, "")
		fw.send(ipc.TypeReleased, ipc.Released{Seq: r.Seq, Shards: r.Shards}) // duplicate
		return true
	}
	stale := func(fw *fakeWorker, a ipc.Acquire) bool {
		fw.send(ipc.TypeReady, ipc.Ready{Seq: a.Seq + 1000, Shards: a.Shards, Error: "stale"})
		fw.open(a.Shards, a.Epoch)
		fw.send(ipc.TypeReady, ipc.Ready{Seq: a.Seq, Shards: a.Shards})
		return true
	}
	fc := startFakeCluster(t, map[wp]*fakeScript{old0: {onRelease: dup}, new0: {onAcquire: stale}})
	if err := fc.rollOut(); err != nil {
		t.Fatalf("rollout: %v", err)
	}
	if fc.w(new0).isDead() {
		t.Fatal("new worker killed over a stale answer")
	}
	fc.settled()
}
