package store

import (
	"fmt"
	"slices"
	"testing"
)

// Paging through a store returns every matching job exactly once, in id
// order, whatever the page size and byte budget.
func TestPageWalksEveryJobOnce(t *testing.T) {
	j := NewJobs()
	var want []string
	for i := range 500 {
		id := fmt.Sprintf("a.%03d", (i*37)%500)
		j.Set(id, int64(i))
		want = append(want, id)
		j.Set(fmt.Sprintf("b.%d", i), 1)
	}
	slices.Sort(want)
	for _, tc := range []struct{ limit, maxBytes int }{{1, 0}, {7, 0}, {100, 0}, {1000, 0}, {50, 20}, {50, 1}} {
		var got []string
		after := ""
		for n := 0; ; n++ {
			if n > 1000 {
				t.Fatalf("limit %d: paging does not end", tc.limit)
			}
			page, more := j.Page(PageQuery{Prefix: "a.", After: after, Limit: tc.limit, MaxBytes: tc.maxBytes})
			if len(page) > tc.limit {
				t.Fatalf("limit %d: page of %d", tc.limit, len(page))
			}
			for _, job := range page {
				got = append(got, job.ID)
			}
			if !more {
				break
			}
			if len(page) == 0 {
				t.Fatalf("limit %d: more without a job", tc.limit)
			}
			after = page[len(page)-1].ID
		}
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d bytes %d: got %d ids, want %d (first %v)", tc.limit, tc.maxBytes, len(got), len(want), got[:min(5, len(got))])
		}
	}
}

func TestPageFiltersStatus(t *testing.T) {
	j := NewJobs()
	j.Set("x.1", 1)
	j.Set("x.2", 1)
	j.Set("x.3", 100)
	j.PopDue(10, 0, func(job Job, gen uint64) {
		if job.ID == "x.1" {
			j.Complete(job.ID, gen, Failed, &Outcome{Error: "boom"})
		}
	})
	page, more := j.Page(PageQuery{Limit: 10, Statuses: StatusBit(Failed) | StatusBit(Planned)})
	if more || len(page) != 2 || page[0].ID != "x.1" || page[1].ID != "x.3" {
		t.Fatalf("got %+v more=%v", page, more)
	}
	if page, _ := j.Page(PageQuery{Limit: 0}); page != nil {
		t.Fatalf("limit 0 returned %v", page)
	}
}
