package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLifecycle_RestartMaster: SIGUSR2 re-executes the master on the same
// listening socket: an open connection gets its in-flight replies and is
// closed; new connections are accepted by the new master; data survives.
func TestLifecycle_RestartMaster(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	writeJobs(t, cl, "usr2", 200)
	before := pidSet(t, c)
	c.cmd.Process.Signal(syscall.SIGUSR2)
	ready := regexp.MustCompile(`tock is ready`)
	waitFor(t, 60*time.Second, "second master ready", func() bool {
		return len(ready.FindAllString(c.logs.String(), -1)) >= 2
	})
	// The old connection was closed after its replies.
	cl.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := cl.r.ReadString('\n'); err == nil {
		t.Fatal("old connection still open after the master restart")
	}
	cl = dial(t, c.addr)
	checkJobs(t, cl, "usr2", 200)
	after := pidSet(t, c)
	for _, p := range after {
		for _, q := range before {
			if p == q {
				t.Fatalf("worker %d survived the master restart", p)
			}
		}
	}
}

// TestLifecycle_Halt: SIGQUIT exits at once; nothing acknowledged is lost.
func TestLifecycle_Halt(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	writeJobs(t, cl, "halt", 300)
	pid := c.cmd.Process.Pid
	c.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after SIGQUIT")
	}
	if c.exitErr != nil {
		t.Fatalf("halt exit: %v", c.exitErr)
	}
	waitFor(t, 3*time.Second, "workers gone", func() bool { return len(workerPIDs(t, pid)) == 0 })
	c.start()
	cl = dial(t, c.addr)
	checkJobs(t, cl, "halt", 300)
}

// TestLifecycle_LogReopen: SIGHUP reopens log.file, so a rotated file is
// replaced by a new one that gets the following lines.
func TestLifecycle_LogReopen(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "tock.log")
	cfg := strings.Replace(clusterConfig(dir, ""), "[log]\n", "[log]\nfile = \""+logPath+"\"\n", 1)
	path := filepath.Join(dir, "tock.toml")
	os.WriteFile(path, []byte(cfg), 0o644)
	c := &cluster{t: t, dir: dir, cfgPath: path, bin: tockBin}
	c.logs = &syncBuffer{}
	// Readiness comes from the log file, not stderr.
	c.startWith(func() string { b, _ := os.ReadFile(logPath); return string(b) })
	t.Cleanup(c.cleanup)
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	c.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "new log file", func() bool {
		b, err := os.ReadFile(logPath)
		return err == nil && strings.Contains(string(b), "log file reopened")
	})
	cl := dial(t, c.addr)
	cl.expect("r1 SET after.hup 0", "r1 OK")
}
