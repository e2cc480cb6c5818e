package runner

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tockd/tock/internal/testservice"
	"github.com/tockd/tock/store"
)

const installHint = testservice.InstallHint

// rabbit is the package's one RabbitMQ broker.
var rabbit = testservice.NewRabbit()

func TestMain(m *testing.M) {
	flag.Parse()
	// RabbitMQ takes seconds to boot: start it in the background right away
	// when the AMQP tests are going to run, so the boot overlaps the other
	// tests. Each AMQP test waits for it; it is stopped after all tests.
	if run := flag.Lookup("test.run").Value.String(); run == "" || strings.Contains(strings.ToUpper(run), "AMQP") {
		go rabbit.Start()
	}
	code := m.Run()
	rabbit.Stop()
	os.Exit(code)
}

// ---- small helpers ------------------------------------------------------

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	p, err := freePortErr()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func freePortErr() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t testing.TB) int { return freePort(t) }

// waitUntil polls cond every few milliseconds until it holds or d passes.
func waitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}

// syncBuffer is the goroutine-safe buffer the tests capture output in.
type syncBuffer = testservice.SyncBuffer

// traceLogger logs everything into the returned buffer.
func traceLogger() (hclog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Trace, Output: buf}), buf
}

func exec1(kind store.RunnerKind, job string, args ...string) Execution {
	return Execution{
		JobID: job, Execution: 1_700_000_000_123_456_789, RuleID: "rule." + kind.String(),
		Runner: store.Runner{Kind: kind, Args: args}, Gen: 7, Shard: 3,
	}
}

func mustSucceed(t testing.TB, o store.Outcome) {
	t.Helper()
	if !o.Succeeded() {
		t.Fatalf("execution failed: %q (exit %d, http %d, output %q)", o.Error, o.ExitCode, o.HTTPStatus, o.Output)
	}
}

func mustFail(t testing.TB, o store.Outcome, contains string) {
	t.Helper()
	if o.Succeeded() {
		t.Fatalf("execution succeeded, want failure containing %q", contains)
	}
	if !strings.Contains(o.Error, contains) {
		t.Fatalf("error %q does not contain %q", o.Error, contains)
	}
}

func checkTiming(t testing.TB, o store.Outcome, before time.Time) {
	t.Helper()
	if o.StartedAt < before.UnixNano() || o.StartedAt > time.Now().UnixNano() {
		t.Errorf("StartedAt %d not within the run", o.StartedAt)
	}
	if o.Duration <= 0 || time.Duration(o.Duration) > time.Since(before) {
		t.Errorf("Duration %v implausible", time.Duration(o.Duration))
	}
}

// ---- redis-server -------------------------------------------------------

type redisServer struct {
	Addr string
	cmd  *exec.Cmd
}

// startRedis starts a private redis-server on a free loopback port (no
// persistence, its own temp dir) and stops it when t ends. It skips t when
// redis-server is not installed.
func startRedis(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skipf("redis-server not installed (%v); %s", err, installHint)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // the free port may be taken meanwhile
		port := freePort(t)
		dir := t.TempDir()
		args := append([]string{"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--daemonize", "no", "--loglevel", "warning"}, extra...)
		cmd := exec.Command(bin, args...)
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start redis-server: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				c.Close()
				t.Cleanup(func() {
					_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					<-exited
				})
				return &redisServer{Addr: addr, cmd: cmd}
			}
			select {
			case <-exited:
				lastErr = fmt.Errorf("redis-server exited: %s", out.String())
			case <-time.After(10 * time.Millisecond):
				if time.Now().Before(deadline) {
					continue
				}
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
				lastErr = fmt.Errorf("redis-server did not listen on %s: %s", addr, out.String())
			}
			break
		}
	}
	t.Fatal(lastErr)
	return nil
}

// ---- RabbitMQ -----------------------------------------------------------

// ctxT is a context bounded by the test's deadline margin.
func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// listenLoopback listens on 127.0.0.1:port and never answers: connections
// complete the TCP handshake (backlog) and then hang.
func listenLoopback(port int) (net.Listener, error) {
	return net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
}
