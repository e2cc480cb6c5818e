package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// spanJobs sets n jobs due now under a shell rule and waits until every one
// has been triggered (its execution is running).
func spanJobs(t *testing.T, cl *client, prefix, shell string, n int) {
	t.Helper()
	cl.expect(fmt.Sprintf(`r1 RULE SET rule.%s %s. shell %q`, prefix, prefix, shell), "r1 OK")
	for i := 0; i < n; i++ {
		cl.expect(fmt.Sprintf("s%d SET %s.%d %s", i, prefix, i, nowPlus(0)), fmt.Sprintf("s%d OK", i))
	}
	for i := 0; i < n; i++ {
		waitStatus(t, cl, fmt.Sprintf("%s.%d", prefix, i), "triggered", 20*time.Second)
	}
}

// runCounts counts the lines of the ran file per job id.
func runCounts(path string) map[string]int {
	seen := map[string]int{}
	for _, l := range readLines(path) {
		seen[l]++
	}
	return seen
}

// TestHandoff_ExecutionSpansPhasedRestart: executions still running when
// their shard moves complete exactly once, and the new owner records their
// outcomes (regression: the draining worker exited without flushing its
// link, so the outcomes never arrived and the jobs stayed triggered).
func TestHandoff_ExecutionSpansPhasedRestart(t *testing.T) {
	dir := t.TempDir()
	// The old workers wait for their executions as long as the rollout
	// takes on a busy machine: none is cut short (which would run it again).
	cfg := strings.Replace(clusterConfig(dir, ""), `worker_shutdown_timeout = "10s"`, `worker_shutdown_timeout = "120s"`, 1)
	c := startCluster(t, dir, cfg)
	cl := dial(t, c.addr)
	ran := filepath.Join(dir, "ran")
	gate := filepath.Join(dir, "gate")
	if err := syscall.Mkfifo(gate, 0o600); err != nil {
		t.Fatal(err)
	}
	const n = 8
	// Each execution blocks reading the gate (a FIFO), opened once every
	// shard has moved: they all span the handoff, and all end together.
	spanJobs(t, cl, "sp", fmt.Sprintf("read x < %s; echo $TOCK_JOB_ID >> %s", gate, ran), n)
	before := pidSet(t, c)
	c.cmd.Process.Signal(syscall.SIGUSR1)
	waitFor(t, 60*time.Second, "phased restart done", func() bool {
		return strings.Contains(c.logs.String(), "phased restart done")
	})
	openGate(t, gate)
	waitFor(t, 30*time.Second, "old workers to exit", func() bool {
		after := pidSet(t, c)
		return len(after) == 2 && !slices.Contains(after, before[0]) && !slices.Contains(after, before[1])
	})
	for i := 0; i < n; i++ {
		waitStatus(t, cl, fmt.Sprintf("sp.%d", i), "executed", 20*time.Second)
	}
	seen := runCounts(ran)
	for i := 0; i < n; i++ {
		if k := seen[fmt.Sprintf("sp.%d", i)]; k != 1 {
			t.Errorf("sp.%d ran %d times, want 1", i, k)
		}
	}
	// A plain restart must not run them again: they are executed on disk.
	if err := c.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	c.start()
	cl = dial(t, c.addr)
	for i := 0; i < n; i++ {
		if got := cl.do(fmt.Sprintf("g GET sp.%d", i)); !strings.HasPrefix(got, "g OK executed ") {
			t.Errorf("after a restart sp.%d is %q, want executed", i, got)
		}
	}
}

// TestHandoff_DrainingWorkerDies: the old worker is killed while executions
// that span the handoff still run in it; they run again at the shard's new
// owner (at-least-once, as after a crash) and end executed (regression: the
// new owner waited for their outcomes for ever and they stayed triggered).
func TestHandoff_DrainingWorkerDies(t *testing.T) {
	dir := t.TempDir()
	cfg := strings.Replace(clusterConfig(dir, ""), `worker_shutdown_timeout = "10s"`, `worker_shutdown_timeout = "120s"`, 1)
	c := startCluster(t, dir, cfg)
	cl := dial(t, c.addr)
	ran := filepath.Join(dir, "ran")
	const n = 8
	// The first run of each job blocks (until its worker is killed); the
	// second finishes at once.
	shell := fmt.Sprintf(`echo $TOCK_JOB_ID >> %[1]s; if [ $(grep -c "^$TOCK_JOB_ID$" %[1]s) -lt 2 ]; then sleep 600; fi`, ran)
	spanJobs(t, cl, "dd", shell, n)
	waitFor(t, 20*time.Second, "every first run started", func() bool { return len(readLines(ran)) == n })
	before := pidSet(t, c)
	c.cmd.Process.Signal(syscall.SIGUSR1)
	waitFor(t, 60*time.Second, "phased restart done", func() bool {
		return strings.Contains(c.logs.String(), "phased restart done")
	})
	for _, p := range before {
		syscall.Kill(p, syscall.SIGKILL)
	}
	for i := 0; i < n; i++ {
		waitStatus(t, cl, fmt.Sprintf("dd.%d", i), "executed", 30*time.Second)
	}
	seen := runCounts(ran)
	for i := 0; i < n; i++ {
		if k := seen[fmt.Sprintf("dd.%d", i)]; k != 2 {
			t.Errorf("dd.%d ran %d times, want 2 (once in the killed worker, once after)", i, k)
		}
	}
}

// openGate lets every execution blocked reading the FIFO at path go on,
// and every later one too: it keeps the FIFO open and full of lines, one
// per read, until the test ends.
func openGate(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0) // O_RDWR: does not wait for a reader
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.Write([]byte(strings.Repeat("\n", 4096))); err != nil {
		t.Fatal(err)
	}
}

// TestFencing_SecondMasterWithoutSocket: with control.sock removed, a second
// tock serve on the same data dir still refuses to start (the data dir is
// locked), touches none of the first's files, and the first's stop leaves
// nothing of a second behind (regression: the second started on the same
// shard files, and the first's stop deleted its socket and pid file).
func TestFencing_SecondMasterWithoutSocket(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	writeJobs(t, cl, "fm", 20)
	if err := os.Remove(controlSocket(dir)); err != nil {
		t.Fatal(err)
	}
	second := exec.Command(tockBin, "serve", "-c", c.cfgPath)
	second.Dir = dir
	out := &syncBuffer{}
	second.Stdout, second.Stderr = out, out
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- second.Wait() }()
	select {
	case err := <-exited:
		if err == nil || !strings.Contains(out.String(), "is in use") {
			t.Fatalf("second tock: %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		second.Process.Kill()
		<-exited
		t.Fatalf("second tock on a locked data dir kept running\n%s", out.String())
	}
	if _, err := os.Stat(controlSocket(dir)); err == nil {
		t.Fatal("the refused tock created a control socket")
	}
	pid, err := os.ReadFile(filepath.Join(dir, "data", "tock.pid"))
	if err != nil || strings.TrimSpace(string(pid)) != fmt.Sprint(c.cmd.Process.Pid) {
		t.Fatalf("pid file %q (%v), want the first master's %d", pid, err, c.cmd.Process.Pid)
	}
	checkJobs(t, cl, "fm", 20)
}
