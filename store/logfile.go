package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// FsyncPolicy says when written records become durable (database.fsync).
type FsyncPolicy int

const (
	// FsyncAlways: Sync fsyncs, and concurrent Syncs share one fsync (group
	// commit). A mutation is acknowledged after Sync returns.
	FsyncAlways FsyncPolicy = iota
	// FsyncInterval: Sync is a no-op; a background goroutine fsyncs once a
	// second when there were writes. A crash loses at most about a second.
	FsyncInterval
	// FsyncNever: never fsync; the kernel writes back when it likes.
	FsyncNever
)

var fsyncPolicyNames = [...]string{"always", "interval", "never"}

func (p FsyncPolicy) String() string {
	if p >= 0 && int(p) < len(fsyncPolicyNames) {
		return fsyncPolicyNames[p]
	}
	return fmt.Sprintf("fsync(%d)", int(p))
}

// ParseFsyncPolicy maps a database.fsync value to its policy.
func ParseFsyncPolicy(s string) (FsyncPolicy, error) {
	for i, n := range fsyncPolicyNames {
		if n == s {
			return FsyncPolicy(i), nil
		}
	}
	return 0, fmt.Errorf("unknown fsync policy %q (want always, interval or never)", s)
}

// fsyncEvery is FsyncInterval's period.
const fsyncEvery = time.Second

// compactSuffix names the file a compaction writes before renaming it over
// the log; one left by a crash is garbage and OpenLogfile removes it.
const compactSuffix = ".compact.tmp"

// ErrClosed is wrapped by operations on a closed Logfile or MemoryLog.
var ErrClosed = errors.New("log closed")

// Logfile is one shard's append-only log file, open for appending. Write
// appends a batch with one write; Sync makes it durable. It is safe for
// concurrent use. Replay the file before opening it: OpenLogfile appends
// after whatever the file holds and does not check the frames.
//
// A failed write is cut back off the file, so a half-written frame is never
// left for a later record to follow. A failed fsync is sticky: the kernel
// may have dropped the dirty pages, so no later fsync can vouch for them, and
// every later Write and Sync returns the error until the shard is reopened.
type Logfile struct {
	path   string
	policy FsyncPolicy

	// fsync makes a file durable. It is a field so tests can count, block
	// and fail fsyncs; fsyncs counts the calls.
	fsync  func(*os.File) error
	fsyncs atomic.Uint64

	size atomic.Int64 // bytes in the current file; stored under mu, read freely

	mu         sync.Mutex // guards the fields below
	f          *os.File
	seq        uint64 // successful Writes since open: the group commit's clock
	buf        []byte // reused encode buffer
	err        error  // sticky failure; see the type comment
	closed     bool
	compaction *Compaction // the running compaction, if any
	// Fencing (owner.go): set by OpenShard. lock is held until Close.
	lock  *FileLock
	owner Owner
	// durable is the file size the last successful fsync covered: a
	// failed log is cut back to it on Close (see Close).
	durable int64
	// journal, when set (OpenShard), makes writes durable with one fsync
	// of the worker's journal instead of this file's (see Journal); jseq
	// is the journal seq of this log's last write.
	journal *Journal
	jseq    uint64

	// Group commit (see groupcommit.go). Lock order: smu before mu.
	smu     sync.Mutex
	cond    *sync.Cond // on smu: an fsync finished or the token was released
	syncing bool       // someone holds the fsync token
	synced  uint64     // every Write up to this seq is durable

	stop      chan struct{} // closes the FsyncInterval goroutine
	done      chan struct{} // closed when that goroutine has returned
	closeOnce sync.Once
}

var _ ShardLog = (*Logfile)(nil)

// OpenLogfile opens path for appending, creating it with a header (and
// fsyncing the file and its directory) if it is missing. A leftover
// compaction file from a crash is removed.
func OpenLogfile(path string, policy FsyncPolicy) (*Logfile, error) {
	return openLogfile(path, policy, nil)
}

// OpenLogfileWith is OpenLogfile with fsync(2) replaced by fsync when it is
// not nil: a fault injection seam for tests, never used in production.
func OpenLogfileWith(path string, policy FsyncPolicy, fsync func(*os.File) error) (*Logfile, error) {
	l, err := openLogfile(path, policy, nil)
	if err == nil && fsync != nil {
		l.fsync = fsync
	}
	return l, err
}

// openLogfile is OpenLogfile with FsyncInterval's ticks supplied by the
// caller when tick is not nil, so tests can drive them.
func openLogfile(path string, policy FsyncPolicy, tick <-chan time.Time) (*Logfile, error) {
	if policy < FsyncAlways || policy > FsyncNever {
		return nil, fmt.Errorf("open logfile %s: unknown fsync policy %d", path, int(policy))
	}
	if err := os.Remove(path + compactSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open logfile %s: remove leftover compaction: %w", path, err)
	}
	f, size, err := openOrCreate(path)
	if err != nil {
		return nil, fmt.Errorf("open logfile %s: %w", path, err)
	}
	l := &Logfile{path: path, policy: policy, f: f, fsync: (*os.File).Sync, durable: size}
	l.cond = sync.NewCond(&l.smu)
	l.size.Store(size)
	if policy == FsyncInterval {
		stopTicker := func() {}
		if tick == nil {
			t := time.NewTicker(fsyncEvery)
			tick, stopTicker = t.C, t.Stop
		}
		l.stop, l.done = make(chan struct{}), make(chan struct{})
		go l.syncLoop(tick, stopTicker)
	}
	return l, nil
}

// openOrCreate opens an existing log after checking its header, repairs a
// header torn by a crash during creation, or creates a new log.
func openOrCreate(path string) (*os.File, int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return createLogfile(path)
	}
	if err != nil {
		return nil, 0, err
	}
	size, err := readHeader(f)
	if err != nil {
		_ = f.Close() // best effort: the header error is what matters
		return nil, 0, err
	}
	return f, size, nil
}

// readHeader checks f's header and returns f's size. A file shorter than a
// header that holds a prefix of one was torn while being created: the
// header is written again.
func readHeader(f *os.File) (int64, error) {
	h := make([]byte, headerSize)
	n, err := f.ReadAt(h, 0)
	if err != nil && err != io.EOF {
		return 0, fmt.Errorf("read header: %w", err)
	}
	if n == headerSize {
		if err := checkHeader(h); err != nil {
			return 0, err
		}
		st, err := f.Stat()
		if err != nil {
			return 0, fmt.Errorf("stat: %w", err)
		}
		return st.Size(), nil
	}
	if !isHeaderPrefix(h[:n]) {
		return 0, checkHeader(h[:n])
	}
	if err := writeHeader(f); err != nil {
		return 0, err
	}
	return int64(headerSize), nil
}

// createLogfile creates a log holding only its header, durably: the file is
// fsynced and so is the directory entry that names it.
func createLogfile(path string) (*os.File, int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, 0, err
	}
	if err := writeHeader(f); err != nil {
		_ = f.Close() // best effort: the write error is what matters
		return nil, 0, err
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		_ = f.Close() // best effort: the fsync error is what matters
		return nil, 0, err
	}
	return f, int64(headerSize), nil
}

func writeHeader(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("truncate before header: %w", err)
	}
	if _, err := f.WriteAt(fileHeader(), 0); err != nil {
		return fmt.Errorf("write header: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync header: %w", err)
	}
	return nil
}

// syncDir fsyncs a directory so that a created or renamed entry in it
// survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory for fsync: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// Path is the file the log writes to.
func (l *Logfile) Path() string { return l.path }

// Size is the current file size in bytes, header included. It shrinks after
// a compaction, which is what a size-triggered compaction wants to see.
func (l *Logfile) Size() int64 { return l.size.Load() }

// Write appends recs to the file with one write. It is not durable until
// Sync. If any record is invalid nothing is written; if the write fails, the
// file is cut back to where it was and the error is returned.
func (l *Logfile) Write(recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.usableLocked(); err != nil {
		return fmt.Errorf("write %s: %w", l.path, err)
	}
	if err := l.checkFenceLocked(false); err != nil {
		l.err = err
		return err
	}
	buf, err := appendFrames(l.buf[:0], recs)
	if err != nil {
		return fmt.Errorf("write %s: %w", l.path, err)
	}
	if cap(buf) <= maxKeptBuffer {
		l.buf = buf
	}
	off := l.size.Load()
	if err := l.appendLocked(buf); err != nil {
		return err
	}
	if l.journal != nil {
		seq, err := l.journal.append(l, l.owner.FileID, off, buf)
		if err != nil {
			// Not journaled, so not to be acknowledged: cut it back off.
			if terr := l.f.Truncate(off); terr != nil {
				l.err = errors.Join(err, fmt.Errorf("truncate %s back to %d: %w", l.path, off, terr))
				return l.err
			}
			l.size.Store(off)
			return fmt.Errorf("write %s: %w", l.path, err)
		}
		l.jseq = seq
	}
	l.seq++
	return nil
}

// maxKeptBuffer bounds the encode buffer kept between Writes, so one huge
// batch does not pin its memory for the life of the shard.
const maxKeptBuffer = 1 << 20

// usableLocked reports why the log cannot take writes, if it cannot: its
// own failure, or its journal's (the log is reopened with a new one).
func (l *Logfile) usableLocked() error {
	if l.closed {
		return ErrClosed
	}
	if l.err == nil && l.journal != nil {
		return l.journal.Failed()
	}
	return l.err
}

// appendLocked writes b at the end of the file. On failure it truncates the
// file back so no partial frame stays behind; if even that fails the log is
// marked failed, since the next frame would follow garbage.
func (l *Logfile) appendLocked(b []byte) error {
	size := l.size.Load()
	n, err := l.f.WriteAt(b, size)
	if err == nil {
		l.size.Store(size + int64(n))
		return nil
	}
	werr := fmt.Errorf("write %s at offset %d: %w", l.path, size, err)
	if terr := l.f.Truncate(size); terr != nil {
		l.err = errors.Join(werr, fmt.Errorf("truncate %s back to %d: %w", l.path, size, terr))
		return l.err
	}
	return werr
}

// Close makes everything written durable (unless the policy is
// FsyncNever), stops the background goroutine and closes the file. A
// running compaction fails with ErrClosed. Close is idempotent.
func (l *Logfile) Close() error {
	l.closeOnce.Do(func() {
		if l.stop != nil {
			close(l.stop)
			<-l.done
		}
	})
	l.acquireSync()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.releaseSync(0)
		return nil
	}
	l.closed = true
	f, seq, failed, durable, lock, journal := l.f, l.seq, l.err, l.durable, l.lock, l.journal
	if failed == nil && journal != nil {
		// What the journal could not vouch for is cut back as after a
		// failed fsync of the file.
		failed = journal.Failed()
	}
	l.lock = nil
	l.mu.Unlock()

	var err error
	var cover uint64 // what Close made durable, for Syncs still waiting
	if l.policy != FsyncNever && failed == nil {
		if err = l.syncFile(f); err != nil {
			err = fmt.Errorf("close %s: fsync: %w", l.path, err)
		} else {
			cover = seq
		}
	}
	if failed != nil && l.policy == FsyncAlways && !errors.Is(failed, ErrFenced) {
		// Nothing past the last good fsync was acknowledged, and the kernel
		// may or may not write it: cut it off, so that whoever reopens the
		// file reads what was acknowledged and nothing else.
		if terr := f.Truncate(durable); terr != nil {
			err = errors.Join(err, fmt.Errorf("close %s: cut back to the last fsync at %d: %w", l.path, durable, terr))
		} else if journal != nil {
			// What is left was made durable by the journal, whose fsync
			// may be what failed: make it durable in the file itself.
			if serr := l.syncFile(f); serr != nil {
				err = errors.Join(err, fmt.Errorf("close %s: fsync: %w", l.path, serr))
			} else {
				cover = seq
			}
		}
	}
	if journal != nil {
		// The journal may forget this log once its file holds everything
		// acknowledged durably.
		journal.detach(l, err == nil && cover == seq)
	}
	if cerr := f.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close %s: %w", l.path, cerr))
	}
	if uerr := lock.Unlock(); uerr != nil {
		err = errors.Join(err, uerr)
	}
	l.releaseSync(cover)
	return err
}
