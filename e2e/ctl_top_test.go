package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// tmuxServer is a private tmux server (its own socket and config) for
// driving a terminal program.
type tmuxServer struct {
	t    *testing.T
	bin  string
	sock string
	conf string
}

func startTmux(t *testing.T) *tmuxServer {
	t.Helper()
	bin, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux is not installed: skipping the terminal test of `tock ctl top` (apt-get install tmux)")
	}
	dir := t.TempDir()
	ts := &tmuxServer{t: t, bin: bin, sock: filepath.Join(dir, "tmux.sock"), conf: filepath.Join(dir, "tmux.conf")}
	// remain-on-exit keeps the pane after top quits, so its exit status
	// can be read.
	if err := os.WriteFile(ts.conf, []byte("set -g remain-on-exit on\nset -g status off\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.run("kill-server") })
	return ts
}

// run runs one tmux command against the private server.
func (ts *tmuxServer) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ts.bin, append([]string{"-S", ts.sock, "-f", ts.conf}, args...)...)
	cmd.Env = append(os.Environ(), "TMUX=", "TERM=xterm-256color")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (ts *tmuxServer) must(args ...string) string {
	ts.t.Helper()
	out, err := ts.run(args...)
	if err != nil {
		ts.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return out
}

var topRowRE = regexp.MustCompile(`(?m)^\s+(\d+)\s+(\d+)\s+(\d+)\s+booted\s+\d+\.\ds\s+0\s+4\s+(\d+)\s`)

// TestCtl_TopUnderTmux runs `tock ctl top` in a real terminal (tmux):
// the view shows the cluster and its worker rows, computes a request rate
// from successive samples, and quits on q with exit 0 (docs/operations.md).
func TestCtl_TopUnderTmux(t *testing.T) {
	ts := startTmux(t)
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	for i := range 10 {
		cl.expect(fmt.Sprintf("r%d SET top.job.%d 4102444800000000000", i, i), fmt.Sprintf("r%d OK", i))
	}
	// The shell prints top's exit status when it quits: tmux's own record
	// of it (pane_dead_status) is not always there when the pane is dead.
	ts.must("new-session", "-d", "-s", "top", "-x", "140", "-y", "24", "sh", "-c",
		fmt.Sprintf("%s ctl --control unix://%s top --interval 200ms; echo top-exit=$?; sleep 600", tockBin, controlSocket(dir)))
	var screen string
	n := 10
	waitFor(t, 30*time.Second, "top to show both workers, all jobs and a request rate", func() bool {
		// Keep requests flowing so that req/s is above zero.
		cl.expect(fmt.Sprintf("g%d GET top.job.1", n), fmt.Sprintf("g%d OK planned 4102444800000000000", n))
		n++
		screen = ts.must("capture-pane", "-p", "-t", "top")
		rows := topRowRE.FindAllStringSubmatch(screen, -1)
		if len(rows) != 2 || rows[0][1] != "0" || rows[1][1] != "1" {
			return false
		}
		jobs := atoi(rows[0][4]) + atoi(rows[1][4])
		return jobs == 10 && strings.Contains(screen, "tock top") &&
			regexp.MustCompile(`req/s [1-9][0-9.]*`).MatchString(screen)
	})
	t.Logf("tock ctl top under tmux (140x24):\n%s", screen)
	for _, want := range []string{"workers 2 (2 booted, 0 old)", "phase 0", "jobs 10: planned 10", "IDX", "CHECKIN"} {
		if !strings.Contains(screen, want) {
			t.Fatalf("top screen has no %q:\n%s", want, screen)
		}
	}
	ts.must("send-keys", "-t", "top", "q")
	var after string
	waitFor(t, 10*time.Second, "top to quit on q", func() bool {
		after = ts.must("capture-pane", "-p", "-t", "top")
		return strings.Contains(after, "top-exit=")
	})
	if !strings.Contains(after, "top-exit=0") {
		t.Fatalf("top did not exit 0:\n%s", after)
	}
}

// TestCtl_TopPiped: with stdout not a terminal, `tock ctl top` prints one
// plain table (no escape codes, every column) and exits 0 by itself.
func TestCtl_TopPiped(t *testing.T) {
	dir := t.TempDir()
	startCluster(t, dir, clusterConfig(dir, ""))
	out, err := runTock(t, "ctl", "--control", "unix://"+controlSocket(dir), "top")
	if err != nil {
		t.Fatalf("ctl top piped: %v\n%s", err, out)
	}
	if strings.Contains(out, "\x1b") {
		t.Fatalf("escape codes in piped output:\n%q", out)
	}
	for _, want := range []string{"tock top", "workers 2 (2 booted, 0 old)", "IDX", "TRIGGERED", "RSS"} {
		if !strings.Contains(out, want) {
			t.Fatalf("no %q in piped output:\n%s", want, out)
		}
	}
	if rows := regexp.MustCompile(`(?m)^\s+[01]\s+\d+\s+\d+\s+booted\s`).FindAllString(out, -1); len(rows) != 2 {
		t.Fatalf("%d worker rows in piped output:\n%s", len(rows), out)
	}
}
