package jslog

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tockd/tock/internal/natstest"
	"github.com/tockd/tock/store"
)

// TestRoundTrip: what is written (packed several records per message, a
// large batch split into several messages) is replayed by the next owner,
// in order (a later SET of a job wins), removals included; the stream
// holds one fence per open with strictly increasing epochs, and every
// message carries its writer's epoch and host.
func TestRoundTrip(t *testing.T) {
	c := natstest.Start(t, 3)
	cl := clusterName(t)
	e1 := engine(t, c, cl, "h1")
	if err := e1.EnsureStreams(ctxT(t), 2); err != nil {
		t.Fatal(err)
	}
	if err := e1.EnsureStreams(ctxT(t), 2); err != nil {
		t.Fatalf("EnsureStreams is not idempotent: %v", err)
	}
	l, jobs, o := open(t, e1, 1, 5)
	if o.Epoch != 5 || o.FenceSeq != 1 || jobs.Len() != 0 || o.Previous.Epoch != 0 {
		t.Fatalf("first open: %+v, %d jobs", o, jobs.Len())
	}
	want := map[string]int64{}
	for b := 0; b < 20; b++ {
		var recs []store.Record
		for i := 0; i < 50; i++ {
			id := fmt.Sprintf("job-%d", (b*50+i)%700)
			recs = append(recs, jobRec(id, int64(b*1000+i)))
			want[id] = int64(b*1000 + i)
		}
		if err := l.Write(recs); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Write([]store.Record{{Type: store.RecordJobRemoval, ID: "job-3"}}); err != nil {
		t.Fatal(err)
	}
	delete(want, "job-3")
	// One batch of ~600 KiB: split into several messages.
	var big []store.Record
	pad := strings.Repeat("x", 1000)
	for i := 0; i < 600; i++ {
		id := fmt.Sprintf("big-%d-%s", i, pad)
		big = append(big, jobRec(id, int64(i)))
		want[id] = int64(i)
	}
	if err := l.Write(big); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	msgs, recs := l.Stats()
	if msgs < 24 || msgs > 30 || recs != 20*50+1+600 {
		t.Fatalf("stats: %d msgs, %d records", msgs, recs)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	e2 := engine(t, c, cl, "h2")
	l2, jobs2, o2 := open(t, e2, 1, 1)
	defer l2.Close()
	if o2.Epoch != 6 || o2.Previous.Epoch != 5 || o2.Previous.Host != "h1" || o2.Previous.Seq != 1 {
		t.Fatalf("second open: %+v", o2)
	}
	got := jobsOf(jobs2)
	if len(got) != len(want) {
		t.Fatalf("replayed %d jobs, want %d", len(got), len(want))
	}
	for id, exec := range want {
		if got[id].Execution != exec {
			t.Fatalf("job %s: execution %d, want %d", id, got[id].Execution, exec)
		}
	}
	// The stream as a verifier sees it.
	var fences []Message
	n := 0
	err := e2.ReadShard(ctxT(t), 1, func(m Message) error {
		n++
		if m.Kind == KindOwn {
			fences = append(fences, m)
		} else if m.Epoch != 5 || m.Host != "h1" {
			return fmt.Errorf("message %d by %s at epoch %d", m.Seq, m.Host, m.Epoch)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(fences) != 2 || fences[0].Epoch != 5 || fences[1].Epoch != 6 || fences[1].Host != "h2" || n != int(msgs)+2 {
		t.Fatalf("%d messages, fences %+v", n, fences)
	}
	f, ok, err := e2.LastFence(ctxT(t), 1)
	if err != nil || !ok || f.Epoch != 6 || f.Host != "h2" || f.Seq != o2.FenceSeq {
		t.Fatalf("LastFence = %+v %v %v", f, ok, err)
	}
	// The other shard is untouched.
	if _, ok, err := e2.LastFence(ctxT(t), 0); ok || err != nil {
		t.Fatalf("shard 0 fence: %v %v", ok, err)
	}
}
