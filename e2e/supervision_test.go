package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func pidSet(t *testing.T, c *cluster) []int {
	p := workerPIDs(t, c.cmd.Process.Pid)
	slices.Sort(p)
	return p
}

// TestSupervision_KillWorker: kill -9 of a worker under load — replaced at
// the same index, no request failed, no connection closed, no acknowledged
// write lost (docs/operations.md).
func TestSupervision_KillWorker(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	before := pidSet(t, c)
	l := startLoad(t, c.addr, 6)
	l.waitRequests(500)
	syscall.Kill(before[0], syscall.SIGKILL)
	waitFor(t, 10*time.Second, "replacement worker", func() bool {
		now := pidSet(t, c)
		return len(now) == 2 && !slices.Contains(now, before[0])
	})
	l.waitRequests(500)
	l.stop()
	if !strings.Contains(c.logs.String(), "worker died, replacing it") {
		t.Fatal("no log line for the replacement")
	}
}

// TestSupervision_HungWorker: a SIGSTOPped worker misses its heartbeats and
// is killed and replaced after worker_timeout.
func TestSupervision_HungWorker(t *testing.T) {
	dir := t.TempDir()
	cfg := strings.Replace(clusterConfig(dir, ""), "[cluster]\n", "[cluster]\nworker_timeout = \"3s\"\n", 1)
	c := startCluster(t, dir, cfg)
	before := pidSet(t, c)
	start := time.Now()
	syscall.Kill(before[1], syscall.SIGSTOP)
	waitFor(t, 15*time.Second, "hung worker replaced", func() bool {
		now := pidSet(t, c)
		return len(now) == 2 && !slices.Contains(now, before[1])
	})
	t.Logf("hung worker replaced after %s", time.Since(start).Round(100*time.Millisecond))
	if !strings.Contains(c.logs.String(), "missed its heartbeats") {
		t.Fatal("no log line naming the missed heartbeats")
	}
	cl := dial(t, c.addr)
	cl.expect("r1 SET after.hang 0", "r1 OK")
}

// TestSupervision_PhasedRestart: SIGUSR1 under load replaces every worker,
// with zero errors and zero closed connections, and jobs due meanwhile fire
// exactly once.
func TestSupervision_PhasedRestart(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	out := filepath.Join(dir, "ran")
	cl.expect(fmt.Sprintf(`r1 RULE SET rule.pr pr. shell "echo $TOCK_JOB_ID >> %s"`, out), "r1 OK")
	for i := 0; i < 40; i++ {
		cl.expect(fmt.Sprintf("p%d SET pr.%d %s", i, i, nowPlus(time.Duration(i)*50*time.Millisecond)), fmt.Sprintf("p%d OK", i))
	}
	before := pidSet(t, c)
	l := startLoad(t, c.addr, 6)
	l.waitRequests(300)
	c.cmd.Process.Signal(syscall.SIGUSR1)
	waitFor(t, 60*time.Second, "phased restart done", func() bool {
		return strings.Contains(c.logs.String(), "phased restart done")
	})
	l.waitRequests(300)
	l.stop()
	waitFor(t, 30*time.Second, "old workers to exit", func() bool {
		after := pidSet(t, c)
		return len(after) == 2 && !slices.Contains(after, before[0]) && !slices.Contains(after, before[1])
	})
	for i := 0; i < 40; i++ {
		waitStatus(t, cl, fmt.Sprintf("pr.%d", i), "executed", 20*time.Second)
	}
	lines := readLines(out)
	seen := map[string]int{}
	for _, l := range lines {
		seen[l]++
	}
	for i := 0; i < 40; i++ {
		if n := seen[fmt.Sprintf("pr.%d", i)]; n != 1 {
			t.Errorf("pr.%d ran %d times", i, n)
		}
	}
}

// TestSupervision_PhasedRestartBadBinary: a phased restart onto a binary
// that cannot boot aborts; the old workers keep serving.
func TestSupervision_PhasedRestartBadBinary(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tock")
	copyFile(t, tockBin, bin)
	c := startClusterBin(t, dir, bin, clusterConfig(dir, ""))
	before := pidSet(t, c)
	// Deploy a broken binary in place (rename over, as a deploy would).
	broken := filepath.Join(dir, "tock.new")
	os.WriteFile(broken, []byte("#!/bin/sh\necho broken build >&2\nexit 1\n"), 0o755)
	if err := os.Rename(broken, bin); err != nil {
		t.Fatal(err)
	}
	c.cmd.Process.Signal(syscall.SIGUSR1)
	waitFor(t, 30*time.Second, "restart to abort", func() bool {
		return strings.Contains(c.logs.String(), "phased restart aborted")
	})
	if after := pidSet(t, c); !slices.Equal(after, before) {
		t.Fatalf("old workers changed: before %v after %v", before, after)
	}
	cl := dial(t, c.addr)
	cl.expect("r1 SET still.serving 0", "r1 OK")
	cl.expect("r2 GET unknown.job", "r2 ERROR not found")
}

// TestSupervision_Scale: SIGTTIN adds a worker, SIGTTOU removes one; every
// job stays readable and still fires.
func TestSupervision_Scale(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	out := filepath.Join(dir, "ran")
	cl.expect(fmt.Sprintf(`r1 RULE SET rule.sc sc. shell "echo $TOCK_JOB_ID >> %s"`, out), "r1 OK")
	writeJobs(t, cl, "scale", 300)
	l := startLoad(t, c.addr, 4)
	c.cmd.Process.Signal(syscall.SIGTTIN)
	waitFor(t, 30*time.Second, "3 workers", func() bool {
		return len(pidSet(t, c)) == 3 && strings.Contains(c.logs.String(), "scaled: workers=3")
	})
	cl.expect("r2 SET sc.three 0", "r2 OK")
	waitStatus(t, cl, "sc.three", "executed", 20*time.Second)
	c.cmd.Process.Signal(syscall.SIGTTOU)
	waitFor(t, 30*time.Second, "2 workers", func() bool {
		return len(pidSet(t, c)) == 2 && strings.Contains(c.logs.String(), "scaled: workers=2")
	})
	l.stop()
	checkJobs(t, cl, "scale", 300)
	cl.expect("r3 SET sc.two 0", "r3 OK")
	waitStatus(t, cl, "sc.two", "executed", 20*time.Second)
	if lines := readLines(out); strings.Join(lines, ",") != "sc.three,sc.two" {
		t.Fatalf("runs: %q", lines)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestSupervision_TwoPhasedRestarts: a second rollout in the same master
// moves every shard too (regression: slot and process shared a shard list).
func TestSupervision_TwoPhasedRestarts(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	writeJobs(t, cl, "two", 200)
	for round := 1; round <= 2; round++ {
		before := pidSet(t, c)
		c.cmd.Process.Signal(syscall.SIGUSR1)
		waitFor(t, 60*time.Second, "rollout done", func() bool {
			return strings.Count(c.logs.String(), "phased restart done") >= round
		})
		waitFor(t, 30*time.Second, "old workers gone", func() bool {
			now := pidSet(t, c)
			return len(now) == 2 && !slices.Contains(now, before[0]) && !slices.Contains(now, before[1])
		})
	}
	checkJobs(t, cl, "two", 200)
	cl.expect("r1 SET two.new 4102444800000000000", "r1 OK")
}

// TestSupervision_RestartDuringCrashBackoff: a rollout while a crashed
// worker waits for its replacement leaves exactly one process per slot
// (regression: two workers wrote the same shards).
func TestSupervision_RestartDuringCrashBackoff(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	writeJobs(t, cl, "bo", 200)
	// Crash worker slot repeatedly so its backoff grows, then roll out.
	for i := 0; i < 4; i++ {
		pids := pidSet(t, c)
		syscall.Kill(pids[0], syscall.SIGKILL)
		waitFor(t, 20*time.Second, "replacement", func() bool {
			now := pidSet(t, c)
			return len(now) == 2 && !slices.Contains(now, pids[0])
		})
	}
	syscall.Kill(pidSet(t, c)[0], syscall.SIGKILL)
	c.cmd.Process.Signal(syscall.SIGUSR1)
	waitFor(t, 60*time.Second, "rollout finished", func() bool {
		logs := c.logs.String()
		return strings.Contains(logs, "phased restart done") || strings.Contains(logs, "phased restart aborted")
	})
	waitFor(t, 60*time.Second, "two workers", func() bool { return len(pidSet(t, c)) == 2 })
	checkJobs(t, cl, "bo", 200)
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	c.start()
	cl = dial(t, c.addr)
	checkJobs(t, cl, "bo", 200)
}

// TestSupervision_PhasedRestartHungBinary: a new binary that never says
// hello is killed after worker_boot_timeout and the rollout aborts; the old
// workers keep serving.
func TestSupervision_PhasedRestartHungBinary(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tock")
	copyFile(t, tockBin, bin)
	cfg := strings.Replace(clusterConfig(dir, ""), `worker_boot_timeout = "20s"`, `worker_boot_timeout = "2s"`, 1)
	c := startClusterBin(t, dir, bin, cfg)
	before := pidSet(t, c)
	hung := filepath.Join(dir, "tock.new")
	os.WriteFile(hung, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755)
	if err := os.Rename(hung, bin); err != nil {
		t.Fatal(err)
	}
	c.cmd.Process.Signal(syscall.SIGUSR1)
	waitFor(t, 30*time.Second, "restart to abort", func() bool {
		return strings.Contains(c.logs.String(), "phased restart aborted")
	})
	if !strings.Contains(c.logs.String(), "no hello within the boot timeout") {
		t.Fatal("abort does not name the boot timeout")
	}
	waitFor(t, 10*time.Second, "hung worker killed", func() bool { return slices.Equal(pidSet(t, c), before) })
	cl := dial(t, c.addr)
	cl.expect("r1 SET still.serving 0", "r1 OK")
}

// openShardFiles maps each shard logfile to the pids that have it open.
func openShardFiles(t *testing.T, pids []int) map[string][]int {
	out := map[string][]int{}
	for _, pid := range pids {
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, e := range ents {
			target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
			if err == nil && strings.Contains(target, "/shards/") && strings.HasSuffix(target, ".log") {
				out[target] = append(out[target], pid)
			}
		}
	}
	return out
}

// TestSupervision_CrashDuringRollout: the new worker dies in the middle of
// a rollout; after the abort and a second rollout, every shard file is open
// in exactly one process and every job is still readable (regression: two
// workers owned the shards the aborted rollout had not moved).
func TestSupervision_CrashDuringRollout(t *testing.T) {
	dir := t.TempDir()
	cfg := strings.Replace(clusterConfig(dir, ""), "shards = 8", "shards = 128", 1)
	c := startCluster(t, dir, cfg)
	cl := dial(t, c.addr)
	writeJobs(t, cl, "cr", 300)
	before := pidSet(t, c)
	c.cmd.Process.Signal(syscall.SIGUSR1)
	waitFor(t, 30*time.Second, "first handoffs", func() bool {
		return strings.Count(c.logs.String(), "shards handed off") >= 5
	})
	for _, p := range pidSet(t, c) {
		if !slices.Contains(before, p) {
			syscall.Kill(p, syscall.SIGKILL) // the new phase's worker
		}
	}
	waitFor(t, 60*time.Second, "rollout to end", func() bool {
		l := c.logs.String()
		return strings.Contains(l, "phased restart aborted") || strings.Contains(l, "phased restart done")
	})
	t.Logf("first rollout aborted: %v", strings.Contains(c.logs.String(), "phased restart aborted"))
	checkJobs(t, cl, "cr", 300)
	c.cmd.Process.Signal(syscall.SIGUSR1)
	waitFor(t, 90*time.Second, "second rollout done", func() bool {
		return strings.Contains(c.logs.String(), "phased restart done")
	})
	waitFor(t, 60*time.Second, "one owner per shard file", func() bool {
		pids := pidSet(t, c)
		files := openShardFiles(t, pids)
		for _, owners := range files {
			if len(owners) != 1 {
				return false
			}
		}
		return len(pids) == 2 && len(files) == 128
	})
	checkJobs(t, cl, "cr", 300)
}
