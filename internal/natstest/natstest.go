// Package natstest starts a real JetStream cluster for tests: n nats-server
// processes (the version pinned as a Go tool in go.mod) on free loopback
// ports, each with its own store directory, so that Kill is a real crash
// (kill -9) and Restart brings the same node back on the same ports and
// data. It is imported by tests only.
package natstest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ReadyTimeout bounds how long Start and WaitReady wait for JetStream to
// answer. A meta-leader election after a crash takes 4–9 s in nats-server;
// a loaded CI machine needs headroom on top.
const ReadyTimeout = 60 * time.Second

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary is the path of the pinned nats-server, built once per test
// process: `go tool -n nats-server` builds the tool into the Go build cache
// (a no-op when it is there already) and prints its path.
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goBin); err != nil {
			goBin = "go"
		}
		var out, errOut bytes.Buffer
		cmd := exec.Command(goBin, "tool", "-n", "nats-server")
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			binErr = fmt.Errorf("go tool -n nats-server: %w: %s", err, strings.TrimSpace(errOut.String()))
			return
		}
		binPath = strings.TrimSpace(out.String())
		if _, err := os.Stat(binPath); err != nil {
			binErr = fmt.Errorf("nats-server binary %q: %w", binPath, err)
		}
	})
	if binErr != nil {
		t.Fatalf("natstest: %v", binErr)
	}
	return binPath
}

// Node is one nats-server process of the cluster.
type Node struct {
	Name        string
	Port        int // client port on 127.0.0.1
	ClusterPort int // route port on 127.0.0.1 (0 for a single node)
	Dir         string
	PID         int // 0 while the node is down

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// URL is the node's client URL.
func (n *Node) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.Port) }

// CPUTime is the CPU time (user + system) the node's current process has
// used, from /proc; 0 while the node is down. For benchmarks: server CPU
// per request.
func (n *Node) CPUTime() time.Duration {
	n.mu.Lock()
	pid := n.PID
	n.mu.Unlock()
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command (which is in parentheses and may hold
	// spaces): utime and stime are the 12th and 13th of them, in clock
	// ticks (100 per second on Linux).
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	var ticks int64
	for _, f := range fields[11:13] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0
		}
		ticks += v
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// CPUTime is the CPU time of every node up, summed.
func (c *Cluster) CPUTime() time.Duration {
	var d time.Duration
	for _, n := range c.Nodes {
		d += n.CPUTime()
	}
	return d
}

// LogFile is where the node writes its log (appended to across restarts).
func (n *Node) LogFile() string { return filepath.Join(n.Dir, "nats-server.log") }

// Cluster is n JetStream nodes, fully meshed on loopback.
type Cluster struct {
	Nodes []*Node
	t     testing.TB
	opts  Options
}

// Options change the nodes' configuration.
type Options struct {
	// SyncInterval is jetstream.sync_interval: "always" fsyncs every
	// message before it is acknowledged; "" keeps nats-server's default
	// (2 min).
	SyncInterval string
}

// Start boots n nodes (3 for an R3 cluster) and waits until JetStream
// answers: a meta leader is elected and a stream with n replicas can be
// created. Every node is stopped by t.Cleanup.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartWith(t, n, Options{})
}

// StartWith is Start with opts.
func StartWith(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("natstest: %d nodes", n)
	}
	bin := Binary(t)
	c := &Cluster{t: t, opts: opts}
	ports := freePorts(t, 2*n)
	var routes []string
	for i := 0; i < n; i++ {
		node := &Node{Name: fmt.Sprintf("n%d", i+1), Port: ports[2*i], Dir: t.TempDir()}
		if n > 1 {
			node.ClusterPort = ports[2*i+1]
			routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", node.ClusterPort))
		}
		c.Nodes = append(c.Nodes, node)
	}
	for _, node := range c.Nodes {
		if err := os.WriteFile(node.confPath(), []byte(node.config(routes, opts)), 0o600); err != nil {
			t.Fatalf("natstest: %v", err)
		}
	}
	t.Cleanup(c.stopAll)
	for _, node := range c.Nodes {
		if err := node.start(bin); err != nil {
			t.Fatalf("natstest: start %s: %v", node.Name, err)
		}
	}
	c.WaitReady()
	return c
}

// URLs are the client URLs of every node (up or down), for a client that
// fails over between them.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL()
	}
	return urls
}

// Kill crashes node i with SIGKILL and waits until the process is gone.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	c.Nodes[i].kill()
}

// Restart starts node i again on the same ports and store directory. It
// does not wait for JetStream; call WaitReady for that.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	n := c.Nodes[i]
	n.kill()
	if err := n.start(Binary(c.t)); err != nil {
		c.t.Fatalf("natstest: restart %s: %v", n.Name, err)
	}
}

// WaitReady waits until JetStream answers through the nodes that are up:
// a stream with as many replicas as the cluster has nodes up can be
// created and deleted (so a meta leader exists and enough peers are
// current).
func (c *Cluster) WaitReady() {
	c.t.Helper()
	var urls []string
	for _, n := range c.Nodes {
		if n.up() {
			urls = append(urls, n.URL())
		}
	}
	if len(urls) == 0 {
		c.t.Fatalf("natstest: WaitReady with every node down")
	}
	deadline := time.Now().Add(ReadyTimeout)
	var last error
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		if last = probe(urls, len(urls), attempt); last == nil {
			return
		}
		pause(deadline, 100*time.Millisecond)
	}
	c.t.Fatalf("natstest: JetStream not ready after %v: %v (logs under %s)", ReadyTimeout, last, c.Nodes[0].Dir)
}

// probe creates and deletes a throwaway stream with the given replicas.
func probe(urls []string, replicas, attempt int) error {
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Timeout(2*time.Second), nats.NoReconnect())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	name := fmt.Sprintf("natstest_ready_%d_%d", os.Getpid(), attempt)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{"natstest.ready." + name}, Replicas: replicas, Storage: jetstream.MemoryStorage}); err != nil {
		return fmt.Errorf("create probe stream: %w", err)
	}
	if err := js.DeleteStream(ctx, name); err != nil {
		return fmt.Errorf("delete probe stream: %w", err)
	}
	return nil
}

// pause waits d or until the deadline, whichever is first: the bounded
// back-off between readiness probes (a poll, not a wait for a result).
func pause(deadline time.Time, d time.Duration) {
	if left := time.Until(deadline); left < d {
		d = left
	}
	if d > 0 {
		timer := time.NewTimer(d)
		<-timer.C
	}
}

func (c *Cluster) stopAll() {
	for _, n := range c.Nodes {
		n.kill()
	}
	if c.t.Failed() || os.Getenv("NATSTEST_LOGS") != "" {
		for _, n := range c.Nodes {
			b, err := os.ReadFile(n.LogFile())
			if err != nil {
				c.t.Logf("natstest: %s log: %v", n.Name, err)
				continue
			}
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			c.t.Logf("natstest: %s log (last %d lines):\n%s", n.Name, len(lines), strings.Join(lines, "\n"))
		}
	}
}

func (n *Node) confPath() string { return filepath.Join(n.Dir, "nats-server.conf") }

func (n *Node) config(routes []string, opts Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %q\nlisten: \"127.0.0.1:%d\"\n", n.Name, n.Port)
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n", filepath.Join(n.Dir, "js"))
	if opts.SyncInterval != "" {
		fmt.Fprintf(&b, "  sync_interval: %q\n", opts.SyncInterval)
	}
	b.WriteString("}\n")
	if n.ClusterPort != 0 {
		fmt.Fprintf(&b, "cluster {\n  name: \"natstest\"\n  listen: \"127.0.0.1:%d\"\n  routes: [\n", n.ClusterPort)
		for _, r := range routes {
			fmt.Fprintf(&b, "    %q\n", r)
		}
		b.WriteString("  ]\n}\n")
	}
	return b.String()
}

func (n *Node) up() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

func (n *Node) start(bin string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("already running (pid %d)", n.PID)
	}
	logf, err := os.OpenFile(n.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(bin, "-c", n.confPath())
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the test binary dies, the servers die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status of a killed test server carries nothing
		close(exited)
	}()
	n.cmd, n.exited, n.PID = cmd, exited, cmd.Process.Pid
	return nil
}

func (n *Node) kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return
	}
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil && !strings.Contains(err.Error(), "process already finished") {
		panic(fmt.Sprintf("natstest: kill %s (pid %d): %v", n.Name, n.PID, err))
	}
	<-n.exited
	n.cmd, n.exited, n.PID = nil, nil, 0
}

// freePorts reserves k distinct free loopback ports by listening on :0 and
// closing. A port can be taken by someone else before the server binds it;
// distinct ephemeral ports make that rare on a test machine.
func freePorts(t testing.TB, k int) []int {
	t.Helper()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, k)
	for len(ports) < k {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("natstest: free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}
