package store

// dueHeap is a binary min-heap of planned jobs ordered by (execution, seq):
// earliest first, and among equal times the one SET first, as ztick fires
// them. Each entry records its index so a job can leave the heap in
// O(log n) when it is re-SET, removed or changes status.
type dueHeap []*entry

func dueBefore(a, b *entry) bool {
	return a.exec < b.exec || (a.exec == b.exec && a.seq < b.seq)
}

func (h *dueHeap) push(e *entry) {
	e.heapIdx = int32(len(*h))
	*h = append(*h, e)
	h.up(len(*h) - 1)
}

// remove takes e out of the heap; e must be in it.
func (h *dueHeap) remove(e *entry) {
	i, last := int(e.heapIdx), len(*h)-1
	if i != last {
		h.swap(i, last)
	}
	(*h)[last] = nil // let a removed job's entry be collected
	*h = (*h)[:last]
	e.heapIdx = -1
	if i != last && !h.down(i) {
		h.up(i)
	}
}

// fix restores the order after e's key changed; e must be in the heap.
func (h *dueHeap) fix(e *entry) {
	if i := int(e.heapIdx); !h.down(i) {
		h.up(i)
	}
}

func (h dueHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = int32(i)
	h[j].heapIdx = int32(j)
}

func (h dueHeap) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !dueBefore(h[i], h[parent]) {
			return
		}
		h.swap(i, parent)
		i = parent
	}
}

// down sifts i toward the leaves and reports whether it moved.
func (h dueHeap) down(i int) bool {
	start := i
	for {
		child := 2*i + 1
		if child >= len(h) {
			break
		}
		if right := child + 1; right < len(h) && dueBefore(h[right], h[child]) {
			child = right
		}
		if !dueBefore(h[child], h[i]) {
			break
		}
		h.swap(i, child)
		i = child
	}
	return i > start
}
