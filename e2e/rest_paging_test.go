package e2e

import (
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// TestREST_PagedListing100k: a listing of 100,000 jobs, paged while other
// jobs are being added between and around them, returns each of the
// 100,000 exactly once, in id order.
func TestREST_PagedListing100k(t *testing.T) {
	dir := t.TempDir()
	cfg := strings.Replace(monitorConfig(dir, ""), `level = "debug"`, `level = "info"`, 1)
	cfg = strings.Replace(cfg, "[database]\n", "[database]\npersistence = \"memory\"\n", 1)
	c := startCluster(t, dir, cfg)
	rc := newRESTClient(t, c, "")
	const n = 100_000
	cl := dial(t, c.addr)
	for from := 0; from < n; from += 5000 {
		var lines []string
		for i := from; i < from+5000; i++ {
			lines = append(lines, fmt.Sprintf("w SET pg.%06d 4102444800000000000", i))
		}
		cl.send(lines...)
		for range lines {
			if got := cl.line(); got != "w OK" {
				t.Fatalf("SET: %q", got)
			}
		}
	}
	// Jobs keep arriving while the walk runs: between existing ids, before
	// and after them (until the walk ends or 45,000 are added).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	added := 0
	go func() {
		defer wg.Done()
		add := dial(t, c.addr)
		for i := 0; i < 300; i++ { // bounded: 45,000 jobs at most
			select {
			case <-stop:
				return
			default:
			}
			var lines []string
			for k := range 50 {
				j := (i*50 + k) * 7919 % n
				lines = append(lines, fmt.Sprintf("a SET pg.%06d.new%d 4102444800000000000", j, i), fmt.Sprintf("a SET pg.%06d 4102444800000000000", n+i*50+k), fmt.Sprintf("a SET pf.%d 1", i*50+k))
			}
			add.send(lines...)
			for range lines {
				if got := add.line(); got != "a OK" {
					t.Errorf("SET while paging: %q", got)
					return
				}
			}
			added += len(lines)
		}
	}()
	seen := make(map[string]int, n)
	last := ""
	cursor := ""
	pages := 0
	for {
		q := "/jobs?prefix=pg.&limit=997"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		var page restJobList
		rc.expect("GET", q, "", 200, &page)
		pages++
		for _, j := range page.Jobs {
			if j.ID <= last {
				t.Fatalf("page %d: %q after %q: not in id order", pages, j.ID, last)
			}
			last = j.ID
			seen[j.ID]++
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
		if pages > 10*n/997 {
			t.Fatal("the walk does not end")
		}
	}
	close(stop)
	wg.Wait()
	for i := range n {
		id := fmt.Sprintf("pg.%06d", i)
		if seen[id] != 1 {
			t.Fatalf("%s listed %d times", id, seen[id])
		}
	}
	t.Logf("%d pages, %d ids listed, %d jobs added during the walk", pages, len(seen), added)
}
