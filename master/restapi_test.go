package master

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"

	"github.com/tockd/tock/ipc"
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
