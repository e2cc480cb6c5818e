package store

import (
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"syscall"
	"testing"
	"time"
)

// Store benchmarks of the performance issue's goals, against the public API
// only (so the same file measures any version of the store):
//
//	go test -run '^$' -bench 'Store' -benchmem ./store/
//	go test -run '^$' -bench 'Store(Memory|Boot)' -benchtime 1x ./store/ -big
//
// Ids are 24 bytes ("app.job.%016d"), the job shape.

func benchID(i int) string { return fmt.Sprintf("app.job.%016d", i) }

// BenchmarkStoreMemory: heap in use per planned job beyond its 24-byte id,
// after GC, and what a full GC costs with the store live (the collector's
// work grows with the pointers it must scan, not with the bytes).
func BenchmarkStoreMemory(b *testing.B) {
	for _, n := range []int{1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("%dM", n/1_000_000), func(b *testing.B) {
			if n > 1_000_000 && !*bigBench {
				b.Skip("takes a minute and ~2 GB; run with -big")
			}
			for b.Loop() {
				storeMemory(b, n)
			}
		})
	}
}

func storeMemory(b *testing.B, n int) {
	// The ids come from a single byte block so they are not themselves
	// objects the collector scans or counts per job.
	block := make([]byte, 0, 24*n)
	for i := range n {
		block = fmt.Appendf(block, "app.job.%016d", i)
	}
	idBytes := len(block)
	id := func(i int) string { return string(block[24*i : 24*i+24]) }
	before := heapInUse2()
	j := NewJobs()
	for i := range n {
		j.Set(id(i), int64(i%86400)*1e9)
	}
	after := heapInUse2()
	// Full collections with the store live: the stop-the-world pauses and
	// the wall time of a whole cycle.
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gcs := ms.NumGC
	start := time.Now()
	const cycles = 5
	for range cycles {
		runtime.GC()
	}
	cycle := time.Since(start) / cycles
	runtime.ReadMemStats(&ms)
	var worst uint64
	for k := gcs; k < ms.NumGC; k++ {
		worst = max(worst, ms.PauseNs[(k+255)%256])
	}
	runtime.KeepAlive(j)
	runtime.KeepAlive(block)
	b.ReportMetric(float64(int64(after)-int64(before)-int64(idBytes))/float64(n), "bytes/job")
	b.ReportMetric(float64(cycle.Microseconds())/1e3, "gc-ms")
	b.ReportMetric(float64(worst)/1e3, "gc-pause-µs")
}

// heapInUse2 is the heap's in-use spans after two collections (fragmentation
// and rounding count, unlike HeapAlloc).
func heapInUse2() uint64 {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// BenchmarkStoreUpsert: SET into a store of 1M planned jobs, half new ids
// (the store grows) and half re-SETs of existing ones (a heap fix).
func BenchmarkStoreUpsert(b *testing.B) {
	const base = 1_000_000
	ids := make([]string, base)
	for i := range ids {
		ids[i] = benchID(i)
	}
	for _, kind := range []string{"new", "reset"} {
		b.Run(kind, func(b *testing.B) {
			j := NewJobs()
			for i, id := range ids {
				j.Set(id, int64(i))
			}
			fresh := make([]string, 0, 1<<20)
			if kind == "new" {
				for i := range cap(fresh) {
					fresh = append(fresh, benchID(base+i))
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			defer threadCPU(b)()
			i := 0
			for b.Loop() {
				if kind == "new" {
					if i == len(fresh) {
						b.StopTimer()
						for _, id := range fresh {
							j.Remove(id)
						}
						i = 0
						b.StartTimer()
					}
					j.Set(fresh[i], int64(i*7919%base))
				} else {
					j.Set(ids[i%base], int64(i*7919%base))
				}
				i++
			}
		})
	}
}

// BenchmarkStorePopDue: trigger one due job from a store of 1M planned
// jobs, then plan it again later (so the store stays at 1M); the op is
// the pop plus the re-SET, as the tick of a busy scheduler does.
func BenchmarkStorePopDue(b *testing.B) {
	const base = 1_000_000
	j := NewJobs()
	for i := range base {
		j.Set(benchID(i), int64(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer threadCPU(b)()
	now := int64(0)
	var got Job
	for b.Loop() {
		j.PopDue(now, 1, func(job Job, _ uint64) { got = job })
		j.Set(got.ID, now+base)
		now++
	}
}

// BenchmarkStoreReplay: replay a log of 1M job records (24-byte ids) into
// an empty store: records/s per core. StoreBoot/5M, with -big, is a worker
// booting a 5M-job shard set: replay and ready.
// "apply" is Replay with Apply per record (any version of the store);
// "jobs" is ReplayJobs, what a worker's boot does.
func BenchmarkStoreReplay(b *testing.B) {
	b.Run("apply", func(b *testing.B) { benchReplay(b, 1_000_000, benchReplayApply) })
	b.Run("jobs", func(b *testing.B) { benchReplay(b, 1_000_000, benchReplayJobs) })
}

func BenchmarkStoreBoot(b *testing.B) {
	b.Run("5M", func(b *testing.B) {
		if !*bigBench {
			b.Skip("writes a 200 MB log; run with -big")
		}
		benchReplay(b, 5_000_000, benchReplayJobs)
	})
}

func benchReplayApply(path string, j *Jobs) (ReplayResult, error) {
	return Replay(path, func(r Record) error { j.Apply(r); return nil })
}

func benchReplayJobs(path string, j *Jobs) (ReplayResult, error) { return ReplayJobs(path, 0, j, true) }

func benchReplay(b *testing.B, records int, replay func(string, *Jobs) (ReplayResult, error)) {
	path := filepath.Join(b.TempDir(), "r.log")
	l, err := OpenLogfile(path, FsyncNever)
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]Record, 0, 4096)
	for i := range records {
		batch = append(batch, jobRec(benchID(i), int64(i%86400)*1e9, Planned))
		if len(batch) == cap(batch) || i == records-1 {
			if err := l.Write(batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	var times, cpus []time.Duration
	b.ResetTimer()
	for b.Loop() {
		runtime.GC()
		start, cpu0 := time.Now(), cpuTime()
		j := NewJobs()
		res, err := replay(path, j)
		if err != nil || res.Records != records || j.Len() != records {
			b.Fatalf("Replay = %+v, %v", res, err)
		}
		times = append(times, time.Since(start))
		cpus = append(cpus, cpuTime()-cpu0)
	}
	slices.Sort(times)
	slices.Sort(cpus)
	b.ReportMetric(float64(records)/times[0].Seconds(), "records/s")
	b.ReportMetric(float64(records)/cpus[0].Seconds(), "records/cpu-s")
	b.ReportMetric(times[0].Seconds(), "s/replay")
}

// cpuTime is the process's user+system CPU time so far (every thread: the
// collector's work on other cores counts).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// threadCPU pins the benchmark to its thread and returns a func that
// reports the thread's CPU time per op: on a machine shared with other
// work, wall time per op measures the machine's load as much as the code.
func threadCPU(b *testing.B) func() {
	runtime.LockOSThread()
	start := threadTime()
	return func() {
		b.ReportMetric(float64((threadTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		runtime.UnlockOSThread()
	}
}

func threadTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStoreServeGC: a store of n planned jobs serving a steady load
// (each op SETs a new job from a freshly decoded id, triggers the one now
// due and removes it, and allocates what decoding a request does), while
// the collector runs cycle after cycle. Reports the p99 and worst stop-the-world GC pause, the
// p99 op latency (mark assists show there), and the share of CPU the
// collector took.
func BenchmarkStoreServeGC(b *testing.B) {
	for _, n := range []int{1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("%dM", n/1_000_000), func(b *testing.B) {
			if n > 1_000_000 && !*bigBench {
				b.Skip("takes a minute and ~2 GB; run with -big")
			}
			j := NewJobs()
			for i := range n {
				j.Set(benchID(i), int64(i))
			}
			runtime.GC()
			samples := []metrics.Sample{{Name: "/sched/pauses/total/gc:seconds"},
				{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/cpu/classes/total:cpu-seconds"}}
			metrics.Read(samples)
			pauses0 := samples[0].Value.Float64Histogram()
			pause0 := slices.Clone(pauses0.Counts)
			gc0, total0 := samples[1].Value.Float64(), samples[2].Value.Float64()
			lat := make([]time.Duration, 0, 1<<20)
			var sink []byte
			// Collections back to back, so that every size sees many
			// cycles (a 10M store's heap would otherwise outgrow the run).
			stop, gcDone := make(chan struct{}), make(chan int)
			go func() {
				cycles := 0
				for {
					select {
					case <-stop:
						gcDone <- cycles
						return
					default:
						runtime.GC()
						cycles++
					}
				}
			}()
			b.ResetTimer()
			i := n
			for b.Loop() {
				start := time.Now()
				req := fmt.Appendf(make([]byte, 0, 64), "app.job.%016d", i) // a decoded request
				sink = make([]byte, 128)                                    // and its reply
				j.Set(string(req), int64(i))
				j.PopDue(int64(i-n), 1, func(job Job, _ uint64) { j.Remove(job.ID) })
				if len(lat) < cap(lat) {
					lat = append(lat, time.Since(start))
				}
				i++
			}
			b.StopTimer()
			close(stop)
			b.ReportMetric(float64(<-gcDone), "gc-cycles")
			runtime.KeepAlive(sink)
			metrics.Read(samples)
			h := samples[0].Value.Float64Histogram()
			counts := slices.Clone(h.Counts)
			for k := range pause0 {
				counts[k] -= pause0[k]
			}
			b.ReportMetric(histQuantile(h.Buckets, counts, 0.99)*1e6, "gc-pause-p99-µs")
			b.ReportMetric(histQuantile(h.Buckets, counts, 1)*1e6, "gc-pause-max-µs")
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "op-p99-µs")
			if dt := samples[2].Value.Float64() - total0; dt > 0 {
				b.ReportMetric(100*(samples[1].Value.Float64()-gc0)/dt, "gc-cpu-%")
			}
		})
	}
}

// histQuantile is the upper bound of the bucket holding quantile q of a
// runtime/metrics histogram's counts.
func histQuantile(buckets []float64, counts []uint64, q float64) float64 {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for k, c := range counts {
		seen += c
		if seen >= want {
			return buckets[k+1]
		}
	}
	return buckets[len(buckets)-1]
}

// BenchmarkStoreGrowGC: a store filled with n planned jobs while the
// collector runs cycle after cycle, as a worker's is while clients plan
// millions of jobs. Reports the p99 and worst GC pause and the worst time to
// stop the world: a long copy the scheduler cannot interrupt (growing a
// big slice with append) shows in the latter.
func BenchmarkStoreGrowGC(b *testing.B) {
	n := 5_000_000
	if !*bigBench {
		n = 1_000_000
	}
	names := []string{"/sched/pauses/total/gc:seconds", "/sched/pauses/stopping/gc:seconds"}
	for b.Loop() {
		samples := []metrics.Sample{{Name: names[0]}, {Name: names[1]}}
		metrics.Read(samples)
		before := [][]uint64{slices.Clone(samples[0].Value.Float64Histogram().Counts),
			slices.Clone(samples[1].Value.Float64Histogram().Counts)}
		stop, gcDone := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(gcDone)
			for {
				select {
				case <-stop:
					return
				default:
					runtime.GC()
				}
			}
		}()
		j := NewJobs()
		for i := range n {
			j.Set(benchID(i), int64(i))
		}
		close(stop)
		<-gcDone
		metrics.Read(samples)
		for k, unit := range []string{"gc-pause", "gc-stopping"} {
			h := samples[k].Value.Float64Histogram()
			counts := slices.Clone(h.Counts)
			for i := range before[k] {
				counts[i] -= before[k][i]
			}
			if k == 0 {
				b.ReportMetric(histQuantile(h.Buckets, counts, 0.99)*1e6, unit+"-p99-µs")
			}
			b.ReportMetric(histQuantile(h.Buckets, counts, 1)*1e6, unit+"-max-µs")
		}
	}
}
