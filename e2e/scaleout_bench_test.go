package e2e

// Benchmarks of the scale-out mode (they run only with -bench):
//
//	go test -run '^$' -bench ScaleOut -benchtime 1x -timeout 30m ./e2e/
//
// BenchmarkScaleOutSet: SET throughput through three hosts with R3 shard
// streams, as a ratio (x-single) to one host with fsync = "always" measured
// first in the same run; BenchmarkScaleOutTakeover: the takeover time
// distribution over TOCK_SCALEOUT_KILLS kills (default 10) of a host under
// probing.

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tockd/tock/bench"
)

// benchSingleFsyncAlways is the single-host fsync = "always" throughput
// measured earlier in this run.
var benchSingleFsyncAlways float64

// BenchmarkScaleOutSet measures the peer (one host, logfile, fsync =
// "always") and then the three-host cluster at the same load shape: 16
// connections of 64 pipelined SETs, spread over the hosts.
func BenchmarkScaleOutSet(b *testing.B) {
	const requests = 200_000
	b.Run("single-fsync-always", func(b *testing.B) {
		dir := b.TempDir()
		c := startClusterTB(b, dir, benchClusterConfig(dir, "persistence = \"logfile\"\nfsync = \"always\""))
		cfg := benchShape("set", 16, 64, requests)
		cfg.Addr = c.addr
		res := benchRunLoadCPU(b, cfg, c.logs, c.pids)
		benchSingleFsyncAlways = res.Throughput
	})
	b.Run("3hosts-R3", func(b *testing.B) {
		c := startScaleOut(b, "")
		cfg := benchShape("set", 16, 64, requests)
		warm := cfg
		warm.Requests, warm.Prefix = max(cfg.Requests/10, 1000), "warm."
		if _, err := c.benchSpread(warm); err != nil {
			b.Fatalf("warm-up: %v", err)
		}
		b.Run("c16xp64", func(b *testing.B) {
			var total, errs int64
			var wall, cpu time.Duration
			var rs []bench.Result
			for range b.N {
				pids := c.serverPIDs()
				cpu0 := benchCPU(pids)
				start := time.Now()
				res, err := c.benchSpread(cfg)
				wall += time.Since(start)
				cpu += benchCPU(pids) - cpu0
				if err != nil {
					b.Fatal(err)
				}
				rs = append(rs, res...)
				for _, r := range res {
					total += r.Requests
					errs += r.Errors
				}
			}
			m := bench.Merge(rs...)
			tput := float64(total) / wall.Seconds()
			b.ReportMetric(float64(wall.Nanoseconds())/float64(max(total, 1)), "ns/op")
			b.ReportMetric(tput, "req/s")
			b.ReportMetric(float64(m.P50)/1e3, "p50-µs")
			b.ReportMetric(float64(m.P99)/1e3, "p99-µs")
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(max(total, 1)), "server-µs/req")
			if benchSingleFsyncAlways > 0 {
				b.ReportMetric(tput/benchSingleFsyncAlways, "x-single")
			}
			if errs > 0 {
				b.Errorf("%d of %d requests failed", errs, total)
			}
		})
	})
}

// serverPIDs are every process of the cluster: the hosts' masters and
// workers and the nats-servers.
func (c *soClusterT) serverPIDs() []int {
	var pids []int
	for _, h := range c.liveHosts() {
		h.mu.Lock()
		pid := h.cmd.Process.Pid
		h.mu.Unlock()
		pids = append(pids, hostTree(pid)...)
	}
	for _, n := range c.nats.Nodes {
		if n.PID != 0 {
			pids = append(pids, n.PID)
		}
	}
	return pids
}

// benchSpread runs cfg split over the live hosts at once: cfg.Clients
// connections and cfg.Requests requests in all, each host its share under
// a prefix of its own.
func (c *soClusterT) benchSpread(cfg bench.Config) ([]bench.Result, error) {
	hosts := c.liveHosts()
	out := make([]bench.Result, len(hosts))
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		part := cfg
		part.Addr = h.client
		part.Clients = cfg.Clients / len(hosts)
		if i < cfg.Clients%len(hosts) {
			part.Clients++
		}
		part.Requests = cfg.Requests / len(hosts)
		part.Prefix = fmt.Sprintf("%s%s.", cfg.Prefix, h.name)
		if cfg.Prefix == "" {
			part.Prefix = fmt.Sprintf("bench.%s.", h.name)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), benchRunDeadline)
			defer cancel()
			out[i], errs[i] = bench.Run(ctx, part)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return out, fmt.Errorf("through %s: %w", hosts[i].name, err)
		}
	}
	return out, nil
}

// BenchmarkScaleOutTakeover kills each host in turn (TOCK_SCALEOUT_KILLS
// kills, default 10) while a prober per shard SETs every 10 ms through the
// other hosts, and reports the time until each of the victim's shards is
// served again: p50 and max over every shard of every kill. After each
// kill the victim restarts and the shards rebalance before the next one.
func BenchmarkScaleOutTakeover(b *testing.B) {
	kills := 10
	if v := os.Getenv("TOCK_SCALEOUT_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("TOCK_SCALEOUT_KILLS=%q: want a positive integer", v)
		}
		kills = n
	}
	c := startScaleOut(b, "")
	ld := newSoLoad(c.addrsExcept())
	ld.pipeline(1, 16, 500)
	ld.probe()
	stopped := false
	defer func() {
		if !stopped {
			ld.stop()
		}
	}()
	c.waitAcks(ld, 500, "load warm-up")
	var all, perKill []time.Duration
	for k := range kills {
		victim := c.hosts[k%len(c.hosts)]
		ld.tgt.set(c.addrsExcept(victim))
		ls, err := c.leases()
		if err != nil {
			b.Fatal(err)
		}
		shards := shardsOf(ls, victim.name)
		// Every prober has moved off the victim before it dies.
		moved := time.Now()
		waitForWhy(b, 30*time.Second, "probers off "+victim.name, func() (bool, string) {
			for s, p := range ld.probers {
				if _, ok := p.servedAfter(moved); !ok {
					return false, fmt.Sprintf("shard %d", s)
				}
			}
			return true, ""
		})
		at := c.kill(victim)
		waitForWhy(b, 90*time.Second, victim.name+"'s shards served again", func() (bool, string) {
			for _, s := range shards {
				if _, ok := ld.probers[s].servedAfter(at); !ok {
					return false, fmt.Sprintf("shard %d", s)
				}
			}
			return true, ""
		})
		var ds []time.Duration
		for _, s := range shards {
			d, _ := ld.probers[s].servedAfter(at)
			ds = append(ds, d)
		}
		p50, mx := durations(ds)
		b.Logf("kill %d of %s (%d shards): takeover p50 %s, max %s", k+1, victim.name, len(shards),
			p50.Round(time.Millisecond), mx.Round(time.Millisecond))
		all = append(all, ds...)
		perKill = append(perKill, mx)
		c.restart(victim)
		ld.tgt.set(c.addrsExcept())
		c.waitServing(120 * time.Second)
	}
	ld.stop()
	stopped = true
	p50, mx := durations(all)
	kp50, _ := durations(perKill)
	slices.Sort(perKill)
	b.ReportMetric(float64(p50.Milliseconds()), "takeover-p50-ms")
	b.ReportMetric(float64(mx.Milliseconds()), "takeover-max-ms")
	b.ReportMetric(float64(kp50.Milliseconds()), "per-kill-max-p50-ms")
	b.Logf("takeover over %d kills, %d shards: p50 %s, max %s; per kill max: %v", kills, len(all),
		p50.Round(time.Millisecond), mx.Round(time.Millisecond), perKill)
	c.verifyNoLoss("after the kills", ld.l)
}
