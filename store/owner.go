package store

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Fencing. A shard file has one writer at a time, and the OS enforces it:
//
//   - The owner holds an exclusive flock on <log>.lock for as long as it
//     has the log open (OpenShard). A second writer fails to open the shard
//     with ErrLocked instead of appending at its own offsets. The lock is on
//     a file of its own because compaction renames a new log file over the
//     old one, and a lock on the log itself would stay with the old inode.
//   - Every owner has an epoch, given by the master and growing with every
//     handoff. OpenShard appends a RecordOwner with it, and refuses a file
//     whose last RecordOwner has a higher epoch (ErrFenced): a stale owner
//     cannot take a shard back from a newer one.
//   - The first frame of a shard file is a RecordOwner whose FileID is
//     random and new for every file (creation, compaction): it identifies
//     the file, so a read-ahead knows it is still reading the same one
//     (inodes are reused).
//   - A fenced Logfile checks before each write that nobody else appended
//     to its file, and before each fsync that its file is still the one at
//     its path; if not, it fails (ErrFenced) rather than write on.
//
// Files written before fencing have no RecordOwner: their epoch is 0 and
// their FileID 0 (unknown); the first owner that opens one appends a
// RecordOwner, and its first compaction gives it an id.

// Owner is a shard file's fencing record.
type Owner struct {
	// FileID identifies the file (0: a file from before fencing).
	FileID uint64
	// Epoch is the owner's epoch (0: none).
	Epoch uint64
}

// ErrFenced is wrapped when a shard log refuses a writer: a newer owner
// has the shard, or someone else wrote to the file.
var ErrFenced = errors.New("fenced")

// lockSuffix names a shard log's lock file.
const lockSuffix = ".lock"

// lockWait bounds how long OpenShard waits for a lock that is held: long
// enough for one just released to be free (see LockFileWait), short next
// to the boot timeout, so a real second writer still fails loudly.
const lockWait = 2 * time.Second

// newFileID returns a random, non-zero file id.
func newFileID() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
		if id := binary.BigEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

// ReplayShard is ReplayFrom for a shard log: RecordOwner records are not
// passed to fn; the last one read is returned.
func ReplayShard(path string, from int64, fn func(Record) error, repair bool) (ReplayResult, Owner, error) {
	var last Owner
	res, err := ReplayFrom(path, from, func(r Record) error {
		if r.Type == RecordOwner {
			last = r.Owner
			return nil
		}
		if fn == nil {
			return nil
		}
		return fn(r)
	}, repair)
	return res, last, err
}

// ReadFileID returns the FileID of the shard log at path: that of its first
// frame when it is a RecordOwner, else 0 (no file, an empty one, or one from
// before fencing).
func ReadFileID(path string) (uint64, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read file id of %s: %w", path, err)
	}
	defer f.Close() // read-only
	b := make([]byte, headerSize+frameHeaderSize+ownerPayloadSize)
	if _, err := f.ReadAt(b, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil
		}
		return 0, fmt.Errorf("read file id of %s: %w", path, err)
	}
	if checkHeader(b[:headerSize]) != nil {
		return 0, nil
	}
	frame := b[headerSize:]
	if binary.BigEndian.Uint32(frame) != ownerPayloadSize {
		return 0, nil
	}
	rec, err := DecodeRecord(frame[frameHeaderSize:])
	if err != nil || rec.Type != RecordOwner {
		return 0, nil
	}
	return rec.Owner.FileID, nil
}

// ownerPayloadSize is a RecordOwner's payload: type, file id, epoch.
const ownerPayloadSize = 1 + 8 + 8

// ShardOptions say how OpenShard opens a shard log.
type ShardOptions struct {
	Policy FsyncPolicy
	// Epoch is the new owner's epoch.
	Epoch uint64
	// From is where a read-ahead of the same file (same FileID) stopped;
	// 0 replays the whole file.
	From int64
	// Seen is the last RecordOwner the read-ahead read before From.
	Seen Owner
	// Apply gets every record replayed, except RecordOwner.
	Apply func(Record) error
	// Jobs, when set instead of Apply, gets every record applied in place
	// (see ReplayShardJobs): what a shard's boot uses.
	Jobs *Jobs
	// Fsync, when set, replaces fsync(2) for the opened log: a fault
	// injection seam for tests, never set in production.
	Fsync func(*os.File) error
	// Journal, when set and Policy is FsyncAlways, is the worker's
	// journal: Sync fsyncs it rather than the shard file (see Journal).
	Journal *Journal
}

// ShardOpened says what OpenShard found.
type ShardOpened struct {
	Replay ReplayResult
	// Previous is the last owner recorded in the file before this one.
	Previous Owner
	// Owner is the file's id and the epoch it now belongs to.
	Owner Owner
	// Recovered is the number of writes a dead worker's journal put back
	// into shard files of the directory (RecoverJournals).
	Recovered int
}

// OpenShard locks, replays (repairing a torn tail) and opens the shard log
// at path for the owner with epoch o.Epoch, and records that owner in it.
// It fails with ErrLocked when another process has the shard open, and
// with ErrFenced when the file belongs to a newer epoch.
func OpenShard(path string, o ShardOptions) (*Logfile, ShardOpened, error) {
	var out ShardOpened
	// A dead worker's journal may hold writes this file lost in a crash.
	n, err := RecoverJournals(filepath.Dir(path))
	if err != nil {
		return nil, out, fmt.Errorf("open %s: %w", path, err)
	}
	out.Recovered = n
	lock, err := LockFileWait(path+lockSuffix, lockWait)
	if err != nil {
		return nil, out, fmt.Errorf("another process has shard log %s open: %w", path, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = lock.Unlock() // the open error is what matters
		}
	}()
	var res ReplayResult
	var last Owner
	if o.Jobs != nil {
		res, last, err = ReplayShardJobs(path, o.From, o.Jobs, true)
	} else {
		res, last, err = ReplayShard(path, o.From, o.Apply, true)
	}
	if err != nil {
		return nil, out, err
	}
	if last == (Owner{}) {
		last = o.Seen
	}
	out.Replay, out.Previous = res, last
	if last.Epoch > o.Epoch {
		return nil, out, fmt.Errorf("open %s: %w: it belongs to owner epoch %d, newer than this owner's %d", path, ErrFenced, last.Epoch, o.Epoch)
	}
	l, err := openLogfile(path, o.Policy, nil)
	if err != nil {
		return nil, out, err
	}
	fid, err := ReadFileID(path)
	if err != nil {
		_ = l.Close() // the read error is what matters
		return nil, out, err
	}
	var rec *Record
	switch {
	case l.Size() == int64(headerSize):
		fid = newFileID()
		rec = &Record{Type: RecordOwner, Owner: Owner{FileID: fid, Epoch: o.Epoch}}
	case o.Epoch > last.Epoch:
		rec = &Record{Type: RecordOwner, Owner: Owner{FileID: fid, Epoch: o.Epoch}}
	}
	if rec != nil {
		if err := l.Write([]Record{*rec}); err == nil {
			err = l.syncNow()
		}
		if err != nil {
			_ = l.Close() // the write error is what matters
			return nil, out, fmt.Errorf("record owner in %s: %w", path, err)
		}
	} else if o.Journal != nil {
		// A journal vouches only for what is written from now on; what an
		// earlier owner left only in the page cache is made durable here
		// (and that is what lets its journal be deleted, see
		// RecoverJournals).
		if err := l.syncNow(); err != nil {
			_ = l.Close() // the fsync error is what matters
			return nil, out, fmt.Errorf("open %s: %w", path, err)
		}
	}
	l.mu.Lock()
	l.lock, l.owner = lock, Owner{FileID: fid, Epoch: o.Epoch}
	if o.Fsync != nil {
		l.fsync = o.Fsync
	}
	if o.Policy == FsyncAlways {
		l.journal = o.Journal
	}
	l.mu.Unlock()
	out.Owner = l.owner
	ok = true
	return l, out, nil
}

// Owner is the file id and epoch a fenced log writes under (zero for a log
// opened without OpenShard).
func (l *Logfile) Owner() Owner {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.owner
}

// checkFenceLocked reports whether someone else has written to the log's
// file (its size is not what this log wrote) or, with path set, replaced it
// at its path. Only fenced logs are checked.
func (l *Logfile) checkFenceLocked(path bool) error {
	if l.lock == nil {
		return nil
	}
	fi, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", l.path, err)
	}
	if size := l.size.Load(); fi.Size() != size {
		return fmt.Errorf("%s: %w: the file is %d bytes, this owner wrote %d: another process writes it", l.path, ErrFenced, fi.Size(), size)
	}
	if path {
		pi, err := os.Stat(l.path)
		if err != nil {
			return fmt.Errorf("%s: %w: stat: %v", l.path, ErrFenced, err)
		}
		if !os.SameFile(fi, pi) {
			return fmt.Errorf("%s: %w: another file was put at its path", l.path, ErrFenced)
		}
	}
	return nil
}

// syncNow fsyncs whatever the policy (the owner record must be durable
// before the owner writes anything that depends on it).
func (l *Logfile) syncNow() error {
	l.acquireSync()
	cover, err := l.fsyncCurrent()
	l.releaseSync(cover)
	return err
}
