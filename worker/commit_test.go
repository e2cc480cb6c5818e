package worker

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
	"github.com/tockd/tock/worker/runner"
)

// failingLog is a shard log whose Sync fails (or not), counting its calls.
type failingLog struct {
	store.ShardLog
	err   error
	syncs int
}

func (f *failingLog) Sync() error { f.syncs++; return f.err }

// syncLogs syncs every log once and reports each one's own error, in
// order, whether the syncs run concurrently or not.
func TestSyncLogsReportsEachLog(t *testing.T) {
	boom := errors.New("boom")
	for _, concurrently := range []bool{true, false} {
		logs := []store.ShardLog{&failingLog{}, &failingLog{err: boom}, &failingLog{}}
		errs := syncLogs(logs, concurrently)
		for i, l := range logs {
			f := l.(*failingLog)
			if f.syncs != 1 {
				t.Fatalf("concurrently=%v: log %d synced %d times", concurrently, i, f.syncs)
			}
			if !errors.Is(errs[i], f.err) || (f.err == nil) != (errs[i] == nil) {
				t.Fatalf("concurrently=%v: log %d error %v, want %v", concurrently, i, errs[i], f.err)
			}
		}
	}
}

// BenchmarkGroupCommitSync: one group commit of a worker owning 8 shards
// under fsync = always: a record appended to each shard file, then every
// file synced, one after the other or concurrently (what the committer
// does), or journaled (the one fsync of the worker's journal, what a
// worker does now); "1-file" is the floor, a single log. Reports µs per
// commit round (the latency every pipelined ack of the round waits for)
// and the process's CPU per round.
//
//	go test -run '^$' -bench GroupCommitSync -benchtime 200x ./worker/
func BenchmarkGroupCommitSync(b *testing.B) {
	for _, c := range []struct {
		name         string
		files        int
		concurrently bool
		journaled    bool
	}{{"1-file", 1, false, false}, {"8-files-serial", 8, false, false}, {"8-files-concurrent", 8, true, false},
		{"8-files-journaled", 8, true, true}} {
		b.Run(c.name, func(b *testing.B) {
			dir := b.TempDir()
			var journal *store.Journal
			if c.journaled { // what a worker does with fsync = always
				j, err := store.OpenJournal(dir, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer j.Close()
				journal = j
			}
			var logs []store.ShardLog
			for i := range c.files {
				path := filepath.Join(dir, fmt.Sprintf("%03d.log", i))
				l, _, err := store.OpenShard(path, store.ShardOptions{Policy: store.FsyncAlways, Epoch: 1,
					Apply: func(store.Record) error { return nil }, Journal: journal})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				logs = append(logs, l)
			}
			cpu0 := ipc.CPUNs()
			rec := []store.Record{{Type: store.RecordJob, Job: store.Job{ID: "app.job.0000000000000001", Execution: 1}}}
			start := time.Now()
			for b.Loop() {
				for _, l := range logs {
					if err := l.Write(rec); err != nil {
						b.Fatal(err)
					}
				}
				for _, err := range syncLogs(logs, c.concurrently) {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N), "µs/round")
			b.ReportMetric(float64(ipc.CPUNs()-cpu0)/1e3/float64(b.N), "cpu-µs/round")
		})
	}
}

// A group commit over three shards whose middle one's fsync fails: the
// syncs run concurrently, yet no execution starts before its own log's
// sync succeeded, the failed shard's executions are dropped and reported
// to the loop on failures (with its error), its acks become errors,
// and the other shards' executions start and their acks go out as OK.
func TestCommitterFailsOnlyTheShardWhoseSyncFailed(t *testing.T) {
	boom := errors.New("boom")
	logs := []*failingLog{{}, {err: boom}, {}}
	a, b := net.Pipe()
	defer b.Close()
	link := ipc.NewLink(a)
	defer link.Close()
	var mu sync.Mutex
	var started []string
	c := newCommitter(link, hclog.NewNullLogger(), newMetrics(), func(ex runner.Execution) {
		mu.Lock()
		defer mu.Unlock()
		for i, l := range logs {
			if ex.JobID == fmt.Sprint("job", i) && (l.syncs != 1 || l.err != nil) {
				t.Errorf("%s started with its log synced %d times, error %v", ex.JobID, l.syncs, l.err)
			}
		}
		started = append(started, ex.JobID)
	})
	batch := commitBatch{}
	for i, l := range logs {
		batch.logs = append(batch.logs, l)
		batch.execs = append(batch.execs, pendingExec{log: l, ex: runner.Execution{JobID: fmt.Sprint("job", i)}})
	}
	c.queue(batch)
	for i, l := range logs {
		c.queue(commitBatch{logs: []store.ShardLog{l}, replies: []ipc.Reply{{Seq: uint64(i + 1), Kind: ipc.KindOK}}})
	}
	replies := map[uint64]ipc.Reply{}
	rd := bufio.NewReader(b)
	for len(replies) < len(logs) {
		f, err := ipc.ReadFrame(rd)
		if err != nil {
			t.Fatal(err)
		}
		if f.Type != ipc.TypeReply {
			continue
		}
		r, err := ipc.DecodeReply(f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		replies[r.Seq] = r
	}
	c.close()
	for i := range logs {
		r := replies[uint64(i+1)]
		if want := ipc.KindOK; i == 1 {
			if r.Kind != ipc.KindError || r.Err != unavailable(boom) {
				t.Errorf("failed shard's ack: %+v", r)
			}
		} else if r.Kind != want {
			t.Errorf("shard %d's ack: %+v, want OK", i, r)
		}
	}
	mu.Lock()
	slices.Sort(started)
	if !slices.Equal(started, []string{"job0", "job2"}) {
		t.Errorf("started %v, want job0 and job2", started)
	}
	mu.Unlock()
	// The batches may be committed in one round or several: every failure
	// is the failed shard's, and its execution is dropped once.
	var dropped []string
	for n := 0; ; n++ {
		select {
		case f := <-c.failures:
			if f.log != logs[1] || !errors.Is(f.err, boom) {
				t.Errorf("failure %+v", f)
			}
			for _, ex := range f.dropped {
				dropped = append(dropped, ex.JobID)
			}
			continue
		default:
		}
		if n == 0 {
			t.Fatal("no failure sent to the loop")
		}
		break
	}
	if !slices.Equal(dropped, []string{"job1"}) {
		t.Errorf("dropped %v, want job1", dropped)
	}
}
