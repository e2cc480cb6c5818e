package suite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/internal/testservice"
)

// The tock binary is built once, for the tests that need it (not in
// TestMain: `go test -list` and the fuzzing workers run TestMain too),
// without the race detector: it is a server under load, not the code under
// test.
var (
	tockOnce  sync.Once
	tockDir   string
	tockBin   string
	tockBuild error
)

func tockBinary(t *testing.T) string {
	t.Helper()
	tockOnce.Do(func() {
		if tockDir, tockBuild = os.MkdirTemp("", "tock-suite-test-"); tockBuild != nil {
			return
		}
		tockBin = filepath.Join(tockDir, "tock")
		out, err := exec.Command("go", "build", "-o", tockBin, "../../cmd/tock").CombinedOutput()
		if err != nil {
			tockBuild = fmt.Errorf("build tock: %v\n%s", err, out)
		}
	})
	if tockBuild != nil {
		t.Fatal(tockBuild)
	}
	return tockBin
}

func TestMain(m *testing.M) {
	// The suite starts this binary as its echo server (Options.EchoArgv).
	if len(os.Args) == 3 && os.Args[1] == "-serve-echo" {
		if err := ServeEcho(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if tockDir != "" {
		os.RemoveAll(tockDir)
	}
	os.Exit(code)
}

// processWatch records the process tree of every server the suite starts,
// to check afterwards that none of them is left.
type processWatch struct {
	mu    sync.Mutex
	procs []ProcStat
	roots int
	then  func(n int) // called after each start with the count so far
}

func (w *processWatch) started(pid int) {
	stats, err := readStats("/proc")
	w.mu.Lock()
	if err == nil {
		w.procs = append(w.procs, Tree(stats, pid)...)
	}
	w.roots++
	n := w.roots
	w.mu.Unlock()
	if w.then != nil {
		w.then(n)
	}
}

// leftovers returns the recorded processes that still run.
func (w *processWatch) leftovers(t *testing.T) []ProcStat {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	stats, err := readStats("/proc")
	if err != nil {
		t.Fatal(err)
	}
	now := map[int]ProcStat{}
	for _, s := range stats {
		now[s.PID] = s
	}
	var left []ProcStat
	for _, p := range w.procs {
		if s, ok := now[p.PID]; ok && s.StartTime == p.StartTime && s.State != 'Z' {
			left = append(left, s)
		}
	}
	return left
}

func testOptions(t *testing.T, w *processWatch, log *testservice.SyncBuffer) Options {
	return Options{
		TockBin:         tockBinary(t),
		EchoArgv:        []string{os.Args[0], "-serve-echo"},
		Shapes:          []Shape{{4, 8}, {1, 1}},
		Reps:            2,
		RunTime:         20 * time.Millisecond,
		MinRequests:     200,
		CalibrationTime: 10 * time.Millisecond,
		WorkDir:         t.TempDir(),
		Log:             hclog.New(&hclog.LoggerOptions{Output: log, Level: hclog.Info}),
		onStarted:       w.started,
	}
}

// TestSuiteSmoke runs the whole suite with tiny request counts: echo and
// tock always, redis and beanstalkd when installed (CI installs both, see
// .ci/install-services.sh). Every measurement must succeed, the table must
// have a row per target and shape, and no process may be left.
func TestSuiteSmoke(t *testing.T) {
	w := &processWatch{}
	var log testservice.SyncBuffer
	rep, err := Run(context.Background(), testOptions(t, w, &log))
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	want := []string{"echo", "tock-memory", "tock-fsync-always", "tock-fsync-interval"}
	if findProgram("", "redis-server") != "" {
		want = append(want, "redis", "redis-aof-everysec", "redis-aof-always")
	}
	if findProgram("", "beanstalkd") != "" {
		want = append(want, "beanstalkd", "beanstalkd-binlog")
	}
	if len(rep.Targets)+len(rep.Skipped) != len(Targets) || len(rep.Targets) != len(want) {
		t.Fatalf("targets %+v, skipped %+v, want %v", rep.Targets, rep.Skipped, want)
	}
	if len(rep.Measurements) != len(want)*2*2 {
		t.Fatalf("%d measurements", len(rep.Measurements))
	}
	rows := map[string]Row{}
	for _, r := range rep.Rows {
		rows[r.Target+" "+r.Shape] = r
	}
	for _, name := range want {
		for _, sh := range []string{"4×8", "1×1"} {
			r, ok := rows[name+" "+sh]
			switch {
			case !ok:
				t.Errorf("no row for %s at %s", name, sh)
			case r.Failed != "" || r.Runs != 2:
				t.Errorf("%s at %s: %d runs, failed %q", name, sh, r.Runs, r.Failed)
			case r.Throughput <= 0 || r.XEcho <= 0 || r.P50Ns <= 0 || r.P99Ns < r.P50Ns || r.CoreUS < 0:
				t.Errorf("%s at %s: figures %+v", name, sh, r)
			}
		}
	}
	for _, m := range rep.Measurements {
		if m.Requests < 200 || m.Errors != 0 {
			t.Errorf("measurement %+v", m)
		}
	}
	if rows["echo 4×8"].XEcho != 1 {
		t.Errorf("echo's ratio to itself %v", rows["echo 4×8"].XEcho)
	}
	if !strings.Contains(rep.Table(), "tock SET, fsync = always") {
		t.Errorf("table:\n%s", rep.Table())
	}
	if _, err := Chart(rep); err != nil {
		t.Fatal(err)
	}
	if w.roots != len(want) {
		t.Fatalf("%d servers started, want %d", w.roots, len(want))
	}
	if left := w.leftovers(t); len(left) > 0 {
		t.Fatalf("processes left after the suite: %+v", left)
	}
}

// TestSuiteCancel: cancelling while servers are starting stops the suite
// with ctx's error and stops every server already started.
func TestSuiteCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &processWatch{then: func(n int) {
		if n == 2 {
			cancel()
		}
	}}
	var log testservice.SyncBuffer
	opts := testOptions(t, w, &log)
	opts.Targets = []string{"tock-memory", "tock-fsync-always"}
	_, err := Run(ctx, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel: %v\n%s", err, log.String())
	}
	if w.roots < 2 {
		t.Fatalf("%d servers started", w.roots)
	}
	if left := w.leftovers(t); len(left) > 0 {
		t.Fatalf("processes left after cancel: %+v", left)
	}
}

// TestSuiteStartFailure: a server that does not start fails the suite with
// its output, and the servers already started are stopped.
func TestSuiteStartFailure(t *testing.T) {
	w := &processWatch{}
	var log testservice.SyncBuffer
	opts := testOptions(t, w, &log)
	bad := filepath.Join(t.TempDir(), "tock")
	if err := os.WriteFile(bad, []byte("#!/bin/sh\necho 'no such cluster' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	opts.TockBin = bad
	opts.Targets = []string{"tock-memory"}
	_, err := Run(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "tock-memory exited at start") || !strings.Contains(err.Error(), "no such cluster") {
		t.Fatalf("Run with a failing tock: %v", err)
	}
	if w.roots != 1 {
		t.Fatalf("%d servers started, want echo only", w.roots)
	}
	if left := w.leftovers(t); len(left) > 0 {
		t.Fatalf("processes left: %+v", left)
	}
}

func TestSuiteBadOptions(t *testing.T) {
	for _, opts := range []Options{
		{Targets: []string{"memcached"}},
		{Reps: -1},
		{RunTime: -time.Second},
	} {
		if _, err := Run(context.Background(), opts); err == nil {
			t.Errorf("%+v accepted", opts)
		}
	}
	opts := Options{TockBin: tockBinary(t), Targets: []string{"tock-memory"}}
	if _, err := Run(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "echo") {
		t.Errorf("no echo command: %v", err)
	}
}

// TestStopKillsWhatIgnoresSIGTERM: a server that ignores SIGTERM is killed
// after the grace period, together with the children in its process group.
func TestStopKillsWhatIgnoresSIGTERM(t *testing.T) {
	p, err := startProc("stubborn", t.TempDir(), "/bin/sh", "-c", `trap "" TERM; sleep 300 & echo started; wait; wait`)
	if err != nil {
		t.Fatal(err)
	}
	var tree []ProcStat
	deadline := time.Now().Add(30 * time.Second)
	for {
		stats, err := readStats("/proc")
		if err != nil {
			t.Fatal(err)
		}
		if tree = Tree(stats, p.pid()); len(tree) == 2 && strings.Contains(p.out.String(), "started") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shell's child did not start: %+v", tree)
		}
		time.Sleep(10 * time.Millisecond) // polling /proc
	}
	err = p.stop(200 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "did not exit") {
		t.Fatalf("stop: %v", err)
	}
	w := &processWatch{procs: tree}
	if left := w.leftovers(t); len(left) > 0 {
		t.Fatalf("left: %+v", left)
	}
	if p.alive() {
		t.Fatal("still alive")
	}
	if err := p.stop(time.Second); err != nil {
		t.Fatalf("second stop: %v", err)
	}
}
