package worker

import (
	"fmt"
	"os"
	"syscall"

	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
)

// staged is a shard read ahead of its handoff: its jobs up to offset of the
// file with inode ino.
type staged struct {
	shard  int
	jobs   *store.Jobs
	offset int64
	ino    uint64
	err    error
}

// prepare reads shards in the background while their owner still writes
// them (read-only: a partial record at the end is a write in progress) and
// hands the results to the loop, which answers Prepared.
func (w *Worker) prepare(p ipc.Prepare) {
	if w.set.Persistence == "memory" {
		w.send(ipc.TypePrepared, ipc.Prepared{Shards: p.Shards})
		return
	}
	set := w.set
	go func() {
		out := make([]staged, 0, len(p.Shards))
		for _, n := range p.Shards {
			out = append(out, readAhead(set, n))
		}
		w.stagedCh <- out
	}()
}

func readAhead(set ipc.Settings, n int) staged {
	path := ShardPath(set.DataDir, n)
	st := staged{shard: n, jobs: store.NewJobs()}
	ino, err := inode(path)
	if err != nil {
		st.err = err
		return st
	}
	res, err := store.ReplayJobs(path, 0, st.jobs, false)
	if err != nil {
		st.err = err
		return st
	}
	st.offset, st.ino = res.Bytes, ino
	return st
}

// takeStaged returns shard n's read-ahead if it still describes the file:
// same inode (no compaction renamed a new file in) and not shorter.
func (w *Worker) takeStaged(n int) *staged {
	st, ok := w.staged[n]
	if !ok {
		return nil
	}
	delete(w.staged, n)
	path := ShardPath(w.set.DataDir, n)
	ino, err := inode(path)
	fi, serr := os.Stat(path)
	if st.err != nil || err != nil || serr != nil || ino != st.ino || fi.Size() < st.offset || st.offset == 0 {
		return nil
	}
	return &st
}

func inode(path string) (uint64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("stat %s: no inode", path)
	}
	return sys.Ino, nil
}
