package store

import (
	"container/heap"
	"slices"
	"strings"
)

// PageQuery selects one page of a listing in id order: the jobs whose id
// starts with Prefix and is greater than After (bytewise), whose status is
// in Statuses (a bit per Status, 0 = every status), at most Limit of them
// and at most MaxBytes of ids (the first job always fits).
type PageQuery struct {
	Prefix   string
	After    string
	Limit    int
	Statuses uint8
	MaxBytes int
}

// StatusBit is s's bit in PageQuery.Statuses.
func StatusBit(s Status) uint8 { return 1 << s }

// Page returns the page q selects, sorted by id, and whether more matching
// jobs follow it. It scans every job once and keeps only Limit of them, so
// a listing costs memory for one page whatever the store's size; the store
// keeps no id order of its own (it would cost memory per job).
func (j *Jobs) Page(q PageQuery) (page []Job, more bool) {
	if q.Limit <= 0 {
		return nil, false
	}
	h := &idMaxHeap{}
	for s := range j.recs.n {
		r := j.recs.at(s)
		if r.flags&recLive == 0 {
			continue
		}
		if q.Statuses != 0 && q.Statuses&StatusBit(r.status) == 0 {
			continue
		}
		id := j.idOf(s)
		if id <= q.After || !strings.HasPrefix(id, q.Prefix) {
			continue
		}
		if len(*h) < q.Limit {
			heap.Push(h, pageItem{id: id, slot: s})
			continue
		}
		more = true
		if id < (*h)[0].id {
			(*h)[0] = pageItem{id: id, slot: s}
			heap.Fix(h, 0)
		}
	}
	items := []pageItem(*h)
	slices.SortFunc(items, func(a, b pageItem) int { return strings.Compare(a.id, b.id) })
	size := 0
	for i, it := range items {
		size += len(it.id)
		if i > 0 && q.MaxBytes > 0 && size > q.MaxBytes {
			return page, true
		}
		page = append(page, j.job(it.slot, it.id))
	}
	return page, more
}

// pageItem is a job kept for a page: its id (sharing the arena's bytes)
// and its slot.
type pageItem struct {
	id   string
	slot uint32
}

// idMaxHeap keeps the largest id on top, so the smallest Limit ids seen so
// far stay in it.
type idMaxHeap []pageItem

func (h idMaxHeap) Len() int           { return len(h) }
func (h idMaxHeap) Less(a, b int) bool { return h[a].id > h[b].id }
func (h idMaxHeap) Swap(a, b int)      { h[a], h[b] = h[b], h[a] }
func (h *idMaxHeap) Push(x any)        { *h = append(*h, x.(pageItem)) }
func (h *idMaxHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
