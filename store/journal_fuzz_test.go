package store

import (
	"bytes"
	"testing"
)

// FuzzJournalEntry: any payload decodes to an entry or an error, without
// panicking; an entry encodes back to the same payload, so what recovery
// puts back is exactly what was journaled.
func FuzzJournalEntry(f *testing.F) {
	for _, e := range []journalEntry{
		{Name: "000.log", FileID: 7, Offset: 12, Frames: []byte{0, 0, 0, 1, 2, 3, 4, 5, 6}},
		{Name: "a", Offset: 0},
	} {
		b, err := appendJournalEntry(nil, e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[frameHeaderSize:])
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		e, err := decodeJournalEntry(p)
		if err != nil {
			return
		}
		b, err := appendJournalEntry(nil, e)
		if err != nil {
			t.Fatalf("decoded entry %+v does not encode: %v", e, err)
		}
		if !bytes.Equal(b[frameHeaderSize:], p) {
			t.Fatalf("entry %+v encodes to %x, decoded from %x", e, b[frameHeaderSize:], p)
		}
	})
}
