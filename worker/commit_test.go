package worker

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tockd/tock/store"
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
// does); "1-file" is the floor, a single log. Reports µs per commit round
// (the latency every pipelined ack of the round waits for).
//
//	go test -run '^$' -bench GroupCommitSync -benchtime 200x ./worker/
func BenchmarkGroupCommitSync(b *testing.B) {
	for _, c := range []struct {
		name         string
		files        int
		concurrently bool
	}{{"1-file", 1, false}, {"8-files-serial", 8, false}, {"8-files-concurrent", 8, true}} {
		b.Run(c.name, func(b *testing.B) {
			dir := b.TempDir()
			var logs []store.ShardLog
			for i := range c.files {
				l, err := store.OpenLogfile(filepath.Join(dir, fmt.Sprintf("%03d.log", i)), store.FsyncAlways)
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				logs = append(logs, l)
			}
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
		})
	}
}
