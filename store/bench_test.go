package store

import (
	"flag"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Figures measured on the development machine (2 vCPU AMD EPYC VM, virtio
// disk, Go 1.26.8, shared with other builds so ±30%), with
//
//	go test -run '^$' -bench . -benchtime 2s ./store/
//	go test -run '^$' -bench 'JobsMemory/10M' -benchtime 1x ./store/ -big
//
//	LogfileWriteSync/writers=1    5-7k records/s, 1.00 fsyncs/record (~150 µs per fsync)
//	LogfileWriteSync/writers=64   93-127k records/s, 0.033 fsyncs/record (~30 records per fsync)
//
// The job store's figures, before and after its move to pointer-free slabs,
// are with the benchmarks in jobs_bench_test.go.

// BenchmarkLogfileWriteSync: one record per Write, each followed by Sync,
// under FsyncAlways, from 1 and from 64 concurrent writers. Group commit
// shows as fsyncs/record well below 1 with many writers.
func BenchmarkLogfileWriteSync(b *testing.B) {
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			l, err := OpenLogfile(filepath.Join(b.TempDir(), "b.log"), FsyncAlways)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			rec := []Record{jobRec("bench.job.000001", 1764000000000000000, Planned)}
			per := (b.N + writers - 1) / writers
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			b.ResetTimer()
			for range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range per {
						if err := l.Write(rec); err != nil {
							errs <- err
							return
						}
						if err := l.Sync(); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			n := float64(per * writers)
			b.ReportMetric(n/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(l.fsyncs.Load())/n, "fsyncs/record")
		})
	}
}

// BenchmarkReplay replays a log of 100k job records.
func BenchmarkReplay(b *testing.B) {
	const records = 100_000
	path := filepath.Join(b.TempDir(), "r.log")
	l, err := OpenLogfile(path, FsyncNever)
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]Record, 0, 1000)
	for i := range records {
		batch = append(batch, jobRec(fmt.Sprintf("app.job.%08d", i), int64(i), Planned))
		if len(batch) == cap(batch) {
			if err := l.Write(batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fileSizeB(b, path))
	b.ResetTimer()
	for b.Loop() {
		j := NewJobs()
		res, err := Replay(path, func(r Record) error { j.Apply(r); return nil })
		if err != nil || res.Records != records {
			b.Fatalf("Replay = %+v, %v", res, err)
		}
	}
	b.ReportMetric(float64(records*b.N)/b.Elapsed().Seconds(), "records/s")
}

func fileSizeB(b *testing.B, path string) int64 {
	recs, res, err := ReadAll(path)
	if err != nil || len(recs) == 0 {
		b.Fatal(err)
	}
	return res.Bytes
}

var bigBench = flag.Bool("big", false, "run BenchmarkJobsMemory with 10M jobs too")

// BenchmarkJobsMemory reports the heap a job costs beyond its id's bytes,
// with every job planned (so in the due heap too). Ids are "job.%08d", 12
// bytes, which the store clones into 16-byte allocations; the 4 bytes of
// rounding count as overhead here.
func BenchmarkJobsMemory(b *testing.B) {
	for _, n := range []int{1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("%dM", n/1_000_000), func(b *testing.B) {
			if n > 1_000_000 && !*bigBench {
				b.Skip("takes minutes and ~3 GB; run with -big")
			}
			for b.Loop() {
				b.ReportMetric(jobsMemory(b, n), "bytes/job")
			}
		})
	}
}

func jobsMemory(b *testing.B, n int) float64 {
	ids := make([]string, n)
	idBytes := 0
	for i := range ids {
		ids[i] = fmt.Sprintf("job.%08d", i)
		idBytes += len(ids[i])
	}
	before := heapInUse()
	j := NewJobs()
	for i, id := range ids {
		j.Set(id, int64(i%86400)*1e9)
	}
	after := heapInUse()
	runtime.KeepAlive(j)
	runtime.KeepAlive(ids)
	return float64(after-before-uint64(idBytes)) / float64(n)
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkJobsSetPopDue: the scheduler's steady state with 100k planned
// jobs: each op SETs a job and triggers (and removes) the one now due.
func BenchmarkJobsSetPopDue(b *testing.B) {
	const planned = 100_000
	j := NewJobs()
	ids := make([]string, planned)
	for i := range ids {
		ids[i] = fmt.Sprintf("job.%08d", i)
		j.Set(ids[i], int64(i))
	}
	remove := func(job Job, _ uint64) { j.Remove(job.ID) }
	i := planned
	for b.Loop() {
		j.Set(ids[i%planned], int64(i))
		j.PopDue(int64(i-planned+1), 0, remove)
		i++
	}
	if j.Len() > planned+1 {
		b.Fatalf("store grew to %d jobs", j.Len())
	}
}
