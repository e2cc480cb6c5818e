package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Puma's own CLI, pumactl (Debian package puma), drives tock unchanged:
// over the control socket, over the TCP control listener with a token,
// and by signals from the pid file (docs/operations.md, "Puma's pumactl").

// pumactl runs Puma's pumactl with args and returns its output and whether
// it exited 0. It runs in an empty directory so that no config/puma.rb is
// read, and without RACK_ENV and friends.
func pumactl(t *testing.T, args ...string) (string, bool) {
	t.Helper()
	bin, err := exec.LookPath("pumactl")
	if err != nil {
		t.Fatalf("pumactl not found (Debian package puma; .ci/install-services.sh installs it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "RACK_ENV" && k != "APP_ENV" && k != "RAILS_ENV" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("pumactl %v: %v", args, err)
	}
	return string(out), err == nil
}

// pumactlOK runs pumactl and checks that it reports success.
func pumactlOK(t *testing.T, args ...string) string {
	t.Helper()
	out, ok := pumactl(t, args...)
	cmd := args[len(args)-1]
	want := "Command " + cmd + " sent success"
	if cmd == "status" {
		want = "Puma is started"
	}
	if !ok || !strings.HasPrefix(out, want) {
		t.Fatalf("pumactl %v: ok=%v, want %q:\n%s", args, ok, want, out)
	}
	return strings.TrimPrefix(out, want)
}

// checkPumaQueries runs pumactl's printing commands against ctl (the -C
// and -T arguments) and checks what they print.
func checkPumaQueries(t *testing.T, c *cluster, ctl ...string) {
	t.Helper()
	var st ctlStats
	body := pumactlOK(t, append(ctl, "stats")...)
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("pumactl stats printed %q: %v", body, err)
	}
	if st.PID != c.cmd.Process.Pid || st.Workers != 2 || len(st.WorkerStatus) != 2 {
		t.Fatalf("pumactl stats: %+v", st)
	}
	var gc struct {
		Master struct {
			PID int `json:"pid"`
		} `json:"master"`
		Workers []json.RawMessage `json:"workers"`
	}
	body = pumactlOK(t, append(ctl, "gc-stats")...)
	if err := json.Unmarshal([]byte(body), &gc); err != nil || gc.Master.PID != c.cmd.Process.Pid || len(gc.Workers) != 2 {
		t.Fatalf("pumactl gc-stats printed %q: %v", body, err)
	}
	body = pumactlOK(t, append(ctl, "thread-backtraces")...)
	if !strings.Contains(body, "goroutine ") {
		t.Fatalf("pumactl thread-backtraces printed %q", body)
	}
	pumactlOK(t, append(ctl, "status")...)
}

// pumaPhasedRestart runs do (pumactl phased-restart one way or another)
// and waits for the rollout to finish with new worker processes.
func pumaPhasedRestart(t *testing.T, c *cluster, cc *controlConn, do func()) {
	t.Helper()
	before := cc.stats()
	do()
	waitFor(t, 60*time.Second, "the phased restart", func() bool {
		st := cc.stats()
		return st.Phase == before.Phase+1 && !st.PhasedRestart.InProgress && st.OldWorkers == 0 &&
			st.BootedWorkers == 2 && len(childPIDs(t, c)) == 2
	})
	after := cc.stats()
	if after.PhasedRestart.LastError != nil {
		t.Fatalf("phased restart error: %v", *after.PhasedRestart.LastError)
	}
	for _, p := range statPIDs(after) {
		for _, q := range statPIDs(before) {
			if p == q {
				t.Fatalf("worker %d survived the phased restart", p)
			}
		}
	}
}

// pumaRestart runs do (pumactl restart) and waits for the re-executed
// master (same pid) to be ready again with its jobs.
func pumaRestart(t *testing.T, c *cluster, cc *controlConn, do func()) {
	t.Helper()
	before := cc.stats()
	readies := strings.Count(c.logs.String(), "tock is ready")
	do()
	waitFor(t, 60*time.Second, "the restarted master", func() bool {
		select {
		case <-c.exited:
			t.Fatalf("tock exited on restart: %v\n%s", c.exitErr, tail(c.logs.String(), 30))
		default:
		}
		return strings.Count(c.logs.String(), "tock is ready") == readies+1
	})
	var after ctlStats
	waitFor(t, 30*time.Second, "stats of the new master", func() bool {
		code, b := cc.do("GET", "/stats", "")
		return code == 200 && json.Unmarshal(b, &after) == nil && after.BootedWorkers == 2
	})
	if after.PID != before.PID || !after.StartedAt.After(before.StartedAt) {
		t.Fatalf("restart: pid %d→%d started %s→%s", before.PID, after.PID, before.StartedAt, after.StartedAt)
	}
	dial(t, c.addr).expect("p2 GET puma.job", "p2 OK planned 4102444800000000000")
}

// TestPumactl_Unix: every pumactl command over the control socket.
func TestPumactl_Unix(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	dial(t, c.addr).expect("p1 SET puma.job 4102444800000000000", "p1 OK")
	ctl := []string{"-C", "unix://" + controlSocket(dir)}
	checkPumaQueries(t, c, ctl...)
	cc := unixControl(t, dir)
	pumaPhasedRestart(t, c, cc, func() { pumactlOK(t, append(ctl, "phased-restart")...) })
	pumaRestart(t, c, cc, func() { pumactlOK(t, append(ctl, "restart")...) })
	pumactlOK(t, append(ctl, "halt")...)
	if err := waitExit(t, c, 30*time.Second); err != nil {
		t.Fatalf("exit after pumactl halt: %v", err)
	}
	if out, ok := pumactl(t, append(ctl, "stats")...); ok {
		t.Fatalf("pumactl stats on a halted tock succeeded:\n%s", out)
	}
}

// TestPumactl_TCP: every pumactl command over the TCP control listener
// with the token; a wrong token is what pumactl calls unauthorized, and a
// missing one is refused too.
func TestPumactl_TCP(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, "[control]\nurl = \"tcp://127.0.0.1:0\"\ntoken = \"s3cret\"\n"))
	dial(t, c.addr).expect("p1 SET puma.job 4102444800000000000", "p1 OK")
	m := controlTCPRE.FindStringSubmatch(c.logs.String())
	if m == nil {
		t.Fatalf("no TCP control listener in the logs:\n%s", tail(c.logs.String(), 30))
	}
	url := "tcp://" + m[1]
	ctl := []string{"-C", url, "-T", "s3cret"}
	checkPumaQueries(t, c, ctl...)
	for _, cmd := range []string{"stats", "stop", "halt"} {
		out, ok := pumactl(t, "-C", url, "-T", "wrong", cmd)
		if ok || !strings.Contains(out, "Unauthorized access to server (wrong auth token)") {
			t.Fatalf("pumactl %s with a wrong token: ok=%v\n%s", cmd, ok, out)
		}
		out, ok = pumactl(t, "-C", url, cmd)
		if ok || !strings.Contains(out, "Bad response from server: 401") {
			t.Fatalf("pumactl %s without a token: ok=%v\n%s", cmd, ok, out)
		}
	}
	cc := unixControl(t, dir)
	cc.token = "s3cret"
	pumaPhasedRestart(t, c, cc, func() { pumactlOK(t, append(ctl, "phased-restart")...) })
	pumaRestart(t, c, cc, func() { pumactlOK(t, append(ctl, "restart")...) })
	// The re-executed master listens on a new port (127.0.0.1:0).
	ms := controlTCPRE.FindAllStringSubmatch(c.logs.String(), -1)
	ctl[1] = "tcp://" + ms[len(ms)-1][1]
	pumactlOK(t, append(ctl, "stop")...)
	if err := waitExit(t, c, 60*time.Second); err != nil {
		t.Fatalf("exit after pumactl stop: %v", err)
	}
	if _, err := os.Lstat(controlSocket(dir)); !os.IsNotExist(err) {
		t.Fatalf("control.sock left behind after a stop: %v", err)
	}
}

// TestPumactl_PidFile: pumactl's pid mode sends signals to the master from
// <data_dir>/tock.pid, and tock does what Puma does on each.
func TestPumactl_PidFile(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	dial(t, c.addr).expect("p1 SET puma.job 4102444800000000000", "p1 OK")
	pid := []string{"-P", filepath.Join(dir, "data", "tock.pid")}
	pumactlOK(t, append(pid, "status")...)
	cc := unixControl(t, dir)
	pumaPhasedRestart(t, c, cc, func() { pumactlOK(t, append(pid, "phased-restart")...) })
	settled := func(n int) func() bool {
		return func() bool {
			st := cc.stats()
			return st.Workers == n && st.BootedWorkers == n && !st.PhasedRestart.InProgress && len(childPIDs(t, c)) == n
		}
	}
	pumactlOK(t, append(pid, "worker-count-up")...)
	waitFor(t, 30*time.Second, "3 workers", settled(3))
	pumactlOK(t, append(pid, "worker-count-down")...)
	waitFor(t, 30*time.Second, "2 workers", settled(2))
	pumactlOK(t, append(pid, "reopen-log")...)
	pumaRestart(t, c, cc, func() { pumactlOK(t, append(pid, "restart")...) })
	pumactlOK(t, append(pid, "stop")...)
	if err := waitExit(t, c, 60*time.Second); err != nil {
		t.Fatalf("exit after pumactl stop: %v", err)
	}
	out, ok := pumactl(t, append(pid, "status")...)
	if ok || !strings.Contains(out, "No such file") {
		t.Fatalf("pumactl status after the stop: ok=%v\n%s", ok, out)
	}
}
