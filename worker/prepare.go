package worker

import (
	"os"

	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
)

// staged is a shard read ahead of its handoff: its jobs up to offset of the
// file whose id is owner.FileID.
type staged struct {
	shard  int
	jobs   *store.Jobs
	offset int64
	owner  store.Owner // the last owner record read
	fileID uint64
	err    error
}

// prepare reads shards in the background while their owner still writes
// them (read-only: a partial record at the end is a write in progress) and
// hands the results to the loop, which answers Prepared.
func (w *Worker) prepare(p ipc.Prepare) {
	if w.set.Persistence == "memory" || w.jetStreamMode() { // nothing to read ahead: a stream replays fast
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
	id, err := store.ReadFileID(path)
	if err != nil {
		st.err = err
		return st
	}
	res, owner, err := store.ReplayShardJobs(path, 0, st.jobs, false)
	if err != nil {
		st.err = err
		return st
	}
	st.offset, st.owner, st.fileID = res.Bytes, owner, id
	return st
}

// takeStaged returns shard n's read-ahead if it still describes the file:
// the same file id (no compaction put a new file in its place; inodes are
// reused, ids are not) and not shorter. A file without an id (written
// before fencing) is always replayed whole.
func (w *Worker) takeStaged(n int) *staged {
	st, ok := w.staged[n]
	if !ok {
		return nil
	}
	delete(w.staged, n)
	path := ShardPath(w.set.DataDir, n)
	id, err := store.ReadFileID(path)
	fi, serr := os.Stat(path)
	if st.err != nil || err != nil || serr != nil || id == 0 || id != st.fileID || fi.Size() < st.offset || st.offset == 0 {
		return nil
	}
	return &st
}
