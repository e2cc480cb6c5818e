package store

import (
	"hash/maphash"
)

// hashID is the 64-bit hash of a job id, seeded per store so that chosen
// ids cannot be made to collide.
func hashID(seed maphash.Seed, id string) uint64 { return maphash.String(seed, id) }

// idIndex maps a job id to its slot: an open-addressing table with linear
// probing. An entry is tag<<32 | slot+1 (0 is empty), where tag is the low
// 32 bits of the id's hash; the tag is both where the entry's probe starts
// (tag & mask) and a filter before the ids are compared, so the table can
// grow without hashing the ids again. It holds no pointers.
type idIndex struct {
	t    []uint64
	n    int
	seed maphash.Seed
}

const idIndexMin = 1 << 4

func newIDIndex() idIndex { return idIndex{t: make([]uint64, idIndexMin), seed: maphash.MakeSeed()} }

func (x *idIndex) mask() uint64 { return uint64(len(x.t) - 1) }

// find returns the table position and slot of id, whose hash is h. When id
// is absent, pos is the empty entry where insertAt can put it.
func (x *idIndex) find(id string, h uint64, ids *idArena, recs *slab) (pos uint64, slot uint32, ok bool) {
	tag := uint32(h)
	mask := x.mask()
	for i := uint64(tag) & mask; ; i = (i + 1) & mask {
		e := x.t[i]
		if e == 0 {
			return i, 0, false
		}
		if uint32(e>>32) == tag {
			s := uint32(e) - 1
			if ids.equal(recs.at(s).idOff, id) {
				return i, s, true
			}
		}
	}
}

// warm loads the entry where the lookup of hash h starts and returns it,
// so that a caller can keep the load (see Jobs.Warm).
func (x *idIndex) warm(h uint64) uint64 { return x.t[h&x.mask()&0xffffffff] }

// insertAt adds slot s for an id (not in the table) whose hash is h, at
// pos as find returned it.
func (x *idIndex) insertAt(pos, h uint64, s uint32) {
	e := uint64(uint32(h))<<32 | uint64(s+1)
	x.n++
	if x.n*8 > len(x.t)*5 { // keep the load at most 5/8: misses probe little
		x.grow()
		x.place(e)
		return
	}
	x.t[pos] = e
}

// insert adds slot s for an id (not in the table) whose hash is h.
func (x *idIndex) insert(h uint64, s uint32) {
	mask := x.mask()
	i := h & mask & 0xffffffff
	for x.t[i] != 0 {
		i = (i + 1) & mask
	}
	x.insertAt(i, h, s)
}

func (x *idIndex) place(e uint64) {
	mask := x.mask()
	i := (e >> 32) & mask
	for x.t[i] != 0 {
		i = (i + 1) & mask
	}
	x.t[i] = e
}

func (x *idIndex) grow() {
	old := x.t
	x.t = make([]uint64, 2*len(old))
	for _, e := range old {
		if e != 0 {
			x.place(e)
		}
	}
}

// removeAt deletes the entry at pos, shifting later entries of the same
// probe run back so that no tombstones are needed.
func (x *idIndex) removeAt(pos uint64) {
	mask := x.mask()
	i := pos
	for j := (i + 1) & mask; ; j = (j + 1) & mask {
		e := x.t[j]
		if e == 0 {
			break
		}
		home := (e >> 32) & mask
		// e may move to i if i lies on its probe path: between its home
		// and j, cyclically.
		if (j-home)&mask >= (j-i)&mask {
			x.t[i] = e
			i = j
		}
	}
	x.t[i] = 0
	x.n--
}
