package master

import (
	"context"
	"fmt"
	"math/rand"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tockd/tock/config"
	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/rest"
	"github.com/tockd/tock/store"
)

// Paging through shards with mergePages, each shard answering as a worker
// does (its next limit ids after the cursor, some cut short by their byte
// budget), returns every id once, in order.
func TestMergePagesWalksEveryIDOnce(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	shards := make([]*store.Jobs, 5)
	for i := range shards {
		shards[i] = store.NewJobs()
	}
	var want []string
	for i := range 2000 {
		id := fmt.Sprintf("j%06d", rng.Intn(1_000_000))
		if slices.Contains(want, id) {
			continue
		}
		want = append(want, id)
		shards[i%len(shards)].Set(id, int64(i))
	}
	slices.Sort(want)
	for _, limit := range []int{1, 3, 100, 5000} {
		var got []string
		after := ""
		for n := 0; n < 10000; n++ {
			var pages []ipc.Reply
			for i, s := range shards {
				// Shard 2 has a tiny byte budget: it often sends less
				// than it has.
				maxBytes := 0
				if i == 2 {
					maxBytes = 16
				}
				page, more := s.Page(store.PageQuery{After: after, Limit: limit, MaxBytes: maxBytes})
				r := ipc.Reply{Kind: ipc.KindPage, More: more}
				for _, j := range page {
					r.Jobs = append(r.Jobs, ipc.JobLine{ID: j.ID, Execution: j.Execution})
				}
				pages = append(pages, r)
			}
			jobs, more := mergePages(pages, limit)
			if len(jobs) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(jobs))
			}
			for _, j := range jobs {
				got = append(got, j.ID)
			}
			if !more {
				break
			}
			if len(jobs) == 0 {
				t.Fatalf("limit %d: more with an empty page", limit)
			}
			after = jobs[len(jobs)-1].ID
		}
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: %d ids, want %d", limit, len(got), len(want))
		}
	}
}

// The REST API applies a token's namespace exactly as the line protocol.
func TestRESTIdentityIsTheLineProtocols(t *testing.T) {
	for _, ns := range []string{"*", "a.", "a", "", "a.b/"} {
		line := identity{namespace: ns}
		r := restBackend{}.identity(line)
		for _, id := range []string{"", "a", "a.", "a.x", "b.x", "*", "a.b/c", "A.x"} {
			if r.Allows(id) != line.allows(id) {
				t.Errorf("namespace %q, id %q: REST says %v, line protocol %v", ns, id, r.Allows(id), line.allows(id))
			}
		}
	}
}

// TestListingsAreBounded: however many REST listings are asked for at
// once, at most maxListings fan out to the shards (each page scans every
// job of every shard on the workers' loops); the others wait for a slot,
// and give it up when their client goes.
func TestListingsAreBounded(t *testing.T) {
	const shards, clients = 4, 10
	cfg := config.Config{}
	cfg.Cluster.Shards = shards
	// No shard has an owner: every request a listing routes is held, so
	// Held counts the shard requests of the listings that got a slot.
	m := &Master{cfg: cfg, router: NewRouter(shards, 1000, time.Hour), listings: make(chan struct{}, maxListings)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := m.RESTBackend().ListJobs(ctx, rest.ListQuery{Limit: 1}); err == nil {
				t.Error("a listing of unowned shards succeeded")
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for m.listWaiting.Load() != clients-maxListings || m.router.Held() != maxListings*shards {
		if time.Now().After(deadline) {
			t.Fatalf("waiting %d, held %d; want %d waiting and %d held", m.listWaiting.Load(), m.router.Held(),
				clients-maxListings, maxListings*shards)
		}
		runtime.Gosched()
	}
	cancel()
	wg.Wait()
	if w := m.listWaiting.Load(); w != 0 || len(m.listings) != 0 {
		t.Fatalf("after the clients went: %d waiting, %d slots taken", w, len(m.listings))
	}
}
