// Package testservice starts the real servers tests talk to (RabbitMQ,
// on loopback, private to one test binary), so the runner tests and the
// end-to-end tests share one way of doing it. It is imported by tests only.
package testservice

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// InstallHint says how to get the servers the tests need.
const InstallHint = "run .ci/install-services.sh (apt-get install redis-server rabbitmq-server)"

// Rabbit is a private RabbitMQ broker for tests, booted once per test
// binary on free loopback ports and killed by Stop.
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
type Rabbit struct {
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
	out     SyncBuffer
	started atomic.Bool
	stopped sync.Once
}

// NewRabbit returns a broker that boots on the first Start or Need.
func NewRabbit() *Rabbit { return &Rabbit{ready: make(chan struct{})} }

func findRabbitServer() (string, error) {
	for _, p := range []string{"/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/local/lib/rabbitmq/bin/rabbitmq-server"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return exec.LookPath("rabbitmq-server")
}

// Start boots the broker in the calling goroutine (once).
func (r *Rabbit) Start() {
	r.started.Store(true)
	r.once.Do(func() {
		defer close(r.ready)
		r.err = r.boot()
	})
}

func (r *Rabbit) boot() error {
	bin, err := findRabbitServer()
	if err != nil {
		r.skip = fmt.Sprintf("rabbitmq-server not installed (%v); %s", err, InstallHint)
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

// Need returns the broker URL, skipping t when RabbitMQ is not installed
// and failing it when the broker did not boot.
func (r *Rabbit) Need(t testing.TB) string {
	t.Helper()
	r.started.Store(true)
	r.Start() // boots, or waits for the boot in progress
	if r.skip != "" {
		t.Skip(r.skip)
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.url
}

// Stop kills the broker, if it was started, and removes its files.
func (r *Rabbit) Stop() {
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

func freePortErr() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// SyncBuffer is a goroutine-safe bytes.Buffer, for capturing the output
// of servers and loggers in tests.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
