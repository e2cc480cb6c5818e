package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nowPlus is a SET timestamp d from now.
func nowPlus(d time.Duration) string { return fmt.Sprint(time.Now().Add(d).UnixNano()) }

// waitStatus polls GET until the job has status st.
func waitStatus(t *testing.T, cl *client, job, st string, d time.Duration) {
	t.Helper()
	last := ""
	waitFor(t, d, job+" to be "+st+" (last: "+last+")", func() bool {
		last = cl.do("w GET " + job)
		return strings.HasPrefix(last, "w OK "+st+" ")
	})
}

func readLines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// TestSchedule_ShellRunsOnce: a shell rule that appends $TOCK_JOB_ID to a
// file runs exactly once for a job due in one second (docs/protocol.md).
func TestSchedule_ShellRunsOnce(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	out := filepath.Join(dir, "ran")
	cl.expect(fmt.Sprintf(`r1 RULE SET rule.sched sched. shell "echo $TOCK_JOB_ID $TOCK_RULE_ID $TOCK_JOB_EXECUTION >> %s"`, out), "r1 OK")
	at := nowPlus(time.Second)
	cl.expect("r2 SET sched.once "+at, "r2 OK")
	cl.expect("r3 GET sched.once", "r3 OK planned "+at)
	waitStatus(t, cl, "sched.once", "executed", 20*time.Second)
	// A job in the past fires at once.
	cl.expect("r4 SET sched.past 0", "r4 OK")
	waitStatus(t, cl, "sched.past", "executed", 20*time.Second)
	lines := readLines(out)
	if len(lines) != 2 || lines[0] != "sched.once rule.sched "+at || lines[1] != "sched.past rule.sched 0" {
		t.Fatalf("runner output: %q", lines)
	}
}

// TestSchedule_Failures: a failing command, a timeout, a missing
// executable and a job without a rule all end failed.
func TestSchedule_Failures(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, "[execution]\ntimeout = \"1s\"\n"))
	cl := dial(t, c.addr)
	cl.expect(`r1 RULE SET rule.exit fail.exit. shell "exit 3"`, "r1 OK")
	cl.expect(`r2 RULE SET rule.slow fail.slow. shell "sleep 30"`, "r2 OK")
	cl.expect(`r3 RULE SET rule.missing fail.missing. direct /nonexistent/tock-test-binary`, "r3 OK")
	cl.expect(`r4 RULE SET rule.ok ok. direct /bin/true`, "r4 OK")
	for i, j := range []string{"fail.exit.a", "fail.slow.a", "fail.missing.a", "norule.a", "ok.a"} {
		cl.expect(fmt.Sprintf("s%d SET %s 0", i, j), fmt.Sprintf("s%d OK", i))
	}
	waitStatus(t, cl, "ok.a", "executed", 20*time.Second)
	for _, j := range []string{"fail.exit.a", "fail.missing.a", "norule.a", "fail.slow.a"} {
		waitStatus(t, cl, j, "failed", 20*time.Second)
	}
	body, _ := cl.list("st", "st STAT")
	stat := statMap(body)
	if stat["jobs_failed"] != "4" || stat["jobs_executed"] != "1" || stat["executions_inflight"] != "0" || stat["executions_pending"] != "0" {
		t.Fatalf("STAT after failures: %v", stat)
	}
}

func statMap(body []string) map[string]string {
	m := map[string]string{}
	for _, l := range body {
		f := strings.Fields(l)
		if len(f) == 3 {
			m[f[1]] = f[2]
		}
	}
	return m
}

// TestSchedule_NoRerunAfterRestart: an executed job is not run again after
// a restart (statuses are persisted, docs/protocol.md).
func TestSchedule_NoRerunAfterRestart(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	out := filepath.Join(dir, "ran")
	cl.expect(fmt.Sprintf(`r1 RULE SET rule.re re. shell "echo $TOCK_JOB_ID >> %s"`, out), "r1 OK")
	cl.expect("r2 SET re.first 0", "r2 OK")
	waitStatus(t, cl, "re.first", "executed", 20*time.Second)
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	c.start()
	cl = dial(t, c.addr)
	cl.expect("r3 GET re.first", "r3 OK executed 0")
	if got := cl.do("i INFO re.first"); !strings.Contains(got, " attempt=1 ") {
		t.Fatalf("INFO after a restart: %q, want the outcome's attempt=1 kept", got)
	}
	// A marker job scheduled after the restart: once it ran, any re-run of
	// re.first would have happened (replay precedes serving).
	cl.expect("r4 SET re.marker 0", "r4 OK")
	waitStatus(t, cl, "re.marker", "executed", 20*time.Second)
	if lines := readLines(out); len(lines) != 2 || lines[0] != "re.first" || lines[1] != "re.marker" {
		t.Fatalf("runs: %q (re.first must run once)", lines)
	}
}

// TestSchedule_KillWorkerDuringExecution: kill -9 of the worker during a
// long execution re-runs it exactly once after recovery (at-least-once,
// docs/protocol.md).
func TestSchedule_KillWorkerDuringExecution(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	out := filepath.Join(dir, "ran")
	cl.expect(fmt.Sprintf(`r1 RULE SET rule.long long. shell "echo start >> %[1]s; sleep 2; echo done >> %[1]s"`, out), "r1 OK")
	cl.expect("r2 SET long.job 0", "r2 OK")
	waitFor(t, 20*time.Second, "execution to start", func() bool { return len(readLines(out)) >= 1 })
	for _, pid := range workerPIDs(t, c.cmd.Process.Pid) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	waitStatus(t, cl, "long.job", "executed", 30*time.Second)
	lines := readLines(out)
	if strings.Join(lines, ",") != "start,start,done" {
		t.Fatalf("runs: %q, want the killed run cut short and exactly one re-run", lines)
	}
	// The outcome says it came from the second attempt.
	if got := cl.do("i INFO long.job"); !strings.Contains(got, " attempt=2 ") {
		t.Fatalf("INFO after the re-run: %q, want attempt=2", got)
	}
}
