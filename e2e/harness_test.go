// Package e2e tests the real tock binary: real processes, sockets and files.
package e2e

import (
	"bufio"
	"fmt"
	"github.com/tockd/tock/internal/testservice"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tockBin is the binary built once for the whole run.
var tockBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tock-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tockBin = filepath.Join(dir, "tock")
	args := []string{"build", "-o", tockBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/tock")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build tock:", err)
		os.Exit(1)
	}
	code := m.Run()
	rabbit.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cluster is one running `tock serve`.
type cluster struct {
	t       testing.TB
	bin     string // binary to run; tockBin unless set
	dir     string
	cfgPath string
	cmd     *exec.Cmd
	addr    string
	logs    *syncBuffer
	exited  chan struct{}
	exitErr error
	// env is added to the environment and extra passed as fds 3..; with
	// listenPID, LISTEN_PID is set to the master's pid (as systemd does,
	// through a shell that execs tock).
	env       []string
	extra     []*os.File
	listenPID bool
}

// syncBuffer is the goroutine-safe buffer the tests capture output in.
type syncBuffer = testservice.SyncBuffer

// clusterConfig returns a config for a test cluster in dir.
func clusterConfig(dir string, extra string) string {
	return fmt.Sprintf(`[log]
level = "debug"
[controller]
listen = "127.0.0.1:0"
[database]
data_dir = %q
framerate = 200
[cluster]
workers = 2
shards = 8
worker_check_interval = "200ms"
worker_boot_timeout = "20s"
worker_shutdown_timeout = "10s"
[http]
listen = ""
%s`, filepath.Join(dir, "data"), extra)
}

// startCluster starts tock with cfg (see clusterConfig) in dir and waits
// until it is ready.
func startCluster(t testing.TB, dir, cfg string) *cluster {
	t.Helper()
	path := filepath.Join(dir, "tock.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, dir: dir, cfgPath: path, bin: tockBin}
	c.start()
	t.Cleanup(c.cleanup)
	return c
}

// startClusterBin is startCluster running the binary at bin.
func startClusterBin(t testing.TB, dir, bin, cfg string) *cluster {
	t.Helper()
	path := filepath.Join(dir, "tock.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, dir: dir, cfgPath: path, bin: bin}
	c.start()
	t.Cleanup(c.cleanup)
	return c
}

var readyRE = regexp.MustCompile(`tock is ready: listen=(\S+)`)

func (c *cluster) start() {
	c.t.Helper()
	c.logs = &syncBuffer{}
	c.startWith(c.logs.String)
}

// startWith starts the process and waits for the ready line in logs().
func (c *cluster) startWith(logs func() string) {
	c.t.Helper()
	c.exited = make(chan struct{})
	c.cmd = exec.Command(c.bin, "serve", "-c", c.cfgPath)
	if c.listenPID {
		c.cmd = exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" serve -c "$1"`, c.bin, c.cfgPath)
	}
	if c.env != nil {
		c.cmd.Env = append(os.Environ(), c.env...)
	}
	c.cmd.ExtraFiles = c.extra
	c.cmd.Dir = c.dir
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	if err := c.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() {
		c.exitErr = c.cmd.Wait()
		close(c.exited)
	}()
	waitFor(c.t, 60*time.Second, "cluster ready", func() bool {
		select {
		case <-c.exited:
			c.t.Fatalf("tock exited at start: %v\n%s", c.exitErr, c.logs.String())
		default:
		}
		m := readyRE.FindStringSubmatch(logs())
		if m == nil {
			return false
		}
		c.addr = m[1]
		return true
	})
}

func (c *cluster) cleanup() {
	select {
	case <-c.exited:
	default:
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(30 * time.Second):
			c.cmd.Process.Kill()
			<-c.exited
		}
	}
	killWorkers(c.t, c.cmd.Process.Pid)
	if c.t.Failed() {
		c.t.Logf("tock logs:\n%s", tail(c.logs.String(), 200))
	}
}

// stop sends SIGTERM and waits for the exit; it returns the exit error.
func (c *cluster) stop() error {
	c.t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(60 * time.Second):
		c.t.Fatalf("tock did not stop after SIGTERM\n%s", tail(c.logs.String(), 50))
	}
	return c.exitErr
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// workerPIDs finds the processes whose parent is the master.
func workerPIDs(t testing.TB, masterPID int) []int {
	t.Helper()
	var pids []int
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		var ppid int
		fmt.Sscanf(f[1], "%d", &ppid)
		if ppid == masterPID {
			pids = append(pids, pid)
		}
	}
	return pids
}

// processesWithBinary lists live (non-zombie) processes running path.
func processesWithBinary(path string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || strings.TrimSuffix(exe, " (deleted)") != path {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i > 0 && strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z") {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

func killWorkers(t testing.TB, masterPID int) {
	for _, pid := range workerPIDs(t, masterPID) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for an event
	}
}

// client is a line-protocol connection.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (c *client) send(lines ...string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.conn, strings.Join(lines, "\n")+"\n"); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) line() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	s, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read reply: %v (got %q)", err, s)
	}
	return strings.TrimSuffix(s, "\n")
}

// do sends one line and returns the one-line reply.
func (c *client) do(line string) string {
	c.t.Helper()
	c.send(line)
	return c.line()
}

// list sends one line and reads reply lines up to and including "<rid> OK"
// or an error line; it returns the body lines and the final line.
func (c *client) list(rid, line string) ([]string, string) {
	c.t.Helper()
	c.send(line)
	var body []string
	for {
		l := c.line()
		if l == rid+" OK" || strings.HasPrefix(l, rid+" ERROR") {
			return body, l
		}
		body = append(body, l)
	}
}

func (c *client) expect(line, want string) {
	c.t.Helper()
	if got := c.do(line); got != want {
		c.t.Fatalf("%q: got %q, want %q", line, got, want)
	}
}
