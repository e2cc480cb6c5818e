package master

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/tockd/tock/store"
)

// Fencing on the master's side (see docs/operations.md, "Fencing"): the
// master holds an exclusive lock on the data dir for its whole life, and
// hands every new owner of a shard an epoch higher than any before, which
// the worker records in the shard file.

// dirLockName is the data dir's lock file.
const dirLockName = "tock.lock"

// lockDataDir takes the data dir's lock: a second master on the same data
// dir is refused here, before it touches a socket, the pid file or a log.
func lockDataDir(dir string) (*store.FileLock, error) {
	l, err := store.LockFile(filepath.Join(dir, dirLockName))
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("another tock is running on %s: data dir %s is in use: %w", filepath.Join(dir, ControlSocket), dir, err)
	}
	return l, err
}

// epochFile keeps the last epoch base handed out, so that epochs grow
// across master restarts.
const epochFile = "epoch"

// epochs hands out owner epochs: base<<32 | n, where base grows by one at
// every master start (persisted before the first epoch is used) and n with
// every grant.
type epochs struct {
	mu   sync.Mutex
	base uint64
	n    uint64
}

// loadEpochs reads and advances the epoch base in dir (memory mode: dir
// is empty and epochs start at base 1).
func loadEpochs(dir string) (*epochs, error) {
	if dir == "" {
		return &epochs{base: 1}, nil
	}
	path := filepath.Join(dir, epochFile)
	var last uint64
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", path, err)
	default:
		if last, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
	}
	base := last + 1
	if err := writeFileSync(path, []byte(strconv.FormatUint(base, 10)+"\n")); err != nil {
		return nil, err
	}
	return &epochs{base: base}, nil
}

// next is a new epoch, higher than every one handed out before.
func (e *epochs) next() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	return e.base<<32 | e.n
}
