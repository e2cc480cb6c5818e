package store

import (
	"errors"
	"path/filepath"
	"testing"
)

// The ShardLog conformance suite: every backend behaves the same to its
// owner (nats' testAllStoreAllPermutations, style guide §13b).
func TestShardLogConformance(t *testing.T) {
	backends := map[string]func(t *testing.T) ShardLog{
		"memory": func(*testing.T) ShardLog { return NewMemoryLog() },
		"logfile": func(t *testing.T) ShardLog {
			l, err := OpenLogfile(filepath.Join(t.TempDir(), "s.log"), FsyncAlways)
			if err != nil {
				t.Fatal(err)
			}
			return l
		},
	}
	_, sampleEnd := frameOffsets(t, sampleRecords())
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			t.Run("size counts framed bytes", func(t *testing.T) {
				s := open(t)
				defer s.Close()
				if s.Size() != int64(headerSize) {
					t.Fatalf("empty Size() = %d, want %d", s.Size(), headerSize)
				}
				if err := s.Write(sampleRecords()); err != nil {
					t.Fatal(err)
				}
				if err := s.Sync(); err != nil {
					t.Fatal(err)
				}
				if s.Size() != sampleEnd {
					t.Fatalf("Size() = %d, want %d", s.Size(), sampleEnd)
				}
			})
			t.Run("invalid batch writes nothing", func(t *testing.T) {
				s := open(t)
				defer s.Close()
				err := s.Write([]Record{jobRec("a", 1, Planned), {Type: 42}})
				if !errors.Is(err, ErrInvalidRecord) {
					t.Fatalf("Write: %v, want ErrInvalidRecord", err)
				}
				if s.Size() != int64(headerSize) {
					t.Fatalf("Size() = %d after a rejected batch", s.Size())
				}
			})
			t.Run("closed rejects writes", func(t *testing.T) {
				s := open(t)
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if err := s.Write([]Record{jobRec("a", 1, Planned)}); !errors.Is(err, ErrClosed) {
					t.Fatalf("Write after Close: %v, want ErrClosed", err)
				}
			})
		})
	}
}
