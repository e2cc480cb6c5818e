package store

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrLocked is wrapped when a lock is held by another process (or another
// open of the same file in this one).
var ErrLocked = errors.New("locked by another process")

// FileLock is an exclusive flock(2) on a file, held until Unlock or the
// holder's death: the kernel releases it however the process ends, so a
// crashed holder never leaves a stale lock behind. The holder's pid is
// written into the file for the error message of whoever is refused.
type FileLock struct {
	f    *os.File
	path string
}

// LockFile takes an exclusive lock on path (created if missing) without
// waiting: if another holds it the error wraps ErrLocked and names its pid.
func LockFile(path string) (*FileLock, error) { return LockFileWait(path, 0) }

// lockPoll is how often LockFileWait tries again.
const lockPoll = 5 * time.Millisecond

// LockFileWait is LockFile trying again for up to wait. A lock just
// released can linger for a moment: a child forked by its holder keeps the
// descriptor until it execs (close-on-exec), so a new owner right after a
// handoff may find it held for that long.
func LockFileWait(path string, wait time.Duration) (*FileLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	deadline := time.Now().Add(wait)
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	for errors.Is(err, unix.EWOULDBLOCK) && time.Now().Before(deadline) {
		time.Sleep(lockPoll)
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if err != nil {
		holder := readHolder(f)
		_ = f.Close() // the lock error is what matters
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w (pid %s)", path, ErrLocked, holder)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	pid := strconv.Itoa(os.Getpid()) + "\n"
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(pid), 0)
		if err != nil {
			_ = f.Close() // the write error is what matters
			return nil, fmt.Errorf("lock %s: write pid: %w", path, err)
		}
	}
	return &FileLock{f: f, path: path}, nil
}

func readHolder(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0) // informational: an empty answer is fine
	if s := strings.TrimSpace(string(b[:n])); s != "" {
		return s
	}
	return "unknown"
}

// Path is the locked file.
func (l *FileLock) Path() string { return l.path }

// Unlock releases the lock. The file stays: removing it would let two
// processes lock two different files of the same name.
func (l *FileLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the only descriptor releases the flock
	l.f = nil
	if err != nil {
		return fmt.Errorf("unlock %s: %w", l.path, err)
	}
	return nil
}
