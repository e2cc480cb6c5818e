package store

import (
	"errors"
	"fmt"
	"sync"
)

// ShardLog is where a shard's records go: the storage seam between the pure
// stores and durability. *Logfile implements it with a local file,
// MemoryLog with nothing at all, and a JetStream-backed log is meant to
// implement it later (shard logs on a replicated log, for several hosts) without the worker changing.
//
// The owner calls Write with the records of a batch of mutations, then Sync,
// and acknowledges the mutations only after Sync returns nil: durable before
// acknowledged. Write and Sync may be called from different goroutines.
type ShardLog interface {
	// Write appends recs in order, all or none. It need not be durable yet.
	Write(recs []Record) error
	// Sync returns once everything written before the call is durable
	// under the log's policy.
	Sync() error
	// Size is the log's size in bytes; compaction is triggered on it.
	Size() int64
	// Close syncs and releases the log. Later calls fail with ErrClosed.
	Close() error
	// Durable reports whether the records outlive the process, so that a
	// failed write can be undone by reading them back (false for
	// MemoryLog).
	Durable() bool
	// Failed is the failure that makes the log unusable until it is
	// reopened (a failed fsync, or a failed write it could not cut back
	// off), nil if none. A write that failed cleanly (nothing of it left,
	// like a full disk) is not one.
	Failed() error
	// BeginCompaction marks the log's current end as what the snapshot
	// about to be passed to the returned Run describes (see Compaction). A
	// log with nothing to compact returns ErrNoCompaction.
	BeginCompaction() (LogCompaction, error)
}

// LogCompaction is a compaction started by BeginCompaction.
type LogCompaction interface {
	// Run rewrites the log as snapshot plus what was written since
	// BeginCompaction; it may run in the background.
	Run(snapshot []Record) error
}

// ErrNoCompaction is returned by BeginCompaction of a log that keeps
// nothing to compact.
var ErrNoCompaction = errors.New("log has nothing to compact")

// Failed is the log's sticky failure (see Logfile), or nil.
func (l *Logfile) Failed() error { return l.failure() }

// Failed is nil: a MemoryLog only refuses invalid records.
func (m *MemoryLog) Failed() error { return nil }

// Durable is true: the records are in a file.
func (l *Logfile) Durable() bool { return true }

// BeginCompaction is StartCompaction behind the ShardLog seam.
func (l *Logfile) BeginCompaction() (LogCompaction, error) {
	c, err := l.StartCompaction()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// MemoryLog is the ShardLog of persistence = memory: it stores nothing (so
// unlike ztick's memory backend it does not grow without bound), and Sync
// is a no-op. It still encodes every record, so an invalid record fails
// here exactly as it would with a Logfile, and Size counts the bytes a
// Logfile would hold, header included.
type MemoryLog struct {
	mu     sync.Mutex
	size   int64
	closed bool
	buf    []byte
}

var _ ShardLog = (*MemoryLog)(nil)

// NewMemoryLog returns an empty MemoryLog.
func NewMemoryLog() *MemoryLog { return &MemoryLog{size: int64(headerSize)} }

// Write encodes recs and counts their bytes.
func (m *MemoryLog) Write(recs []Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("write memory log: %w", ErrClosed)
	}
	buf, err := appendFrames(m.buf[:0], recs)
	if err != nil {
		return fmt.Errorf("write memory log: %w", err)
	}
	m.size += int64(len(buf))
	if cap(buf) <= maxKeptBuffer {
		m.buf = buf
	}
	return nil
}

// Sync is a no-op: there is nothing to make durable.
func (m *MemoryLog) Sync() error { return nil }

// Size is the bytes a Logfile with the same records would hold.
func (m *MemoryLog) Size() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.size
}

// Durable is false: nothing outlives the process.
func (m *MemoryLog) Durable() bool { return false }

// BeginCompaction returns ErrNoCompaction: a MemoryLog keeps no records.
func (m *MemoryLog) BeginCompaction() (LogCompaction, error) { return nil, ErrNoCompaction }

// Close marks the log closed.
func (m *MemoryLog) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
