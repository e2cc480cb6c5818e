package jslog

import (
	"fmt"
	"testing"

	"github.com/tockd/tock/internal/natstest"
	"github.com/tockd/tock/store"
)

// TestCompaction: a compaction with writes going on meanwhile (they wait
// while the snapshot is enqueued, so it sits where it was taken) leaves a
// stream whose replay is exactly the writer's state, with the records
// below the snapshot purged and every fence kept. A snapshot cut short by
// a crash between its chunks is ignored by the next owner's replay.
func TestCompaction(t *testing.T) {
	c := natstest.Start(t, 3)
	cl := clusterName(t)
	e1 := engine(t, c, cl, "h1")
	if err := e1.EnsureStreams(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	l, _, _ := open(t, e1, 0, 1)
	mirror := store.NewJobs() // the writer's memory
	write := func(b int) {
		t.Helper()
		var recs []store.Record
		for i := 0; i < 30; i++ {
			id := fmt.Sprintf("j%d", (b*30+i)%400)
			r := jobRec(id, int64(b*100+i))
			if i%7 == 0 {
				r = store.Record{Type: store.RecordJobRemoval, ID: id}
			}
			recs = append(recs, r)
			mirror.Apply(r)
		}
		if err := l.Write(recs); err != nil {
			t.Fatal(err)
		}
	}
	for b := 0; b < 60; b++ {
		write(b)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	before := l.Size()
	comp, err := l.BeginCompaction()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.BeginCompaction(); err == nil {
		t.Fatal("a second compaction started while one runs")
	}
	snapshot := mirror.Records(nil)
	done := make(chan error, 1)
	go func() { done <- comp.Run(snapshot) }()
	for b := 60; b < 90; b++ { // Writes during the compaction
		write(b)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if l.Size() >= before {
		t.Fatalf("size %d after compaction, %d before", l.Size(), before)
	}
	var begin uint64
	fences, recsBelow := 0, 0
	err = e1.ReadShard(ctxT(t), 0, func(m Message) error {
		switch m.Kind {
		case KindOwn:
			fences++
		case KindSnapBegin:
			begin = m.Seq
		case KindRec:
			if begin == 0 {
				recsBelow++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if begin == 0 || recsBelow != 0 || fences != 1 {
		t.Fatalf("after compaction: snapshot at %d, %d record messages below it, %d fences", begin, recsBelow, fences)
	}

	// A crash between chunks: begin marker and one chunk (holding a job
	// the state does not have, and missing all the others), no end.
	l.mu.Lock()
	b := l.publishLocked(KindSnapBegin, nil, 0)
	l.publishLocked(KindSnap, must(store.AppendFrames(nil, []store.Record{jobRec("ghost", 1)})), b)
	l.mu.Unlock()
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	e2 := engine(t, c, cl, "h2")
	l2, jobs2, _ := open(t, e2, 0, 1)
	defer l2.Close()
	want, got := jobsOf(mirror), jobsOf(jobs2)
	if len(got) != len(want) {
		t.Fatalf("replayed %d jobs, want %d (ghost: %v)", len(got), len(want), got["ghost"])
	}
	for id, j := range want {
		if got[id].Execution != j.Execution || got[id].Status != j.Status {
			t.Fatalf("job %s: %+v, want %+v", id, got[id], j)
		}
	}
	// The new owner compacts too, after the incomplete snapshot.
	comp2, err := l2.BeginCompaction()
	if err != nil {
		t.Fatal(err)
	}
	if err := comp2.Run(jobs2.Records(nil)); err != nil {
		t.Fatal(err)
	}
	e3 := engine(t, c, cl, "h3")
	_, jobs3, _ := open(t, e3, 0, 1)
	if got3 := jobsOf(jobs3); len(got3) != len(want) {
		t.Fatalf("after the second compaction: %d jobs, want %d", len(got3), len(want))
	}
}
