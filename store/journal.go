package store

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// Journal is a worker's write-ahead journal: one file that every write of
// its journaled shard logs is also appended to, so that a group commit
// costs one fsync of the journal instead of one per shard file it touched
// (on the bench machine's ext4, 8 shard files took 4-5× the CPU and
// latency of one file, issue 11).
//
// The shard files stay the logs: every record goes to its shard's file as
// before, and the journal holds a copy of the same bytes with where they go
// (the file's name and FileID and the offset), so a shard file is still
// complete on its own for replay, compaction and handoff. What the journal
// adds is durability for the part of a shard file not yet fsynced:
//
//   - Logfile.Sync of a journaled log fsyncs the journal (concurrent Syncs
//     share one fsync), after which the bytes are durable in the journal.
//   - A shard file is fsynced itself when its log closes (a handoff, a
//     shutdown) and at every checkpoint: when the journal passes
//     journalCheckpointBytes it moves to a new file, fsyncs every shard file
//     it journaled, and deletes the old one.
//   - After a crash of the machine the shard files may lack what only the
//     journal made durable: RecoverJournals, run before any shard is
//     replayed, writes every journaled write back into its shard file.
//
// A failed journal fsync is sticky, as a Logfile's is: the logs it could
// not vouch for fail, and so does every later write; the worker reopens its
// shards with a new journal (see worker/shard.go).
type Journal struct {
	dir   string
	stem  string    // journal-<pid>-<random>: the files' and the lock's name
	lock  *FileLock // held while the journal is open: its owner is alive
	fsync func(*os.File) error

	// Group commit, as in Logfile (groupcommit.go). Lock order: smu, mu.
	smu     sync.Mutex
	cond    *sync.Cond
	syncing bool
	synced  uint64

	mu     sync.Mutex
	f      *os.File
	gen    int   // the current file's generation (its name's number)
	size   int64 // bytes in the current file
	good   int64 // size the last successful fsync covered
	seq    uint64
	buf    []byte
	err    error             // sticky failure
	logs   map[*Logfile]bool // logs journaled in the current file
	keep   bool              // a file must outlive Close (see Close)
	closed bool
}

const (
	journalSuffix = ".wal"
	journalMagic  = "TOCKJNL\x00"
	// journalHeaderSize: magic, u32 version, 16-byte boot id.
	journalHeaderSize = len(journalMagic) + 4 + 16
	journalVersion    = 1
	// journalRecoverLock serializes RecoverJournals between workers.
	journalRecoverLock = "journal.recover.lock"
)

// journalCheckpointBytes is the size at which a journal checkpoints: it
// bounds the journal's disk space and what a recovery reads, against one
// fsync of every shard file per checkpoint.
var journalCheckpointBytes int64 = 64 << 20

// OpenJournal creates a new journal in dir, the shards' directory. fsync
// replaces fsync(2) when not nil (fault injection for tests).
func OpenJournal(dir string, fsync func(*os.File) error) (*Journal, error) {
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	stem := fmt.Sprintf("journal-%d-%08x", os.Getpid(), binary.BigEndian.Uint32(r[:]))
	lock, err := LockFile(filepath.Join(dir, stem+lockSuffix))
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	j := &Journal{dir: dir, stem: stem, lock: lock, fsync: fdatasync, logs: map[*Logfile]bool{}}
	if fsync != nil {
		j.fsync = fsync
	}
	j.cond = sync.NewCond(&j.smu)
	f, err := j.create(1)
	if err != nil {
		_ = lock.Unlock() // the create error is what matters
		return nil, err
	}
	j.f, j.gen, j.size, j.good = f, 1, int64(journalHeaderSize), int64(journalHeaderSize)
	return j, nil
}

// Path is the journal's current file.
func (j *Journal) Path() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.path(j.gen)
}

func (j *Journal) path(gen int) string {
	return filepath.Join(j.dir, fmt.Sprintf("%s.%06d%s", j.stem, gen, journalSuffix))
}

// create writes a new journal file of generation gen, durably (its header
// and its directory entry), so that a recovery finds it.
func (j *Journal) create(gen int) (*os.File, error) {
	path := j.path(gen)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create journal %s: %w", path, err)
	}
	h := append([]byte(journalMagic), 0, 0, 0, journalVersion)
	h = append(h, bootID()...)
	_, err = f.WriteAt(h, 0)
	if err == nil {
		preallocate(f, journalCheckpointBytes+int64(journalHeaderSize))
		err = j.fsync(f)
	}
	if err == nil {
		err = syncDir(j.dir)
	}
	if err != nil {
		_ = f.Close()       // the write error is what matters
		_ = os.Remove(path) // nothing in it yet
		return nil, fmt.Errorf("create journal %s: %w", path, err)
	}
	return f, nil
}

// append journals one write of l: frames at offset off of l's file, whose
// FileID is fileID. It returns the journal seq that Sync must reach for
// the write to be durable. Called with l.mu held, after the write to l's
// file succeeded.
func (j *Journal) append(l *Logfile, fileID uint64, off int64, frames []byte) (uint64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return 0, fmt.Errorf("journal %s: %w", j.stem, ErrClosed)
	}
	if j.err != nil {
		return 0, j.err
	}
	buf, err := appendJournalEntry(j.buf[:0], journalEntry{Name: filepath.Base(l.path), FileID: fileID, Offset: off, Frames: frames})
	if err != nil {
		return 0, fmt.Errorf("journal %s: %w", l.path, err)
	}
	if cap(buf) <= maxKeptBuffer {
		j.buf = buf
	}
	if _, err := j.f.WriteAt(buf, j.size); err != nil {
		werr := fmt.Errorf("write journal %s: %w", j.path(j.gen), err)
		if terr := j.f.Truncate(j.size); terr != nil {
			j.err = errors.Join(werr, fmt.Errorf("truncate journal back: %w", terr))
			return 0, j.err
		}
		return 0, werr
	}
	j.size += int64(len(buf))
	j.seq++
	j.logs[l] = true
	return j.seq, nil
}

// syncTo returns once every append up to target is durable, joining a
// running fsync or starting one (see groupcommit.go).
func (j *Journal) syncTo(target uint64) error {
	j.smu.Lock()
	for {
		if j.synced >= target {
			j.smu.Unlock()
			return nil
		}
		j.mu.Lock()
		err := j.err
		j.mu.Unlock()
		if err != nil {
			j.smu.Unlock()
			return err
		}
		if !j.syncing {
			break
		}
		j.cond.Wait()
	}
	j.syncing = true
	j.smu.Unlock()

	cover, err := j.fsyncCurrent()
	if err == nil {
		j.maybeCheckpoint()
	}
	j.smu.Lock()
	j.syncing = false
	if cover > j.synced {
		j.synced = cover
	}
	j.cond.Broadcast()
	j.smu.Unlock()
	return err
}

// fsyncCurrent fsyncs the current file and returns the seq it covers. On
// failure the journal is failed for good, and cut back to what the last
// good fsync covered, so that a recovery does not bring back the writes
// whose acknowledgements failed.
func (j *Journal) fsyncCurrent() (uint64, error) {
	j.mu.Lock()
	f, cover, size, err := j.f, j.seq, j.size, j.err
	j.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if err := j.fsync(f); err != nil {
		j.mu.Lock()
		defer j.mu.Unlock()
		j.err = fmt.Errorf("fsync journal %s: %w", j.path(j.gen), err)
		if terr := f.Truncate(j.good); terr != nil {
			j.err = errors.Join(j.err, fmt.Errorf("cut journal back to %d: %w", j.good, terr))
		}
		j.keep = true // what the last good fsync covered is still needed
		return 0, j.err
	}
	j.mu.Lock()
	if j.f == f && size > j.good {
		j.good = size
	}
	j.mu.Unlock()
	return cover, nil
}

// maybeCheckpoint moves the journal to a new file once it is big, fsyncs
// every shard file it journaled to and deletes the old file. The caller
// holds the fsync token, so no fsync of the journal runs meanwhile.
func (j *Journal) maybeCheckpoint() {
	j.mu.Lock()
	if j.size < journalCheckpointBytes || j.err != nil || j.closed {
		j.mu.Unlock()
		return
	}
	f, err := j.create(j.gen + 1)
	if err != nil {
		// The old file stays; the next sync tries again.
		j.mu.Unlock()
		return
	}
	old, oldPath, logs := j.f, j.path(j.gen), j.logs
	j.f, j.gen, j.size, j.good, j.logs = f, j.gen+1, int64(journalHeaderSize), int64(journalHeaderSize), map[*Logfile]bool{}
	j.mu.Unlock()

	// Everything in the old file was written to its shard files before the
	// switch; their fsyncs make it durable there.
	ok := true
	for l := range logs {
		if err := l.syncNow(); err != nil && !errors.Is(err, ErrClosed) {
			ok = false // the log is failed (sticky) and will be reopened
		}
	}
	_ = old.Close() // fsynced; nothing to lose
	if !ok {
		j.mu.Lock()
		j.keep = true
		j.mu.Unlock()
		return
	}
	if err := os.Remove(oldPath); err == nil {
		_ = syncDir(j.dir) // a resurrected old file is only replayed again
	}
}

// detach forgets l (its log closed). synced says its file was fsynced at
// close: if not, the journal's files are kept when the journal closes.
func (j *Journal) detach(l *Logfile, synced bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.logs, l)
	if !synced {
		j.keep = true
	}
}

// Journaled reports whether l's Sync fsyncs a journal rather than its
// file, so that concurrent Syncs of several such logs share one fsync.
func (l *Logfile) Journaled() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.journal != nil
}

// Failed is the journal's sticky failure, nil if none.
func (j *Journal) Failed() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// Close closes the journal once the logs journaled in it are closed. When
// every one of them was fsynced at close the journal is not needed any
// more and its file is deleted; otherwise (a failure) it stays, and the
// next RecoverJournals finds it (its owner gone) and deals with it.
func (j *Journal) Close() error {
	j.smu.Lock()
	for j.syncing {
		j.cond.Wait()
	}
	j.syncing = true
	j.smu.Unlock()
	defer func() {
		j.smu.Lock()
		j.syncing = false
		j.cond.Broadcast()
		j.smu.Unlock()
	}()
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	keep := j.keep || j.err != nil || len(j.logs) > 0
	f, path := j.f, j.path(j.gen)
	j.mu.Unlock()
	err := f.Close()
	if !keep {
		if rerr := os.Remove(path); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove journal: %w", rerr))
		} else {
			_ = os.Remove(j.lock.Path()) // unlocked below; nobody waits on it
		}
	}
	if uerr := j.lock.Unlock(); uerr != nil {
		err = errors.Join(err, uerr)
	}
	if err != nil {
		return fmt.Errorf("close journal %s: %w", j.stem, err)
	}
	return nil
}

// The journal's file is allocated up front (its size set to what it holds
// before a checkpoint, the blocks reserved) so that an append does not
// change the file's size, and fdatasync need not commit the inode with
// each group commit: one 60-byte append and fdatasync took 0.14 ms against
// 0.19 ms for an append and fsync on the bench machine. What follows the
// last entry reads as zeros, which end a journal (readJournal).

// preallocate reserves size bytes for f; where the filesystem cannot, the
// journal just grows as it is written.
func preallocate(f *os.File, size int64) {
	_ = unix.Fallocate(int(f.Fd()), 0, 0, size) // best effort, see above
}

// fdatasync makes f's data durable, and the metadata needed to read it
// (a size that grew, a block newly written), but not its times.
func fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}

// bootID identifies this boot of the machine (16 bytes; zero when it
// cannot be read). A journal written in another boot may hold writes its
// shard files lost in the crash; one of this boot cannot.
func bootID() []byte {
	id := make([]byte, 16)
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return id
	}
	var hex []byte
	for _, c := range b {
		if c != '-' && c != '\n' {
			hex = append(hex, c)
		}
	}
	for i := 0; i < 16 && 2*i+1 < len(hex); i++ {
		id[i] = hexDigit(hex[2*i])<<4 | hexDigit(hex[2*i+1])
	}
	return id
}

func hexDigit(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	return 0
}
