package store

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ErrCompacting is returned when a compaction is asked for while one runs.
var ErrCompacting = errors.New("compaction already running")

const (
	// swapThreshold is how much written-during-compaction data may be left
	// for the final swap, which copies it while writers wait.
	swapThreshold = 256 << 10
	// maxCatchUpPasses bounds the copy passes before the swap, so writers
	// that outpace the copy cannot keep a compaction from finishing.
	maxCatchUpPasses = 16
)

// Compaction rewrites a log as a snapshot of the live state followed by
// every record written since the snapshot was taken, then puts the new file
// in the old one's place. Writes go on meanwhile; they wait only for the
// final swap.
//
// The snapshot must reflect exactly the records written before
// StartCompaction: take the snapshot and call StartCompaction on the
// goroutine that calls Write, with no Write in between, then Run in the
// background. Records written after StartCompaction are copied from the old
// file to the new one, so none is lost, however the two interleave.
type Compaction struct {
	l      *Logfile
	mark   int64  // offset in the old file up to which the snapshot is the state
	fileID uint64 // the new file's id, for a fenced log
}

// StartCompaction marks the current end of the log as the point the
// snapshot about to be passed to Run describes. Only one compaction runs at
// a time.
func (l *Logfile) StartCompaction() (*Compaction, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return nil, fmt.Errorf("compact %s: %w", l.path, err)
	}
	if l.compaction != nil {
		return nil, fmt.Errorf("compact %s: %w", l.path, ErrCompacting)
	}
	l.compaction = &Compaction{l: l, mark: l.size.Load()}
	return l.compaction, nil
}

// Compact is StartCompaction followed by Run, for callers that do not Write
// between taking snapshot and calling Compact (see Compaction).
func (l *Logfile) Compact(snapshot []Record) error {
	c, err := l.StartCompaction()
	if err != nil {
		return err
	}
	return c.Run(snapshot)
}

// Run writes header and snapshot to <path>.compact.tmp and fsyncs it, copies
// in what was written to the log since StartCompaction, then, holding off
// writers only for this last step, copies the rest, fsyncs, renames the new
// file over the log, fsyncs the directory and switches the Logfile to it.
// On failure before the rename the old file stays the log, untouched.
func (c *Compaction) Run(snapshot []Record) error {
	l := c.l
	l.mu.Lock()
	mine := l.compaction == c
	l.mu.Unlock()
	if !mine {
		return fmt.Errorf("compact %s: compaction already finished", l.path)
	}
	err := c.run(snapshot)
	l.mu.Lock()
	l.compaction = nil
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("compact %s: %w", l.path, err)
	}
	return nil
}

func (c *Compaction) run(snapshot []Record) error {
	tmpPath := c.l.path + compactSuffix
	tmp, err := os.OpenFile(tmpPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			_ = tmp.Close()        // best effort: the file is being thrown away
			_ = os.Remove(tmpPath) // best effort: OpenLogfile removes leftovers too
		}
	}()
	c.l.mu.Lock()
	owner := c.l.owner
	fenced := c.l.lock != nil
	c.l.mu.Unlock()
	if fenced {
		// A new file: a new id, so a read-ahead of the old one is not
		// taken for it (see owner.go).
		owner.FileID = newFileID()
		snapshot = append([]Record{{Type: RecordOwner, Owner: owner}}, snapshot...)
	}
	size, err := writeSnapshot(tmp, snapshot)
	if err != nil {
		return err
	}
	c.fileID = owner.FileID
	if err := c.l.syncFile(tmp); err != nil {
		return fmt.Errorf("fsync %s: %w", tmpPath, err)
	}
	copied, size, err := c.catchUp(tmp, size)
	if err != nil {
		return err
	}
	renamed, err = c.swap(tmp, size, copied)
	return err
}

// writeSnapshot writes the header and snapshot to f and returns the size.
func writeSnapshot(f *os.File, snapshot []Record) (int64, error) {
	w := bufio.NewWriterSize(io.NewOffsetWriter(f, 0), 1<<20)
	if _, err := w.Write(fileHeader()); err != nil {
		return 0, fmt.Errorf("write snapshot: %w", err)
	}
	size := int64(headerSize)
	var frame []byte
	for i, r := range snapshot {
		var err error
		if frame, err = appendFrame(frame[:0], r); err != nil {
			return 0, fmt.Errorf("snapshot record %d: %w", i, err)
		}
		if _, err := w.Write(frame); err != nil {
			return 0, fmt.Errorf("write snapshot: %w", err)
		}
		size += int64(len(frame))
	}
	if err := w.Flush(); err != nil {
		return 0, fmt.Errorf("write snapshot: %w", err)
	}
	return size, nil
}

// catchUp copies what writers appended to the old file since the mark into
// tmp, without holding them off, until little enough is left for the swap.
// It returns how far the old file has been copied and tmp's size.
func (c *Compaction) catchUp(tmp *os.File, size int64) (copied, newSize int64, err error) {
	l, copied := c.l, c.mark
	for range maxCatchUpPasses {
		l.mu.Lock()
		src, end, uerr := l.f, l.size.Load(), l.usableLocked()
		l.mu.Unlock()
		if uerr != nil {
			return 0, 0, uerr
		}
		if end-copied <= swapThreshold {
			break
		}
		// Bytes below end are frames whose writes succeeded, so they are
		// never truncated away; reading them unlocked is safe.
		if err := copyRange(tmp, size, src, copied, end); err != nil {
			return 0, 0, err
		}
		size += end - copied
		copied = end
	}
	return copied, size, nil
}

// swap finishes the compaction with writers and fsyncs held off. It reports
// whether the rename happened: after it the new file is the log, even if
// the directory fsync then fails.
func (c *Compaction) swap(tmp *os.File, size, copied int64) (renamed bool, err error) {
	l := c.l
	l.acquireSync() // no fsync runs on the old file while it is closed
	l.mu.Lock()
	var cover uint64
	defer func() {
		l.mu.Unlock()
		l.releaseSync(cover)
	}()
	if err := l.usableLocked(); err != nil {
		return false, err
	}
	end := l.size.Load()
	if err := copyRange(tmp, size, l.f, copied, end); err != nil {
		return false, err
	}
	size += end - copied
	if err := l.syncFile(tmp); err != nil {
		return false, fmt.Errorf("fsync %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), l.path); err != nil {
		return false, err
	}
	old := l.f
	l.f = tmp
	l.size.Store(size)
	l.durable = size
	if l.lock != nil {
		l.owner.FileID = c.fileID
	}
	_ = old.Close() // everything in it is in tmp, durably; its close cannot lose data
	if err := syncDir(filepath.Dir(l.path)); err != nil {
		// The rename may not survive a crash, and writes now go to the new
		// file: a later ack could be lost. Fail the log (see Logfile).
		l.err = fmt.Errorf("compact %s: %w", l.path, err)
		return true, l.err
	}
	cover = l.seq // tmp holds every write and is fsynced
	return true, nil
}

// copyRange copies src[from:to] to dst at dstOff.
func copyRange(dst *os.File, dstOff int64, src *os.File, from, to int64) error {
	if to <= from {
		return nil
	}
	buf := make([]byte, min(to-from, 1<<20))
	_, err := io.CopyBuffer(io.NewOffsetWriter(dst, dstOff), io.NewSectionReader(src, from, to-from), buf)
	if err != nil {
		return fmt.Errorf("copy records written during compaction: %w", err)
	}
	return nil
}
