package runner

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tockd/tock/store"
)

const installHint = "run .ci/install-services.sh (apt-get install redis-server rabbitmq-server)"

func TestMain(m *testing.M) {
	flag.Parse()
	// RabbitMQ takes seconds to boot: start it in the background right away
	// when the AMQP tests are going to run, so the boot overlaps the other
	// tests. Each AMQP test waits for it; it is stopped after all tests.
	if run := flag.Lookup("test.run").Value.String(); run == "" || strings.Contains(strings.ToUpper(run), "AMQP") {
		rabbit.started.Store(true)
		go rabbit.start()
	}
	code := m.Run()
	rabbit.stop()
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

// syncBuffer is a goroutine-safe bytes.Buffer for captured logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

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

// rabbitNode is the package's one RabbitMQ broker, booted once.
//
// What makes rabbitmq-server boot as a plain (non-service) process here,
// found on Debian 12 (RabbitMQ 3.10, Erlang 25), as root or not:
//   - run /usr/lib/rabbitmq/bin/rabbitmq-server, not /usr/sbin/rabbitmq-server:
//     the latter is Debian's wrapper that `su`s to the rabbitmq user, which
//     cannot write our private temp dir;
//   - HOME = the temp dir: Erlang writes its .erlang.cookie there;
//   - RABBITMQ_NODENAME tock-test-<pid>@localhost, RABBITMQ_NODE_IP_ADDRESS
//     127.0.0.1, RABBITMQ_NODE_PORT / RABBITMQ_DIST_PORT free ports;
//   - RABBITMQ_MNESIA_BASE, RABBITMQ_LOG_BASE, RABBITMQ_PID_FILE,
//     RABBITMQ_CONFIG_FILE (absent file: defaults) in the temp dir;
//   - RABBITMQ_ENABLED_PLUGINS_FILE = a file containing "[]." (no plugins, no
//     management listener);
//   - our own `epmd -port N` child with ERL_EPMD_PORT=N, so that no epmd
//     daemon on 4369 is left behind and parallel runs do not collide;
//   - RABBITMQ_ALLOW_INPUT unset (the default): the script runs the VM in the
//     background with -noinput (stdin is /dev/null) and forwards SIGTERM to
//     it, used if the test binary dies (Pdeathsig); at the end the process
//     group is SIGKILLed (~instant, vs ~2 s for a graceful stop).
//
// Boot takes ~4 s; readiness is polled with a real guest/guest connection.
type rabbitNode struct {
	once    sync.Once
	ready   chan struct{}
	url     string // amqp://guest:guest@127.0.0.1:port/
	port    int
	skip    string // non-empty: why AMQP tests are skipped
	err     error
	dir     string
	cmd     *exec.Cmd
	epmd    *exec.Cmd
	exited  chan struct{}
	out     syncBuffer
	started atomic.Bool
	stopped sync.Once
}

var rabbit = &rabbitNode{ready: make(chan struct{})}

func findRabbitServer() (string, error) {
	for _, p := range []string{"/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/local/lib/rabbitmq/bin/rabbitmq-server"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return exec.LookPath("rabbitmq-server")
}

func (r *rabbitNode) start() {
	r.once.Do(func() {
		defer close(r.ready)
		r.err = r.boot()
	})
}

func (r *rabbitNode) boot() error {
	bin, err := findRabbitServer()
	if err != nil {
		r.skip = fmt.Sprintf("rabbitmq-server not installed (%v); %s", err, installHint)
		return nil
	}
	r.dir, err = os.MkdirTemp("", "tock-rabbit-")
	if err != nil {
		return err
	}
	plugins := filepath.Join(r.dir, "enabled_plugins")
	if err := os.WriteFile(plugins, []byte("[].\n"), 0o600); err != nil {
		return err
	}
	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = freePortErr(); err != nil {
			return err
		}
	}
	r.port = ports[0]
	env := append(os.Environ(),
		"HOME="+r.dir,
		fmt.Sprintf("RABBITMQ_NODENAME=tock-test-%d@localhost", os.Getpid()),
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		fmt.Sprintf("RABBITMQ_NODE_PORT=%d", ports[0]),
		fmt.Sprintf("RABBITMQ_DIST_PORT=%d", ports[1]),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(r.dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(r.dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(r.dir, "rabbit.pid"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(r.dir, "rabbitmq.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+plugins,
	)
	if epmd, err := exec.LookPath("epmd"); err == nil {
		env = append(env, fmt.Sprintf("ERL_EPMD_PORT=%d", ports[2]))
		r.epmd = exec.Command(epmd, "-port", fmt.Sprint(ports[2]))
		r.epmd.Env = env
		r.epmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := r.epmd.Start(); err != nil {
			return fmt.Errorf("start epmd: %w", err)
		}
	}
	r.cmd = exec.Command(bin)
	r.cmd.Dir = r.dir
	r.cmd.Env = env
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	// SIGTERM to the script if the test binary dies: it stops the VM.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("start rabbitmq-server: %w", err)
	}
	r.exited = make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(r.exited) }()

	r.url = fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", r.port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := amqp.DialConfig(r.url, amqp.Config{Dial: amqp.DefaultDial(time.Second)})
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-r.exited:
			return fmt.Errorf("rabbitmq-server exited during boot: %s", r.out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rabbitmq-server not ready after 60s (last error %v): %s", err, r.out.String())
		}
	}
}

// need returns the broker URL, skipping or failing t when there is none.
func (r *rabbitNode) need(t testing.TB) string {
	t.Helper()
	r.started.Store(true)
	r.start() // boots, or waits for the boot in progress
	if r.skip != "" {
		t.Skip(r.skip)
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.url
}

func (r *rabbitNode) stop() {
	r.stopped.Do(func() {
		if !r.started.Load() {
			return // AMQP tests not selected
		}
		<-r.ready
		if r.cmd != nil && r.cmd.Process != nil {
			// The broker is throwaway (its data dir is removed below), so
			// there is nothing to stop gracefully: SIGKILL the whole
			// process group (script + VM). The VM's helper processes
			// (erl_child_setup, inet_gethost) exit when the VM is gone.
			_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
			<-r.exited
		}
		if r.epmd != nil && r.epmd.Process != nil {
			_ = syscall.Kill(-r.epmd.Process.Pid, syscall.SIGKILL)
			_ = r.epmd.Wait()
		}
		if r.dir != "" {
			_ = os.RemoveAll(r.dir)
		}
	})
}

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
