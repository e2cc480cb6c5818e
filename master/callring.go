package master

import "sync/atomic"

// callRing hands a connection's calls from its reader to its writer in the
// order they were read, with no channel operation and no allocation per
// request: calls live in slots indexed by sequence number, and a slot's
// call is reused once the writer has written its reply. The reader is the
// only one to write tail and the slots; the writer the only one to write
// head. See docs/benchmarks.md for what this saves.
type callRing struct {
	// slots has a power-of-two length that doubles, up to maxPipelined,
	// when the reader finds it full. The writer loads it after tail, so
	// it always sees a slice holding every call it may take.
	slots atomic.Pointer[[]*call]
	head  atomic.Uint64 // the next sequence the writer takes
	tail  atomic.Uint64 // the next sequence the reader fills
	done  atomic.Bool   // the reader pushes no more calls

	// wake (capacity 1) tells the writer to look again: the call it waits
	// for finished, or done was set. A push does not wake it: a call is
	// pushed before it can finish, and its finish wakes the writer.
	wake chan struct{}
	// spaceWanted is set by a reader waiting for the writer to free a
	// slot of a full ring; the writer then signals space.
	spaceWanted atomic.Bool
	space       chan struct{}
}

// initialRing is a new connection's number of slots (a client that does
// not pipeline never needs more than a few).
const initialRing = 16

func newCallRing() *callRing {
	r := &callRing{wake: make(chan struct{}, 1), space: make(chan struct{}, 1)}
	slots := make([]*call, initialRing)
	r.slots.Store(&slots)
	return r
}

// notify sends a token on a capacity-1 channel unless one is there: the
// receiver looks at the shared state after each token, so one pending
// token is enough however many events it stands for.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// take returns a fresh call for the next sequence without publishing it
// (push does). When the ring is full at maxPipelined it calls beforeWait
// once, then waits for the writer to free a slot; false when quit closed
// first. Reader only.
func (r *callRing) take(cc *clientConn, quit <-chan struct{}, beforeWait func()) (*call, bool) {
	t := r.tail.Load()
	slots := *r.slots.Load()
	waited := false
	for t-r.head.Load() >= uint64(len(slots)) {
		if len(slots) < maxPipelined {
			slots = r.grow(slots, t)
			break
		}
		if !waited {
			beforeWait()
			waited = true
		}
		r.spaceWanted.Store(true)
		if t-r.head.Load() < uint64(len(slots)) { // freed meanwhile
			r.spaceWanted.Store(false)
			break
		}
		select {
		case <-r.space:
		case <-quit:
			return nil, false
		}
	}
	i := t & uint64(len(slots)-1)
	c := slots[i]
	if c == nil {
		c = &call{cc: cc}
		slots[i] = c
	} else {
		// The writer is done with the call of sequence t-len(slots): no
		// one refers to it any more (a pending is finished exactly once,
		// and only then written).
		*c = call{cc: cc}
	}
	return c, true
}

// grow doubles a full ring, keeping the calls of the last len(old)
// sequences (still to be written, or reusable) at their new positions.
func (r *callRing) grow(old []*call, t uint64) []*call {
	n := uint64(len(old))
	slots := make([]*call, 2*n)
	for s := t - n; s != t; s++ {
		slots[s&(2*n-1)] = old[s&(n-1)]
	}
	r.slots.Store(&slots)
	return slots
}

// push publishes the call take returned last. Reader only.
func (r *callRing) push() { r.tail.Add(1) }

// close says no more calls come and wakes the writer. Reader only.
func (r *callRing) close() {
	r.done.Store(true)
	notify(r.wake)
}

// peek returns the call the writer takes next, nil when none is pushed.
// Writer only.
func (r *callRing) peek() *call {
	h := r.head.Load()
	if h == r.tail.Load() {
		return nil
	}
	slots := *r.slots.Load()
	return slots[h&uint64(len(slots)-1)]
}

// pop moves past the call peek returned, whose reply is written. Writer
// only.
func (r *callRing) pop() {
	r.head.Add(1)
	if r.spaceWanted.Load() && r.spaceWanted.CompareAndSwap(true, false) {
		notify(r.space)
	}
}

// drained reports whether the reader is done and every call is written.
// Writer only: it checks done before tail, so a last push is not missed.
func (r *callRing) drained() bool {
	return r.done.Load() && r.head.Load() == r.tail.Load()
}

// queued is the number of calls pushed and not yet written.
func (r *callRing) queued() int { return int(r.tail.Load() - r.head.Load()) }
