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
//
// Growing does not move every entry at once (at millions of jobs that is
// a pause of a hundred milliseconds or more): the full table becomes old,
// and each insert afterwards moves a few of its clusters (runs of entries
// between empty slots) into the new table t, until none is left. A lookup
// meanwhile searches t, then old. Moving whole clusters keeps the rest of
// old searchable, since an entry lies in the cluster of its home slot;
// old only loses entries, so its clusters only split, and migration,
// which starts just after a slot that was empty, never meets a cluster
// that straddles where it is.
type idIndex struct {
	t    []uint64
	n    int // entries in t and old
	seed maphash.Seed

	old    []uint64 // the table being moved into t; nil when none
	cursor uint64   // next position of old to move
	left   uint64   // positions of old still to move
}

const (
	idIndexMin = 1 << 4
	// inOld marks a position find returns in old rather than in t.
	inOld = 1 << 63
	// migrateStep is how many positions of old an insert moves at least:
	// old is gone long before t fills (it is twice old's size, and old
	// at most 5/8 full), and soon, as lookups meanwhile read both tables;
	// the moves are sequential in both, so cheap.
	migrateStep = 64
)

func newIDIndex() idIndex { return idIndex{t: make([]uint64, idIndexMin), seed: maphash.MakeSeed()} }

func (x *idIndex) mask() uint64 { return uint64(len(x.t) - 1) }

// find returns the table position and slot of id, whose hash is h. When id
// is absent, pos is the empty entry of t where insertAt can put it.
func (x *idIndex) find(id string, h uint64, ids *idArena, recs *slab) (pos uint64, slot uint32, ok bool) {
	pos, slot, ok = probe(x.t, id, h, ids, recs)
	if ok || x.old == nil {
		return pos, slot, ok
	}
	if p, s, found := probe(x.old, id, h, ids, recs); found {
		return p | inOld, s, true
	}
	return pos, 0, false
}

// probe looks id (hash h) up in table t: its position and slot, or the
// empty position that ended the search.
func probe(t []uint64, id string, h uint64, ids *idArena, recs *slab) (pos uint64, slot uint32, ok bool) {
	tag := uint32(h)
	mask := uint64(len(t) - 1)
	for i := uint64(tag) & mask; ; i = (i + 1) & mask {
		e := t[i]
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
// While old is moved, an absent id's lookup reads it too.
func (x *idIndex) warm(h uint64) uint64 {
	e := x.t[h&x.mask()&0xffffffff]
	if x.old != nil {
		e += x.old[h&uint64(len(x.old)-1)&0xffffffff]
	}
	return e
}

// insertAt adds slot s for an id (not in the table) whose hash is h, at
// pos (of t) as find returned it.
func (x *idIndex) insertAt(pos, h uint64, s uint32) {
	x.t[pos] = uint64(uint32(h))<<32 | uint64(s+1)
	x.n++
	if x.old != nil {
		x.migrate(migrateStep)
	}
	if x.n*8 > len(x.t)*5 { // keep the load at most 5/8: misses probe little
		x.migrate(^uint64(0)) // not expected: old is gone well before
		x.grow()
	}
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

// grow makes t old and a table twice its size t; old's entries move over
// with the inserts that follow (migrate).
func (x *idIndex) grow() {
	old := x.t
	x.t = make([]uint64, 2*len(old))
	mask := uint64(len(old) - 1)
	var e0 uint64 // an empty slot: there is one, the load is below 1
	for old[e0] != 0 {
		e0++
	}
	x.old, x.cursor, x.left = old, (e0+1)&mask, uint64(len(old))
	if x.n == 0 {
		x.old = nil
	}
}

// migrate moves clusters of old into t until at least budget positions
// of old are done, or old is.
func (x *idIndex) migrate(budget uint64) {
	old := x.old
	mask := uint64(len(old) - 1)
	for x.left > 0 && budget > 0 {
		// A whole cluster at once: it ends at an empty slot before the
		// one migration started after, which stays empty.
		for old[x.cursor] != 0 {
			x.place(old[x.cursor])
			old[x.cursor] = 0
			x.cursor = (x.cursor + 1) & mask
			x.left--
			budget = max(budget, 1) - 1
		}
		x.cursor = (x.cursor + 1) & mask
		x.left--
		budget = max(budget, 1) - 1
	}
	if x.left == 0 {
		x.old = nil
	}
}

// removeAt deletes the entry at pos (as find returned it).
func (x *idIndex) removeAt(pos uint64) {
	if pos&inOld != 0 {
		removeIn(x.old, pos&^inOld)
	} else {
		removeIn(x.t, pos)
	}
	x.n--
}

// removeIn deletes the entry at pos of t, shifting later entries of the
// same probe run back so that no tombstones are needed.
func removeIn(t []uint64, pos uint64) {
	mask := uint64(len(t) - 1)
	i := pos
	for j := (i + 1) & mask; ; j = (j + 1) & mask {
		e := t[j]
		if e == 0 {
			break
		}
		home := (e >> 32) & mask
		// e may move to i if i lies on its probe path: between its home
		// and j, cyclically.
		if (j-home)&mask >= (j-i)&mask {
			t[i] = e
			i = j
		}
	}
	t[i] = 0
}
