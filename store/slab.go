package store

import (
	"encoding/binary"
	"unsafe"
)

// slab holds the job records in fixed-size pages, so that growing it never
// copies the records already there (a boot replaying millions of jobs would
// otherwise spend its time moving them) and never holds twice the memory.
// Pages hold no pointers; only the short page list is scanned.
type slab struct {
	pages []*[slabPage]rec
	n     uint32 // slots in use, counting freed ones
}

const (
	slabShift = 13
	slabPage  = 1 << slabShift // 8192 records, 256 KiB
)

func (s *slab) at(i uint32) *rec { return &s.pages[i>>slabShift][i&(slabPage-1)] }

// grow adds a slot at the end and returns it.
func (s *slab) grow() uint32 {
	if s.n == uint32(len(s.pages))*slabPage {
		s.pages = append(s.pages, new([slabPage]rec))
	}
	s.n++
	return s.n - 1
}

// idArena holds job ids, each a uvarint length and the bytes, in chunks
// that are filled and never moved: an offset is chunk<<32 | position. It
// only grows; the bytes of removed ids are counted as dead, and the store
// copies the live ones to a new arena once they outweigh them. Bytes once
// written are never changed, which is what lets ids share them.
type idArena struct {
	chunks [][]byte
	size   int // bytes written
	dead   int // of which removed ids'
}

// arenaChunk is a chunk's size; a longer id gets a chunk of its own.
const arenaChunk = 256 << 10

func (a *idArena) add(id string) uint64 {
	need := binary.MaxVarintLen64 + len(id)
	n := len(a.chunks)
	if n == 0 || cap(a.chunks[n-1])-len(a.chunks[n-1]) < need {
		a.chunks = append(a.chunks, make([]byte, 0, max(arenaChunk, need)))
		n++
	}
	c := a.chunks[n-1]
	off := uint64(n-1)<<32 | uint64(len(c))
	c = binary.AppendUvarint(c, uint64(len(id)))
	c = append(c, id...)
	a.size += len(c) - len(a.chunks[n-1])
	a.chunks[n-1] = c
	return off
}

// bytes returns the id at off.
func (a *idArena) bytes(off uint64) []byte {
	c := a.chunks[off>>32]
	p := uint64(uint32(off))
	n, k := binary.Uvarint(c[p:])
	start := p + uint64(k)
	return c[start : start+n : start+n]
}

// str returns the id at off as a string sharing the arena's bytes.
func (a *idArena) str(off uint64) string {
	b := a.bytes(off)
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func (a *idArena) equal(off uint64, id string) bool {
	b := a.bytes(off)
	return len(b) == len(id) && string(b) == id
}

// release counts the id at off as dead.
func (a *idArena) release(off uint64) {
	b := a.bytes(off)
	a.dead += len(b) + uvarintLen(uint64(len(b)))
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// wasteful reports whether dead ids take more than half the arena (and
// enough to be worth a copy).
func (a *idArena) wasteful() bool { return a.dead > 1<<16 && 2*a.dead > a.size }
