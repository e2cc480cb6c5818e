package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ctlRun is one finished `tock ctl` run.
type ctlRun struct {
	stdout, stderr string
	code           int
}

// runCtl runs `tock ctl args...` in dir with extra environment, bounded.
func runCtl(t *testing.T, dir string, env []string, args ...string) ctlRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tockBin, append([]string{"ctl"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "TOCK_CONTROL")
	}), env...)
	// A race-enabled binary sleeps 1 s at exit by default.
	cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := ctlRun{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("tock ctl %v: %v", args, err)
	}
	return r
}

// expectCode fails unless the run exited with code.
func (r ctlRun) expectCode(t *testing.T, code int, what string) ctlRun {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, r.code, code, r.stdout, r.stderr)
	}
	return r
}

var statusLineRE = regexp.MustCompile(`^worker (\d+): pid=(\d+) phase=(\d+) booted=(true|false) checkin=(\d+\.\d)s jobs=(\d+) executions=(\d+) pending=(\d+)$`)

// TestCtl_StatsAndStatus: `tock ctl stats` (JSON and summary) and `status`,
// with the socket found by --control, $TOCK_CONTROL and the default path
// (docs/operations.md).
func TestCtl_StatsAndStatus(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	cl.expect("r1 SET ctl.a 4102444800000000000", "r1 OK")
	cl.expect("r2 SET ctl.b 4102444800000000000", "r2 OK")
	sock := "unix://" + controlSocket(dir)
	for _, args := range [][]string{{"--control", sock, "stats", "--json"}, {"--control", sock, "--json", "stats"}} {
		r := runCtl(t, dir, nil, args...).expectCode(t, exitCodeOK, strings.Join(args, " "))
		var st ctlStats
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			t.Fatalf("%v: stdout is not the stats JSON: %v\n%s", args, err, r.stdout)
		}
		if st.Workers != 2 || st.PID != c.cmd.Process.Pid || len(st.WorkerStatus) != 2 {
			t.Fatalf("%v: %+v", args, st)
		}
	}
	// $TOCK_CONTROL (a bare path), then the default ./tock-data/control.sock.
	if err := os.Symlink(filepath.Join(dir, "data"), filepath.Join(dir, "tock-data")); err != nil {
		t.Fatal(err)
	}
	envs := map[string][]string{"TOCK_CONTROL": {"TOCK_CONTROL=" + controlSocket(dir)}, "default": nil}
	for name, env := range envs {
		r := runCtl(t, dir, env, "stats").expectCode(t, exitCodeOK, "stats via "+name)
		for _, want := range []string{"workers 2 (2 booted, 0 old)", "shards 8", "worker 0:", "worker 1:"} {
			if !strings.Contains(r.stdout, want) {
				t.Fatalf("stats via %s: no %q in\n%s", name, want, r.stdout)
			}
		}
	}
	var lines []string
	waitFor(t, 10*time.Second, "status showing both jobs", func() bool {
		r := runCtl(t, dir, nil, "--control", sock, "status").expectCode(t, exitCodeOK, "status")
		lines = strings.Split(strings.TrimSpace(r.stdout), "\n")
		var jobs int
		for _, l := range lines {
			if m := statusLineRE.FindStringSubmatch(l); m != nil {
				jobs += atoi(m[6])
			}
		}
		return jobs == 2
	})
	pids := childPIDs(t, c)
	if len(lines) != 2 {
		t.Fatalf("status: %d lines, want 2:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for i, l := range lines {
		m := statusLineRE.FindStringSubmatch(l)
		if m == nil || atoi(m[1]) != i || !slices.Contains(pids, atoi(m[2])) || m[3] != "0" || m[4] != "true" {
			t.Fatalf("status line %d: %q (worker pids %v)", i, l, pids)
		}
	}
	r := runCtl(t, dir, nil, "--control", sock, "status", "--json").expectCode(t, exitCodeOK, "status --json")
	var ws []ctlWorker
	if err := json.Unmarshal([]byte(r.stdout), &ws); err != nil || len(ws) != 2 {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// Exit codes of docs/operations.md.
const (
	exitCodeOK          = 0
	exitCodeRefused     = 1
	exitCodeUsage       = 2
	exitCodeUnreachable = 3
)

// TestCtl_ExitCodes: 3 with a hint when nothing listens, 2 on bad usage, 1
// when the server says no.
func TestCtl_ExitCodes(t *testing.T) {
	empty := t.TempDir()
	r := runCtl(t, empty, nil, "stats").expectCode(t, exitCodeUnreachable, "no server, default socket")
	if !strings.Contains(r.stderr, "cannot reach tock at ./tock-data/control.sock") ||
		!strings.Contains(r.stderr, "tock serve") || !strings.Contains(r.stderr, "TOCK_CONTROL") ||
		strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("unreachable message: %q", r.stderr)
	}
	runCtl(t, empty, []string{"TOCK_CONTROL=unix://" + filepath.Join(empty, "x.sock")}, "status").
		expectCode(t, exitCodeUnreachable, "no server, $TOCK_CONTROL")
	runCtl(t, empty, nil, "--control", "tcp://127.0.0.1:1", "stop").expectCode(t, exitCodeUnreachable, "no server, tcp")

	dir := t.TempDir()
	startCluster(t, dir, clusterConfig(dir, ""))
	sock := "unix://" + controlSocket(dir)
	usage := [][]string{
		{"--control", sock, "frobnicate"},
		{"--control", sock},
		{"--control", sock, "stats", "--bogus"},
		{"--control", sock, "stats", "extra"},
		{"--control", sock, "workers"},
		{"--control", sock, "workers", "lots"},
		{"--control", sock, "workers", "+0"},
		{"--control", sock, "workers", "0"},
		{"--control", sock, "top", "--interval", "0s"},
		{"--control", "http://localhost:1", "stats"},
		{"--control", "tcp://nohost", "stats"},
	}
	for _, args := range usage {
		r := runCtl(t, dir, nil, args...).expectCode(t, exitCodeUsage, strings.Join(args, " "))
		if r.stderr == "" {
			t.Fatalf("%v: no message on stderr", args)
		}
	}
	r = runCtl(t, dir, nil, "--control", sock, "workers", "-5").expectCode(t, exitCodeRefused, "workers -5")
	if !strings.Contains(r.stderr, "at least one worker") {
		t.Fatalf("workers -5: %q", r.stderr)
	}
}

// TestCtl_Actions: workers, compact, phased-restart --wait and stop through
// `tock ctl` (docs/operations.md).
func TestCtl_Actions(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	sock := "unix://" + controlSocket(dir)
	cc := unixControl(t, dir)
	runCtl(t, dir, nil, "--control", sock, "compact").expectCode(t, exitCodeOK, "compact")
	runCtl(t, dir, nil, "--control", sock, "workers", "+1").expectCode(t, exitCodeOK, "workers +1")
	waitFor(t, 30*time.Second, "3 workers", func() bool {
		st := cc.stats()
		return st.Workers == 3 && st.BootedWorkers == 3 && !st.PhasedRestart.InProgress
	})
	runCtl(t, dir, nil, "--control", sock, "workers", "-1").expectCode(t, exitCodeOK, "workers -1")
	waitFor(t, 30*time.Second, "2 workers", func() bool {
		st := cc.stats()
		return st.Workers == 2 && !st.PhasedRestart.InProgress && len(childPIDs(t, c)) == 2
	})
	before := cc.stats()
	r := runCtl(t, dir, nil, "--control", sock, "phased-restart", "--wait").expectCode(t, exitCodeOK, "phased-restart --wait")
	after := cc.stats()
	if after.Phase != before.Phase+1 || after.PhasedRestart.InProgress || after.OldWorkers != 0 {
		t.Fatalf("--wait returned before the rollout was done: %+v", after)
	}
	for _, want := range []string{"phased restart to phase", "worker 0: pid", "worker 1: pid", "done: phase"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("phased-restart --wait output has no %q:\n%s", want, r.stdout)
		}
	}
	// Each worker's line lists all the shards it ended with, not the empty
	// or partial list of a worker still receiving them.
	for _, w := range after.WorkerStatus {
		want := fmt.Sprintf("worker %d: pid ", w.Index)
		var line string
		for _, l := range strings.Split(r.stdout, "\n") {
			if strings.HasPrefix(l, want) {
				line = l
			}
		}
		shards := make([]string, len(w.Shards))
		for i, n := range w.Shards {
			shards[i] = strconv.Itoa(n)
		}
		if !strings.HasSuffix(line, "shards "+strings.Join(shards, ",")) {
			t.Fatalf("phased-restart --wait: worker %d's line %q does not end with its shards %v", w.Index, line, w.Shards)
		}
	}
	for _, pid := range statPIDs(after) {
		if slices.Contains(statPIDs(before), pid) {
			t.Fatalf("pid %d survived the phased restart", pid)
		}
	}
	runCtl(t, dir, nil, "--control", sock, "stop").expectCode(t, exitCodeOK, "stop")
	if err := waitExit(t, c, 60*time.Second); err != nil {
		t.Fatalf("exit after ctl stop: %v", err)
	}
}

// TestCtl_PhasedRestartWaitAborts: --wait exits non-zero when the new
// binary cannot boot and the rollout aborts.
func TestCtl_PhasedRestartWaitAborts(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tock")
	copyFile(t, tockBin, bin)
	c := startClusterBin(t, dir, bin, clusterConfig(dir, ""))
	before := childPIDs(t, c)
	broken := filepath.Join(dir, "tock.new")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\necho broken build >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(broken, bin); err != nil {
		t.Fatal(err)
	}
	r := runCtl(t, dir, nil, "--control", "unix://"+controlSocket(dir), "phased-restart", "--wait").
		expectCode(t, exitCodeRefused, "phased-restart --wait onto a broken binary")
	if !strings.Contains(r.stderr, "aborted") {
		t.Fatalf("no abort message: %q", r.stderr)
	}
	if after := childPIDs(t, c); !slices.Equal(after, before) {
		t.Fatalf("old workers changed: %v → %v", before, after)
	}
}
