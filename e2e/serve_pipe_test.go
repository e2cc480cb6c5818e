package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServe_StopsWithItsLogPipeGone: `tock serve 2>&1 | tee tock.log` and
// Ctrl-C, which ends tee as well as tock: the master's next log line goes
// to a pipe nobody reads. It must still stop gracefully (exit 0, control
// socket and pid file removed) rather than die of SIGPIPE halfway.
func TestServe_StopsWithItsLogPipeGone(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tock.toml")
	if err := os.WriteFile(cfg, []byte(clusterConfig(dir, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tockBin, "serve", "-c", cfg)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var exitErr error
	exited := make(chan struct{})
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
		killWorkers(t, cmd.Process.Pid)
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "tock is ready") {
				close(ready)
				return
			}
		}
	}()
	select {
	case <-ready:
	case <-exited:
		t.Fatalf("tock exited at start: %v", exitErr)
	case <-time.After(60 * time.Second):
		t.Fatal("tock not ready after 60 s")
	}
	r.Close() // the reader is gone, as tee is after Ctrl-C
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if exitErr != nil {
			t.Fatalf("tock did not stop cleanly with its log pipe gone: %v", exitErr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("tock did not stop within 60 s of SIGINT")
	}
	for _, f := range []string{"control.sock", "tock.pid"} {
		if _, err := os.Stat(filepath.Join(dir, "data", f)); !os.IsNotExist(err) {
			t.Errorf("%s left behind after the stop (%v)", f, err)
		}
	}
}
