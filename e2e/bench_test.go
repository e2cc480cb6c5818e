package e2e

// Throughput benchmarks of tock, side by side in one run: the echo
// ceiling, redis ZADD (when redis-server is installed), and the cluster.
// They run only with -bench, e.g.
//
//	go test -run '^$' -bench . -benchtime 1x ./e2e/
//
// Each benchmark starts its server once and runs a fixed number of requests
// per iteration (-tock.requests overrides the per-benchmark count). ns/op is
// per request; req/s and the latency percentiles come from bench.Result;
// x-echo (and x-redis, x-redis-aof) are throughput ratios against the
// baselines measured earlier in the same run, reported only when those ran.

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tockd/tock/bench"
)

var benchRequests = flag.Int("tock.requests", 0, "requests per benchmark iteration (0 = each benchmark's default)")

// Throughputs measured earlier in this run, for the ratio metrics: the echo
// server's by load shape ("c16xp64"), redis's at c16xp64.
var (
	benchBaseMu       sync.Mutex
	benchBaseEcho     = map[string]float64{}
	benchBaseRedis    float64
	benchBaseRedisAOF float64
	// redis with appendfsync always, and tock with persistence = memory:
	// the peers of tock's fsync = always.
	benchBaseRedisAlways float64
	benchBaseTockMemory  float64
	benchRunDeadline     = 5 * time.Minute // one bench.Run, at most
)

func benchRequestsOr(n int) int {
	if *benchRequests > 0 {
		return *benchRequests
	}
	return n
}

// benchClusterConfig is clusterConfig's cluster with the given [database]
// keys, at log level info (debug logs every connection) and with the
// default 16 shards.
func benchClusterConfig(dir, database string) string {
	return fmt.Sprintf(`[log]
level = "info"
[controller]
listen = "127.0.0.1:0"
[database]
data_dir = %q
%s
[cluster]
workers = 2
shards = 16
worker_check_interval = "200ms"
worker_boot_timeout = "20s"
worker_shutdown_timeout = "10s"
[http]
listen = ""
`, filepath.Join(dir, "data"), database)
}

// benchLogTail keeps the first and the last 64 KiB of a process's output, and
// the warning and error lines, so a long benchmark cannot grow it without
// bound.
type benchLogTail struct {
	mu       sync.Mutex
	head     bytes.Buffer
	tail     []byte
	partial  []byte
	problems []string
	nprob    int
}

const benchLogKeep = 64 << 10

func (l *benchLogTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := benchLogKeep - l.head.Len(); room > 0 {
		l.head.Write(p[:min(room, len(p))])
	}
	l.tail = append(l.tail, p...)
	if len(l.tail) > 2*benchLogKeep {
		l.tail = append(l.tail[:0], l.tail[len(l.tail)-benchLogKeep:]...)
	}
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		if strings.Contains(line, "[WARN]") || strings.Contains(line, "[ERROR]") {
			l.nprob++
			if len(l.problems) < 20 {
				l.problems = append(l.problems, line)
			}
		}
	}
	if len(l.partial) > benchLogKeep {
		l.partial = l.partial[:0]
	}
	return len(p), nil
}

func (l *benchLogTail) headString() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head.String()
}

func (l *benchLogTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.tail
	if len(t) > benchLogKeep {
		t = t[len(t)-benchLogKeep:]
	}
	return l.head.String() + "\n...\n" + string(t)
}

// problemLines returns the WARN and ERROR lines seen so far (the first 20)
// and their count.
func (l *benchLogTail) problemLines() ([]string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.problems...), l.nprob
}

// benchCluster is one `tock serve` for benchmarks.
type benchCluster struct {
	addr string
	logs *benchLogTail
	pid  int // the master's
}

// pids are the cluster's server processes: the master and its workers.
func (c *benchCluster) pids() []int { return append([]int{c.pid}, benchChildPIDs(c.pid)...) }

// benchCPU is the user+system CPU time so far of the processes pids (every
// thread of each), from /proc/<pid>/stat; a process that is gone counts 0.
func benchCPU(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		var ut, st int64
		fmt.Sscan(f[11], &ut) // utime, field 14 of stat
		fmt.Sscan(f[12], &st) // stime, field 15
		ticks += ut + st
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ is 100 on Linux
}

// startClusterTB is startCluster for any testing.TB: it writes cfg (see
// benchClusterConfig) to dir/tock.toml, starts the binary, waits for
// `tock is ready: listen=ADDR` and stops the cluster (SIGTERM, then SIGKILL
// of the master and its workers) in tb's cleanup.
func startClusterTB(tb testing.TB, dir, cfg string) *benchCluster {
	tb.Helper()
	path := filepath.Join(dir, "tock.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		tb.Fatal(err)
	}
	logs := &benchLogTail{}
	cmd := exec.Command(tockBin, "serve", "-c", path)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() {
		exitErr = cmd.Wait()
		close(exited)
	}()
	tb.Cleanup(func() {
		pid := cmd.Process.Pid
		workers := benchChildPIDs(pid)
		select {
		case <-exited:
		default:
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		}
		for _, w := range append(workers, benchChildPIDs(pid)...) {
			syscall.Kill(w, syscall.SIGKILL) // a leftover worker; ESRCH when gone
		}
		if tb.Failed() {
			tb.Logf("tock logs:\n%s", tail(logs.String(), 100))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			tb.Fatalf("tock exited at start: %v\n%s", exitErr, logs.String())
		default:
		}
		if m := readyRE.FindStringSubmatch(logs.headString()); m != nil {
			return &benchCluster{addr: m[1], logs: logs, pid: cmd.Process.Pid}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("tock not ready after 60s\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond) // polling the log for the ready line
	}
}

// benchChildPIDs lists the live processes whose parent is pid.
func benchChildPIDs(pid int) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var p int
		if _, err := fmt.Sscanf(e.Name(), "%d", &p); err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil || isZombie(string(b)) {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		var ppid int
		if len(f) > 1 {
			fmt.Sscanf(f[1], "%d", &ppid)
		}
		if ppid == pid {
			pids = append(pids, p)
		}
	}
	return pids
}

// benchRunLoad runs cfg as the sub-benchmark c<C>xp<P>, after a warm-up of a
// tenth of the requests, and reports the metrics, with throughput ratios
// against the baselines named in vs: "echo" (x-echo, the echo server at the
// same shape), "redis" (x-redis) and "redis-aof" (x-redis-aof). logs, when set, is the server's output: its warnings and
// errors are logged.
func benchRunLoad(b *testing.B, cfg bench.Config, logs *benchLogTail, vs ...string) bench.Result {
	b.Helper()
	return benchRunLoadCPU(b, cfg, logs, nil, vs...)
}

// benchRunLoadCPU is benchRunLoad that also reports server-µs/req: the CPU
// time (user+system, all threads) the server processes listed by pids used
// during the measured runs, per request. It is the figure a busy machine
// disturbs least. vs may also name "redis-always" (x-redis-always) and
// "memory" (x-memory, tock with persistence = memory).
func benchRunLoadCPU(b *testing.B, cfg bench.Config, logs *benchLogTail, pids func() []int, vs ...string) bench.Result {
	b.Helper()
	warm := cfg
	warm.Requests = max(cfg.Requests/10, 1000)
	warm.Prefix = "warm."
	ctx, cancel := context.WithTimeout(context.Background(), benchRunDeadline)
	defer cancel()
	if res, err := bench.Run(ctx, warm); err != nil {
		b.Fatalf("warm-up: %v\n%s", err, res)
	}
	var merged bench.Result
	name := fmt.Sprintf("c%dxp%d", cfg.Clients, cfg.Pipeline)
	b.Run(name, func(b *testing.B) {
		var rs []bench.Result
		var cpu time.Duration
		for range b.N {
			var ps []int
			var cpu0 time.Duration
			if pids != nil {
				ps = pids()
				cpu0 = benchCPU(ps)
			}
			ctx, cancel := context.WithTimeout(context.Background(), benchRunDeadline)
			res, err := bench.Run(ctx, cfg)
			cancel()
			if pids != nil {
				cpu += benchCPU(ps) - cpu0
			}
			if err != nil {
				b.Fatalf("%v\n%s", err, res)
			}
			rs = append(rs, res)
		}
		m := bench.Merge(rs...)
		merged = m
		b.ReportMetric(float64(m.Duration.Nanoseconds())/float64(max(m.Requests, 1)), "ns/op")
		b.ReportMetric(m.Throughput, "req/s")
		b.ReportMetric(float64(m.P50)/1e3, "p50-µs")
		b.ReportMetric(float64(m.P99)/1e3, "p99-µs")
		b.ReportMetric(float64(m.Max)/1e3, "max-µs")
		if pids != nil && m.Requests > 0 {
			b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(m.Requests), "server-µs/req")
		}
		if m.Errors > 0 {
			b.ReportMetric(float64(m.Errors), "errors")
		}
		benchBaseMu.Lock()
		for _, v := range vs {
			switch e := benchBaseEcho[name]; {
			case v == "echo" && e > 0:
				b.ReportMetric(m.Throughput/e, "x-echo")
			case v == "redis" && benchBaseRedis > 0:
				b.ReportMetric(m.Throughput/benchBaseRedis, "x-redis")
			case v == "redis-aof" && benchBaseRedisAOF > 0:
				b.ReportMetric(m.Throughput/benchBaseRedisAOF, "x-redis-aof")
			case v == "redis-always" && benchBaseRedisAlways > 0:
				b.ReportMetric(m.Throughput/benchBaseRedisAlways, "x-redis-always")
			case v == "memory" && benchBaseTockMemory > 0:
				b.ReportMetric(m.Throughput/benchBaseTockMemory, "x-memory")
			}
		}
		benchBaseMu.Unlock()
		b.Logf("\n%s", m)
		if logs != nil {
			if lines, n := logs.problemLines(); n > 0 {
				b.Logf("server logged %d warnings/errors, first:\n%s", n, strings.Join(lines, "\n"))
			}
		}
		if m.Errors > 0 {
			b.Errorf("%d of %d requests failed: %q", m.Errors, m.Requests, m.ErrorSamples)
		}
	})
	return merged
}

func benchShape(op string, clients, pipeline, requests int) bench.Config {
	return bench.Config{Clients: clients, Pipeline: pipeline, Requests: benchRequestsOr(requests), Op: op,
		Timeout: 30 * time.Second}
}

// BenchmarkEchoBaseline is the ceiling: bench's pipelined echo server,
// which answers every line `<rid> OK` and does nothing else, at each load
// shape the cluster benchmarks use.
func BenchmarkEchoBaseline(b *testing.B) {
	addr, stop, err := bench.ServeEcho(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	for _, cfg := range []bench.Config{
		benchShape("set", 16, 64, 2_000_000),
		benchShape("set", 16, 1, 200_000),
		benchShape("set", 1, 1, 50_000),
	} {
		cfg.Addr = addr
		res := benchRunLoad(b, cfg, nil)
		benchBaseMu.Lock()
		benchBaseEcho[fmt.Sprintf("c%dxp%d", cfg.Clients, cfg.Pipeline)] = res.Throughput
		benchBaseMu.Unlock()
	}
}

// benchRedisServer finds redis-server on PATH or in /usr/bin.
func benchRedisServer() string {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/redis-server"); err == nil {
		return "/usr/bin/redis-server"
	}
	return ""
}

// benchStartRedis runs redis-server on a free loopback port with args and waits
// until it answers PING.
func benchStartRedis(b *testing.B, bin string, args ...string) (addr string, pid int) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := b.TempDir()
	logs := &benchLogTail{}
	base := []string{"--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--dir", dir, "--save", "",
		"--daemonize", "no", "--protected-mode", "no", "--loglevel", "warning"}
	cmd := exec.Command(bin, append(base, args...)...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte("PING\r\n"))
			l, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if l == "+PONG\r\n" {
				return addr, cmd.Process.Pid
			}
		}
		select {
		case <-exited:
			b.Fatalf("redis-server exited at start:\n%s", logs)
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("redis-server not answering after 20s:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond) // polling for the port
	}
}

// BenchmarkRedisZADD drives redis-server with the same load shape: ZADD of
// a far-future score and a new member to one sorted set (what a redis-based
// scheduler does for SET), without persistence and with AOF everysec.
func BenchmarkRedisZADD(b *testing.B) {
	bin := benchRedisServer()
	if bin == "" {
		b.Skip("redis-server not installed")
	}
	for _, v := range []struct {
		name string
		args []string
		base *float64
	}{
		{"noaof", []string{"--appendonly", "no"}, &benchBaseRedis},
		{"aof-everysec", []string{"--appendonly", "yes", "--appendfsync", "everysec"}, &benchBaseRedisAOF},
		{"aof-always", []string{"--appendonly", "yes", "--appendfsync", "always"}, &benchBaseRedisAlways},
	} {
		b.Run(v.name, func(b *testing.B) {
			cfg := benchShape("set", 16, 64, 500_000)
			addr, pid := benchStartRedis(b, bin, v.args...)
			cfg.Addr = addr
			cfg.Protocol = "resp"
			res := benchRunLoadCPU(b, cfg, nil, func() []int { return []int{pid} }, "echo")
			benchBaseMu.Lock()
			*v.base = res.Throughput
			benchBaseMu.Unlock()
		})
	}
}

// BenchmarkClusterSetMemory: SET with persistence = memory (target §12:
// ≥ 0.30× echo, ≥ 2× redis ZADD).
func BenchmarkClusterSetMemory(b *testing.B) {
	dir := b.TempDir()
	c := startClusterTB(b, dir, benchClusterConfig(dir, `persistence = "memory"`))
	cfg := benchShape("set", 16, 64, 500_000)
	cfg.Addr = c.addr
	res := benchRunLoadCPU(b, cfg, c.logs, c.pids, "echo", "redis")
	benchBaseMu.Lock()
	benchBaseTockMemory = res.Throughput
	benchBaseMu.Unlock()
}

// BenchmarkClusterSetFsyncAlways: SET on the logfile, acknowledged after
// fsync (group commit; target §12: ≥ redis with AOF everysec).
func BenchmarkClusterSetFsyncAlways(b *testing.B) {
	dir := b.TempDir()
	c := startClusterTB(b, dir, benchClusterConfig(dir, "persistence = \"logfile\"\nfsync = \"always\""))
	cfg := benchShape("set", 16, 64, 200_000)
	cfg.Addr = c.addr
	benchRunLoadCPU(b, cfg, c.logs, c.pids, "echo", "redis-aof", "redis-always", "memory")
}

// BenchmarkClusterSetNoPipeline: 16 connections, one request in flight each
// (target §12: ≥ 0.45× echo), memory persistence.
func BenchmarkClusterSetNoPipeline(b *testing.B) {
	dir := b.TempDir()
	c := startClusterTB(b, dir, benchClusterConfig(dir, `persistence = "memory"`))
	cfg := benchShape("set", 16, 1, 100_000)
	cfg.Addr = c.addr
	benchRunLoadCPU(b, cfg, c.logs, c.pids, "echo")
}

// BenchmarkClusterSetSerial: one connection, one request at a time (target
// §12: p50 ≤ 130 µs), memory persistence.
func BenchmarkClusterSetSerial(b *testing.B) {
	dir := b.TempDir()
	c := startClusterTB(b, dir, benchClusterConfig(dir, `persistence = "memory"`))
	cfg := benchShape("set", 1, 1, 20_000)
	cfg.Addr = c.addr
	benchRunLoadCPU(b, cfg, c.logs, c.pids, "echo")
}

// BenchmarkClusterGet: GET of jobs that exist (a SET pass plans the whole
// key space first), memory persistence.
func BenchmarkClusterGet(b *testing.B) {
	dir := b.TempDir()
	c := startClusterTB(b, dir, benchClusterConfig(dir, `persistence = "memory"`))
	cfg := benchShape("get", 16, 64, 500_000)
	cfg.Addr = c.addr
	cfg.KeySpace = 100_000
	fill := cfg
	fill.Op, fill.Requests = "set", cfg.KeySpace
	ctx, cancel := context.WithTimeout(context.Background(), benchRunDeadline)
	defer cancel()
	if res, err := bench.Run(ctx, fill); err != nil || res.Errors > 0 {
		b.Fatalf("planning the key space: %v\n%s", err, res)
	}
	res := benchRunLoadCPU(b, cfg, c.logs, c.pids, "echo")
	if res.NotFound > 0 {
		b.Errorf("%d GETs of planned jobs answered not found", res.NotFound)
	}
}
