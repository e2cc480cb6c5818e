package jslog

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/tockd/tock/internal/natstest"
	"github.com/tockd/tock/store"
)

// TestSameHostOpenersNeverShareAnEpoch: two openers with the same host
// name race for a shard (two workers of one host during a handoff, or two
// machines left with the same default host name). Exactly one may get the
// shard; if both think they fenced it at the same epoch, their Msg-Ids
// are the same and the second one's appends come back from the stream's
// dedup as "duplicates" of the first one's: acknowledged, never stored.
// Every round: both open at once, each that got the shard writes a job of
// its own and syncs; a fresh replay must hold every job whose Sync
// returned nil, and no two openers may hold one epoch.
func TestSameHostOpenersNeverShareAnEpoch(t *testing.T) {
	c := natstest.Start(t, 3)
	raceOpeners(t, c, "h1", "h1") // the same host name, another process
}

// TestRacingOpenersLoseNothing: the same with two hosts. The loser of the
// race, or the first opener when the second fences it out while it
// replays, must not come out of OpenShard with a log that appends after
// the winner's fence: such appends are of an older epoch than the fence
// before them, and replay skips them even once acknowledged.
func TestRacingOpenersLoseNothing(t *testing.T) {
	c := natstest.Start(t, 3)
	raceOpeners(t, c, "h1", "h2")
}

func raceOpeners(t *testing.T, c *natstest.Cluster, hostA, hostB string) {
	cl := clusterName(t)
	const rounds = 12
	ea := engine(t, c, cl, hostA)
	eb := engine(t, c, cl, hostB)
	if err := ea.EnsureStreams(ctxT(t), rounds); err != nil {
		t.Fatal(err)
	}
	for shard := 0; shard < rounds; shard++ {
		type result struct {
			l   *ShardLog
			o   Opened
			err error
		}
		var wg sync.WaitGroup
		res := make([]result, 2)
		start := make(chan struct{})
		for i, e := range []*Engine{ea, eb} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				l, o, err := e.OpenShard(ctxT(t), shard, 1, store.NewJobs())
				res[i] = result{l, o, err}
			}()
		}
		close(start)
		wg.Wait()
		// The older epoch writes first: if its log starts after the newer
		// fence, its append is stored and acknowledged there.
		order := []int{0, 1}
		if res[1].err == nil && (res[0].err != nil || res[1].o.Epoch < res[0].o.Epoch) {
			order = []int{1, 0}
		}
		var acked []string
		for _, i := range order {
			r := res[i]
			if r.err != nil {
				if !errors.Is(r.err, ErrFenced) {
					t.Fatalf("round %d opener %d: %v", shard, i, r.err)
				}
				continue
			}
			id := fmt.Sprintf("job-%d-%d", shard, i)
			if err := r.l.Write([]store.Record{jobRec(id, 1)}); err != nil {
				t.Fatal(err)
			}
			if err := r.l.Sync(); err == nil {
				acked = append(acked, id)
			} else if !errors.Is(err, ErrFenced) {
				t.Fatalf("round %d opener %d: sync: %v", shard, i, err)
			}
			_ = r.l.Close() // its Sync above already reported what matters
		}
		jobs := store.NewJobs()
		if _, _, err := ea.ReplayShard(ctxT(t), shard, jobs); err != nil {
			t.Fatal(err)
		}
		got := jobsOf(jobs)
		for _, id := range acked {
			if _, ok := got[id]; !ok {
				t.Fatalf("round %d: %s was acknowledged but is not in the stream (openers: %+v / %+v)", shard, id, res[0].o, res[1].o)
			}
		}
		// Both may open one after the other (the second fences the
		// first out), never both at one epoch.
		if res[0].err == nil && res[1].err == nil && res[0].o.Epoch == res[1].o.Epoch {
			t.Fatalf("round %d: both openers got the shard at epoch %d: %+v and %+v", shard, res[0].o.Epoch, res[0].o, res[1].o)
		}
	}
}
