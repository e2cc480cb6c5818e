package store

// dueHeap is a 4-ary min-heap of planned jobs ordered by (execution, seq):
// earliest first, and among equal times the one SET first, as ztick fires
// them. An item holds its job's slot and a copy of its execution time, so
// most comparisons stay inside the heap; each record holds its item's index
// so a job can leave the heap in O(log n) when it is re-SET, removed or
// changes status. Items hold no pointers: the collector does not scan it.
// Four children to a node (one cache line of items) halve the depth, and
// with it the records touched per sift, against a binary heap.
type dueHeap []dueItem

const dueArity = 4

type dueItem struct {
	exec int64
	slot uint32
}

func dueBefore(recs *slab, a, b dueItem) bool {
	return a.exec < b.exec || (a.exec == b.exec && recs.at(a.slot).seq < recs.at(b.slot).seq)
}

func (h *dueHeap) push(recs *slab, s uint32) {
	recs.at(s).heapIdx = int32(len(*h))
	*h = append(*h, dueItem{exec: recs.at(s).exec, slot: s})
	h.up(recs, len(*h)-1)
}

// remove takes slot s out of the heap; it must be in it.
func (h *dueHeap) remove(recs *slab, s uint32) {
	i, last := int(recs.at(s).heapIdx), len(*h)-1
	if i != last {
		h.swap(recs, i, last)
	}
	*h = (*h)[:last]
	recs.at(s).heapIdx = -1
	if i != last && !h.down(recs, i) {
		h.up(recs, i)
	}
}

// fix restores the order after slot s's key changed; it must be in the heap.
func (h *dueHeap) fix(recs *slab, s uint32) {
	i := int(recs.at(s).heapIdx)
	(*h)[i].exec = recs.at(s).exec
	if !h.down(recs, i) {
		h.up(recs, i)
	}
}

func (h dueHeap) swap(recs *slab, i, j int) {
	h[i], h[j] = h[j], h[i]
	recs.at(h[i].slot).heapIdx = int32(i)
	recs.at(h[j].slot).heapIdx = int32(j)
}

func (h dueHeap) up(recs *slab, i int) {
	for i > 0 {
		parent := (i - 1) / dueArity
		if !dueBefore(recs, h[i], h[parent]) {
			return
		}
		h.swap(recs, i, parent)
		i = parent
	}
}

// down sifts i toward the leaves and reports whether it moved.
func (h dueHeap) down(recs *slab, i int) bool {
	start := i
	for {
		first := dueArity*i + 1
		if first >= len(h) {
			break
		}
		child := first
		for c := first + 1; c < min(first+dueArity, len(h)); c++ {
			if dueBefore(recs, h[c], h[child]) {
				child = c
			}
		}
		if !dueBefore(recs, h[child], h[i]) {
			break
		}
		h.swap(recs, i, child)
		i = child
	}
	return i > start
}
