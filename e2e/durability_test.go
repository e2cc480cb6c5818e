package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// writeJobs SETs n jobs (pipelined) and returns once all are acknowledged.
func writeJobs(t *testing.T, cl *client, prefix string, n int) {
	t.Helper()
	var lines []string
	for i := 0; i < n; i++ {
		lines = append(lines, fmt.Sprintf("w%d SET %s.%d %d", i, prefix, i, 4102444800000000000+int64(i)))
	}
	cl.send(lines...)
	for i := 0; i < n; i++ {
		if got, want := cl.line(), fmt.Sprintf("w%d OK", i); got != want {
			t.Fatalf("SET %d: got %q, want %q", i, got, want)
		}
	}
}

func checkJobs(t *testing.T, cl *client, prefix string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		want := fmt.Sprintf("g%d OK planned %d", i, 4102444800000000000+int64(i))
		if got := cl.do(fmt.Sprintf("g%d GET %s.%d", i, prefix, i)); got != want {
			t.Fatalf("after restart, job %d: got %q, want %q", i, got, want)
		}
	}
}

// TestDurability_SIGTERM: a graceful stop exits 0 with no process left, and
// every acknowledged write is there on the next start.
func TestDurability_SIGTERM(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	writeJobs(t, cl, "term", 500)
	cl.expect(`r1 RULE SET rule.term term. shell "true"`, "r1 OK")
	cl.expect("r2 REMOVE term.0", "r2 OK")
	pid := c.cmd.Process.Pid
	if err := c.stop(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if left := workerPIDs(t, pid); len(left) != 0 {
		t.Fatalf("workers left after stop: %v", left)
	}
	c.start()
	cl = dial(t, c.addr)
	cl.expect("g0 GET term.0", "g0 ERROR not found")
	for i := 1; i < 500; i++ {
		want := fmt.Sprintf("g%d OK planned %d", i, 4102444800000000000+int64(i))
		if got := cl.do(fmt.Sprintf("g%d GET term.%d", i, i)); got != want {
			t.Fatalf("job %d: got %q, want %q", i, got, want)
		}
	}
	body, _ := cl.list("l", "l LISTRULES")
	if len(body) != 1 || body[0] != "l rule.term term. shell true" {
		t.Fatalf("rules after restart: %q", body)
	}
}

// TestDurability_KillEverything: kill -9 of the master and every worker
// loses no acknowledged write (fsync = always).
func TestDurability_KillEverything(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	writeJobs(t, cl, "kill", 2000)
	pid := c.cmd.Process.Pid
	workers := workerPIDs(t, pid)
	if len(workers) != 2 {
		t.Fatalf("want 2 workers, got %v", workers)
	}
	for _, w := range workers {
		syscall.Kill(w, syscall.SIGKILL)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	<-c.exited
	waitFor(t, 5*time.Second, "workers gone", func() bool {
		for _, w := range workers {
			if syscall.Kill(w, 0) == nil {
				if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", w)); err == nil && !isZombie(string(b)) {
					return false
				}
			}
		}
		return true
	})
	c.start()
	cl = dial(t, c.addr)
	checkJobs(t, cl, "kill", 2000)
}

// TestDurability_MasterDeathStopsWorkers: kill -9 of the master leaves no
// worker after 2 s (docs/operations.md).
func TestDurability_MasterDeathStopsWorkers(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	pid := c.cmd.Process.Pid
	workers := workerPIDs(t, pid)
	syscall.Kill(pid, syscall.SIGKILL)
	<-c.exited
	waitFor(t, 2*time.Second, "workers to exit after the master died", func() bool {
		for _, w := range workers {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", w)); err == nil && !isZombie(string(b)) {
				return false
			}
		}
		return true
	})
}

// TestDurability_ShardCountFixed: a different cluster.shards than the data
// dir's MANIFEST is a clear startup error.
func TestDurability_ShardCountFixed(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	cfg := clusterConfig(dir, "")
	cfg = replaceOnce(cfg, "shards = 8", "shards = 4")
	path := filepath.Join(dir, "tock.toml")
	os.WriteFile(path, []byte(cfg), 0o644)
	out, err := runTock(t, "serve", "-c", path)
	if err == nil {
		t.Fatalf("serve with another shard count succeeded:\n%s", out)
	}
	if !contains(out, "created with 8 shards") {
		t.Fatalf("error does not explain the shard count:\n%s", out)
	}
}
