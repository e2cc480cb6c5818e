package worker

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
)

// journals holds the worker's journal (store.Journal): with fsync =
// "always" every shard log of the worker journals its writes in it, so a
// group commit is one fsync however many shard files it touched. It is
// opened with the first shard and replaced when it fails (the shards that
// used it fail too and are reopened, see fault.go); the files of a failed
// one stay until the next shard open's recovery makes them unneeded.
type journals struct {
	mu    sync.Mutex
	log   hclog.Logger
	fsync func(*os.File) error // fault injection; nil in production
	j     *store.Journal
}

// journalFor returns the journal for a shard log under set, nil when the
// shards are not journaled (memory, or a policy that does not fsync every
// acknowledgement).
func (js *journals) journalFor(set ipc.Settings) (*store.Journal, error) {
	if js == nil || set.Persistence != "logfile" || fsyncPolicy(set.Fsync) != store.FsyncAlways {
		return nil, nil
	}
	js.mu.Lock()
	defer js.mu.Unlock()
	if js.j != nil && js.j.Failed() != nil {
		js.log.Warn("replacing failed journal", "path", js.j.Path(), "error", js.j.Failed())
		if err := js.j.Close(); err != nil {
			js.log.Error("close failed journal", "error", err)
		}
		js.j = nil
	}
	if js.j == nil {
		dir := filepath.Dir(ShardPath(set.DataDir, 0))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		j, err := store.OpenJournal(dir, js.fsync)
		if err != nil {
			return nil, err
		}
		js.log.Debug("journal opened", "path", j.Path())
		js.j = j
	}
	return js.j, nil
}

// close closes the journal; every shard log must be closed already.
func (js *journals) close() {
	if js == nil {
		return
	}
	js.mu.Lock()
	defer js.mu.Unlock()
	if js.j == nil {
		return
	}
	if err := js.j.Close(); err != nil {
		js.log.Error("close journal", "error", err)
	}
	js.j = nil
}
