package master

import (
	"hash/fnv"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/ipc"
)

// TestShardOf pins the shard function (docs/files.md: FNV-1a 32 mod shards):
// changing it would move every job of an existing data dir.
func TestShardOf(t *testing.T) {
	for _, id := range []string{"", "a", "backup.daily", "deploy.release.42", "\xff\x00"} {
		h := fnv.New32a()
		h.Write([]byte(id))
		for _, n := range []int{1, 7, 16, 4096} {
			if got, want := ShardOf(id, n), int(h.Sum32()%uint32(n)); got != want {
				t.Errorf("ShardOf(%q, %d) = %d, want %d", id, n, got, want)
			}
		}
	}
}

func TestAssignShards(t *testing.T) {
	got := assignShards(5, 2)
	if len(got) != 2 || len(got[0]) != 3 || len(got[1]) != 2 || got[0][1] != 2 || got[1][0] != 1 {
		t.Fatalf("assignShards(5,2) = %v", got)
	}
}

func TestBackoff(t *testing.T) {
	cases := []struct {
		failures int
		want     time.Duration
	}{{0, 100 * time.Millisecond}, {1, 200 * time.Millisecond}, {3, 800 * time.Millisecond}, {9, 30 * time.Second}, {50, 30 * time.Second}}
	for _, c := range cases {
		if got := backoffFor(c.failures); got != c.want {
			t.Errorf("backoffFor(%d) = %s, want %s", c.failures, got, c.want)
		}
	}
}

// fakeProc is a proc whose link's far end the test reads.
func fakeProc(t *testing.T) (*proc, *ipc.Link) {
	a, b := net.Pipe()
	p := &proc{link: ipc.NewLink(a), inflight: map[uint64]*pending{}, log: hclog.NewNullLogger()}
	far := ipc.NewLink(b)
	t.Cleanup(func() { p.link.Abort(); far.Abort() })
	return p, far
}

// drain reads and drops every frame the router sends to a fake worker.
func drain(far *ipc.Link) {
	for {
		if _, err := far.Recv(); err != nil {
			return
		}
	}
}

// TestRouter_HoldThenRelease: requests for a shard without owner are held
// and released in order to the new owner (docs/operations.md handoff).
func TestRouter_HoldThenRelease(t *testing.T) {
	r := NewRouter(2, 10, time.Minute)
	for i := 0; i < 3; i++ {
		r.Route(&pending{req: ipc.Request{Op: ipc.OpGet, Shard: 1, Key: string(rune('a' + i))}, deliver: func(ipc.Reply) {}})
	}
	if r.Held() != 3 {
		t.Fatalf("held %d, want 3", r.Held())
	}
	p, far := fakeProc(t)
	go r.SetOwner([]int{1}, p)
	for i := 0; i < 3; i++ {
		f, err := far.Recv()
		if err != nil {
			t.Fatal(err)
		}
		req, err := ipc.DecodeRequest(f.Payload)
		if err != nil || req.Key != string(rune('a'+i)) {
			t.Fatalf("request %d: %+v %v", i, req, err)
		}
	}
}

// TestRouter_BoundsAndExpiry: past the bound or the hold time, held
// requests fail with "shard unavailable".
func TestRouter_BoundsAndExpiry(t *testing.T) {
	r := NewRouter(1, 2, time.Second)
	errs := make(chan string, 10)
	deliver := func(rep ipc.Reply) { errs <- rep.Err }
	for i := 0; i < 3; i++ {
		r.Route(&pending{req: ipc.Request{Op: ipc.OpGet}, deliver: deliver})
	}
	if got := <-errs; got != ErrShardUnavailable.Error() {
		t.Fatalf("over the bound: %q", got)
	}
	r.Expire(time.Now().Add(2 * time.Second))
	for i := 0; i < 2; i++ {
		if got := <-errs; got != ErrShardUnavailable.Error() {
			t.Fatalf("expired: %q", got)
		}
	}
	if r.Held() != 0 {
		t.Fatalf("held after expiry: %d", r.Held())
	}
}

// TestRouter_WorkerGone: idempotent in-flight requests are retried, a
// REMOVE is answered "worker crashed".
func TestRouter_WorkerGone(t *testing.T) {
	r := NewRouter(1, 10, time.Minute)
	p, far := fakeProc(t)
	go drain(far)
	r.SetOwner([]int{0}, p)
	results := make(chan string, 2)
	r.Route(&pending{req: ipc.Request{Op: ipc.OpSet, Key: "s"}, deliver: func(rep ipc.Reply) { results <- "set:" + rep.Err }})
	r.Route(&pending{req: ipc.Request{Op: ipc.OpRemove, Key: "r"}, deliver: func(rep ipc.Reply) { results <- "remove:" + rep.Err }})
	r.WorkerGone(p)
	if got := <-results; got != "remove:"+ErrWorkerCrashed.Error() {
		t.Fatalf("REMOVE on crash: %q", got)
	}
	if r.Held() != 1 {
		t.Fatalf("SET not held for retry: held=%d", r.Held())
	}
}

// TestRouter_RetryKeepsOrder: requests in flight at a dead worker are
// older than those held meanwhile, so they go first (a later SET of a job
// must not be overtaken by an earlier one), marked Retried.
func TestRouter_RetryKeepsOrder(t *testing.T) {
	r := NewRouter(1, 10, time.Minute)
	p, far := fakeProc(t)
	go drain(far)
	r.SetOwner([]int{0}, p)
	r.Route(&pending{req: ipc.Request{Op: ipc.OpSet, Key: "x", Execution: 100}, deliver: func(ipc.Reply) {}})
	r.SetOwner([]int{0}, nil) // e.g. a handoff started
	r.Route(&pending{req: ipc.Request{Op: ipc.OpSet, Key: "x", Execution: 200}, deliver: func(ipc.Reply) {}})
	r.WorkerGone(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	held := r.shards[0].held
	if len(held) != 2 || held[0].req.Execution != 100 || held[1].req.Execution != 200 {
		t.Fatalf("held after crash: %+v", held)
	}
	// The dead worker may have applied the first: its next owner is told,
	// so it does not apply a SET twice. The second was never sent.
	if !held[0].req.Retried || held[1].req.Retried {
		t.Fatalf("retried flags: %v, %v; want true, false", held[0].req.Retried, held[1].req.Retried)
	}
}

// TestPending_DeliversOnce: a reply reaches the client once even if a
// crash races a retry.
func TestPending_DeliversOnce(t *testing.T) {
	n := 0
	p := &pending{deliver: func(ipc.Reply) { n++ }}
	p.finish(ipc.Reply{})
	p.finish(ipc.Reply{})
	if n != 1 {
		t.Fatalf("delivered %d times", n)
	}
}
