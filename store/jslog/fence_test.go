package jslog

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/tockd/tock/internal/natstest"
	"github.com/tockd/tock/store"
)

// TestFenceRace: two hosts open the same shard at the same time with the
// same epoch hint. However their fences interleave, exactly one of them
// can write: the other either fails to open (ErrFenced) or is fenced on
// its first append, and its log is Failed for good.
func TestFenceRace(t *testing.T) {
	c := natstest.Start(t, 3)
	cl := clusterName(t)
	hosts := []*Engine{engine(t, c, cl, "h1"), engine(t, c, cl, "h2")}
	if err := hosts[0].EnsureStreams(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 5; round++ {
		logs := make([]*ShardLog, 2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, e := range hosts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				logs[i], _, errs[i] = e.OpenShard(ctxT(t), 0, uint64(10*round+1), store.NewJobs())
			}()
		}
		wg.Wait()
		winners := 0
		for i := range hosts {
			if errs[i] != nil {
				if !errors.Is(errs[i], ErrFenced) {
					t.Fatalf("round %d: host %d: %v", round, i, errs[i])
				}
				continue
			}
			werr := logs[i].Write([]store.Record{jobRec(fmt.Sprintf("r%d-h%d", round, i), 1)})
			if werr == nil {
				werr = logs[i].Sync()
			}
			if werr == nil {
				winners++
				continue
			}
			if !errors.Is(werr, ErrFenced) || !errors.Is(logs[i].Failed(), ErrFenced) {
				t.Fatalf("round %d: host %d lost with %v (Failed: %v), want ErrFenced", round, i, werr, logs[i].Failed())
			}
			if err := logs[i].Write([]store.Record{jobRec("late", 1)}); !errors.Is(err, ErrFenced) {
				t.Fatalf("round %d: a fenced log took a write: %v", round, err)
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d writers succeeded (open errors %v)", round, winners, errs)
		}
		for _, l := range logs {
			if l != nil {
				l.Close()
			}
		}
	}
	// Fence epochs strictly increase through all of it.
	var epoch uint64
	err := hosts[0].ReadShard(ctxT(t), 0, func(m Message) error {
		if m.Kind == KindOwn {
			if m.Epoch <= epoch {
				return fmt.Errorf("fence %d at epoch %d after epoch %d", m.Seq, m.Epoch, epoch)
			}
			epoch = m.Epoch
		} else if m.Epoch != epoch {
			return fmt.Errorf("record message %d at epoch %d under fence epoch %d", m.Seq, m.Epoch, epoch)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTakeoverInFlight: h2 takes the shard over while h1 pipelines
// appends. Every append h1 had acknowledged (Sync returned nil) is below
// h2's fence and is in h2's replay; after the fence h1 acknowledges
// nothing, and its log fails with ErrFenced.
func TestTakeoverInFlight(t *testing.T) {
	c := natstest.Start(t, 3)
	cl := clusterName(t)
	e1, e2 := engine(t, c, cl, "h1"), engine(t, c, cl, "h2")
	if err := e1.EnsureStreams(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	l1, _, _ := open(t, e1, 0, 1)
	type acked struct {
		ids  []string
		upTo uint64 // every message up to here was acknowledged
	}
	started := make(chan struct{})
	done := make(chan struct{})
	var acks []acked
	var writerErr error
	go func() {
		defer close(done)
		for b := 0; ; b++ {
			var recs []store.Record
			var ids []string
			for i := 0; i < 20; i++ {
				id := fmt.Sprintf("b%d-%d", b, i)
				recs = append(recs, jobRec(id, int64(b)))
				ids = append(ids, id)
			}
			if err := l1.Write(recs); err != nil {
				writerErr = err
				return
			}
			upTo := l1.LastSeq()
			if b%4 == 3 { // several batches in flight per Sync
				if err := l1.Sync(); err != nil {
					writerErr = err
					return
				}
				acks = append(acks, acked{ids: ids, upTo: upTo})
				for j := len(acks) - 2; j >= 0 && acks[j].upTo == 0; j-- {
					acks[j].upTo = upTo
				}
			} else {
				acks = append(acks, acked{ids: ids})
			}
			if b == 20 {
				close(started)
			}
		}
	}()
	<-started
	l2, jobs2, o2 := open(t, e2, 0, 1)
	defer l2.Close()
	<-done
	if !errors.Is(writerErr, ErrFenced) || !errors.Is(l1.Failed(), ErrFenced) {
		t.Fatalf("old owner ended with %v (Failed: %v), want ErrFenced", writerErr, l1.Failed())
	}
	if o2.Epoch != 2 || o2.Previous.Host != "h1" {
		t.Fatalf("takeover: %+v", o2)
	}
	got := jobsOf(jobs2)
	n := 0
	for _, a := range acks {
		if a.upTo == 0 {
			continue // never acknowledged
		}
		if a.upTo >= o2.FenceSeq {
			t.Fatalf("an append acknowledged up to seq %d, at or after the fence at %d", a.upTo, o2.FenceSeq)
		}
		for _, id := range a.ids {
			if _, ok := got[id]; !ok {
				t.Fatalf("acknowledged job %s missing after the takeover", id)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("nothing was acknowledged before the takeover")
	}
	// The new owner writes on after the fence (past any leftovers of the
	// old one).
	if err := l2.Write([]store.Record{jobRec("new", 1)}); err != nil {
		t.Fatal(err)
	}
	if err := l2.Sync(); err != nil {
		t.Fatal(err)
	}
	// In the stream: after h2's fence, nothing of epoch 1 but stale
	// leftovers, and no leftover holds an acknowledged job.
	ackedIDs := map[string]bool{}
	for _, a := range acks {
		if a.upTo != 0 {
			for _, id := range a.ids {
				ackedIDs[id] = true
			}
		}
	}
	stale := 0
	staleIDs := map[string]bool{}
	err := e2.ReadShard(ctxT(t), 0, func(m Message) error {
		if m.Seq <= o2.FenceSeq || m.Kind == KindOwn {
			return nil
		}
		if m.Epoch == 1 {
			if !m.Stale {
				return fmt.Errorf("message %d of epoch 1 after the fence not marked stale", m.Seq)
			}
			stale++
			for _, r := range m.Records {
				staleIDs[r.Job.ID] = true
				if ackedIDs[r.Job.ID] {
					return fmt.Errorf("acknowledged job %s in a stale message %d", r.Job.ID, m.Seq)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d acknowledged jobs replayed, %d stale messages after the fence", n, stale)
	// A third owner replays the same state, the leftovers skipped.
	e3 := engine(t, c, cl, "h3")
	_, jobs3, _ := open(t, e3, 0, 1)
	got3 := jobsOf(jobs3)
	for id := range ackedIDs {
		if _, ok := got3[id]; !ok {
			t.Fatalf("acknowledged job %s missing at the third owner", id)
		}
	}
	for id := range staleIDs {
		if _, ok := got3[id]; ok {
			t.Fatalf("job %s, written only in a stale message, replayed", id)
		}
	}
	if _, ok := got3["new"]; !ok {
		t.Fatal("the second owner's write missing at the third owner")
	}
}
