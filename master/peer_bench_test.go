package master

import (
	"bufio"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkPeer_SET compares pipelined SETs through one host whose shards
// are its own (direct) with the same through a host that forwards every
// one to another host's master (forwarded), both masters and their fake
// workers in this process. cpu-ns/op is the process's CPU time (user +
// system) per SET, so the forwarded figure includes both masters' work.
//
//	go test -run '^$' -bench BenchmarkPeer_SET -benchtime 200000x ./master/
func BenchmarkPeer_SET(b *testing.B) {
	for _, mode := range []string{"direct", "forwarded"} {
		b.Run(mode, func(b *testing.B) {
			h1, h2 := startTestHost(b, "h1", nil), startTestHost(b, "h2", nil)
			if mode == "forwarded" {
				h1.route(h2, 0, 1, 2, 3)
				for s := 0; s < testShards; s++ {
					if !waitReady(h1, s) {
						b.Fatal("link to h2 not up")
					}
				}
			}
			keys := make([]string, 4096)
			for i := range keys {
				keys[i] = fmt.Sprintf("bench.%d", i)
			}
			c := h1.dial()
			c.c.SetDeadline(time.Time{})
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU(b)
			start := time.Now()
			errs := make(chan error, 1)
			go func() {
				w := bufio.NewWriterSize(c.c, 64<<10)
				for i := 0; i < b.N; i++ {
					fmt.Fprintf(w, "r SET %s %d\n", keys[i%len(keys)], 1893456000000000000+i)
				}
				errs <- w.Flush()
			}()
			for i := 0; i < b.N; i++ {
				l, err := c.r.ReadString('\n')
				if err != nil {
					b.Fatal(err)
				}
				if l != "r OK\n" {
					b.Fatalf("reply %d: %q", i, strings.TrimSpace(l))
				}
			}
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "sets/s")
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU is this process's user + system CPU time so far, in ns.
func processCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
