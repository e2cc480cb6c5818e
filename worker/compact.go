package worker

import (
	"errors"
	"time"

	"github.com/tockd/tock/store"
)

// A shard log is also compacted, whatever the interval, once it is larger
// than compactMinBytes and more than compactRatio times what its live jobs
// need (estimated at liveBytesPerJob each).
const (
	compactMinBytes = 64 << 20
	compactRatio    = 4
	liveBytesPerJob = 64
)

// maybeCompact starts a background compaction of sh when its interval has
// passed or its log has grown well past its live data. Must be called with
// no records of sh pending (after endBatch): the snapshot must describe
// exactly what the log holds at StartCompaction.
func (w *Worker) maybeCompact(sh *shard, now time.Time) {
	if sh.compactDone != nil {
		return
	}
	if !sh.log.Durable() {
		return
	}
	interval := time.Duration(w.set.CompressionInterval) * time.Second
	due := interval > 0 && now.Sub(sh.lastCompact) >= interval
	size := sh.log.Size()
	big := size > compactMinBytes && size > compactRatio*int64(sh.jobs.Len()+1)*liveBytesPerJob
	if due || big {
		w.startCompaction(sh, now)
	}
}

// compactAll starts a compaction of every shard not already compacting
// (POST /compact) and returns how many started.
func (w *Worker) compactAll() int {
	w.endBatch()
	n := 0
	for _, sh := range w.shards {
		if sh.log.Durable() && sh.compactDone == nil {
			if w.startCompaction(sh, time.Now()) {
				n++
			}
		}
	}
	return n
}

func (w *Worker) startCompaction(sh *shard, now time.Time) bool {
	c, err := sh.log.BeginCompaction()
	if errors.Is(err, store.ErrNoCompaction) {
		return false
	}
	if err != nil {
		w.log.Warn("cannot start compaction", "shard", sh.id, "error", err)
		return false
	}
	snapshot := sh.jobs.Records(nil)
	sh.compaction = "running"
	sh.lastCompact = now
	done := make(chan error, 1)
	sh.compactDone = done
	go func() { done <- c.Run(snapshot) }()
	return true
}

// reapCompactions records finished compactions; wait blocks until every
// running one has finished (before closing shards).
func (w *Worker) reapCompactions(wait bool) {
	for _, sh := range w.shards {
		w.reapCompaction(sh, wait)
	}
}

func (w *Worker) reapCompaction(sh *shard, wait bool) {
	if sh.compactDone == nil {
		return
	}
	var err error
	if wait {
		err = <-sh.compactDone
	} else {
		select {
		case err = <-sh.compactDone:
		default:
			return
		}
	}
	sh.compactDone = nil
	w.metrics.compacted(sh.id, err == nil)
	if err != nil {
		sh.compaction = "failure"
		w.log.Error("compaction failed", "shard", sh.id, "error", err)
		return
	}
	sh.compaction = "success"
	w.log.Debug("shard compacted", "shard", sh.id, "bytes", sh.log.Size())
}
