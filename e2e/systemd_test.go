package e2e

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// tock under systemd (docs/operations.md, "systemd"): sd_notify to a fake
// NOTIFY_SOCKET the test reads, and socket activation with listeners the
// test opens and passes as fds 3.. with LISTEN_FDS.

// startClusterWith is startCluster with setup run on the cluster before
// the process starts.
func startClusterWith(t *testing.T, dir, cfg string, setup func(*cluster)) *cluster {
	t.Helper()
	path := filepath.Join(dir, "tock.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, dir: dir, cfgPath: path, bin: tockBin}
	setup(c)
	c.start()
	t.Cleanup(c.cleanup)
	return c
}

// notifySocket is a fake systemd notify socket: every datagram it gets.
type notifySocket struct {
	path string
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	// A short path: sun_path holds 108 bytes.
	dir, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ns := &notifySocket{path: filepath.Join(dir, "notify")}
	ns.conn, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: ns.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := ns.conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			ns.mu.Lock()
			ns.msgs = append(ns.msgs, string(buf[:n]))
			ns.mu.Unlock()
		}
	}()
	return ns
}

func (ns *notifySocket) messages() []string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return append([]string(nil), ns.msgs...)
}

// find returns the index of the first message from index from on that
// holds state, or -1.
func (ns *notifySocket) find(from int, state string) int {
	msgs := ns.messages()
	for i := from; i < len(msgs); i++ {
		for _, l := range strings.Split(msgs[i], "\n") {
			if l == state {
				return i
			}
		}
	}
	return -1
}

// waitState waits for a message holding state from index from on and
// returns its index.
func (ns *notifySocket) waitState(t *testing.T, from int, state string) int {
	t.Helper()
	i := -1
	waitFor(t, 60*time.Second, state+" on the notify socket", func() bool {
		i = ns.find(from, state)
		return i >= 0
	})
	return i
}

// TestSystemd_Notify: READY=1 once every worker booted, with STATUS=;
// WATCHDOG=1 while running; RELOADING=1 then READY=1 around a phased
// restart; STOPPING=1 on a stop.
func TestSystemd_Notify(t *testing.T) {
	ns := newNotifySocket(t)
	dir := t.TempDir()
	c := startClusterWith(t, dir, clusterConfig(dir, ""), func(c *cluster) {
		c.env = []string{"NOTIFY_SOCKET=" + ns.path, "WATCHDOG_USEC=200000"}
	})
	ready := ns.waitState(t, 0, "READY=1")
	msg := ns.messages()[ready]
	if !strings.Contains(msg, "STATUS=2 workers, 2 booted, 0 old, phase 0") {
		t.Fatalf("READY message %q has no STATUS with the workers", msg)
	}
	if i := ns.find(0, "RELOADING=1"); i >= 0 && i < ready {
		t.Fatalf("RELOADING before READY: %q", ns.messages())
	}
	ns.waitState(t, ready+1, "WATCHDOG=1")

	cc := unixControl(t, dir)
	before := cc.stats()
	cc.expectOK("/phased-restart", "")
	reloading := ns.waitState(t, ready+1, "RELOADING=1")
	readyAgain := ns.waitState(t, reloading+1, "READY=1")
	// READY=1 comes when every shard is on a new worker; old workers may
	// still be draining their executions.
	if st := cc.stats(); st.Phase != before.Phase+1 || st.PhasedRestart.InProgress {
		t.Fatalf("READY=1 after the rollout, but stats say phase %d, %+v", st.Phase, st.PhasedRestart)
	}
	if msg := ns.messages()[readyAgain]; !strings.Contains(msg, "phase 1") {
		t.Fatalf("READY after the phased restart: %q", msg)
	}
	ns.waitState(t, readyAgain+1, "WATCHDOG=1")

	if err := c.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	stopping := ns.waitState(t, readyAgain+1, "STOPPING=1")
	for _, m := range ns.messages()[stopping+1:] {
		if strings.Contains(m, "READY=1") {
			t.Fatalf("READY after STOPPING: %q", ns.messages())
		}
	}
}

// TestSystemd_NoWatchdogForAnotherPID: WATCHDOG_PID naming another
// process turns the watchdog off, as sd_watchdog_enabled does.
func TestSystemd_NoWatchdogForAnotherPID(t *testing.T) {
	ns := newNotifySocket(t)
	dir := t.TempDir()
	c := startClusterWith(t, dir, clusterConfig(dir, ""), func(c *cluster) {
		c.env = []string{"NOTIFY_SOCKET=" + ns.path, "WATCHDOG_USEC=20000", "WATCHDOG_PID=1"}
	})
	ns.waitState(t, 0, "READY=1")
	// A few heartbeat rounds (worker_check_interval 200ms) pass with the
	// cluster serving; then the stop.
	cc := unixControl(t, dir)
	waitFor(t, 10*time.Second, "heartbeats", func() bool {
		st := cc.stats()
		return len(st.WorkerStatus) == 2 && st.WorkerStatus[0].LastStatus.UptimeNs > int64(time.Second)
	})
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	ns.waitState(t, 0, "STOPPING=1")
	if i := ns.find(0, "WATCHDOG=1"); i >= 0 {
		t.Fatalf("WATCHDOG=1 sent though WATCHDOG_PID is another process: %q", ns.messages())
	}
}

// listenerFile opens a listener and returns it as a file to pass on.
func listenerFile(t *testing.T, network, addr string) (*os.File, net.Addr) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false) // the file is "systemd's"
	}
	f, err := ln.(interface{ File() (*os.File, error) }).File()
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr()
	ln.Close()
	t.Cleanup(func() { f.Close() })
	return f, a
}

// TestSystemd_SocketActivation: the client and control listeners come from
// fds 3 and 4 (LISTEN_FDS, LISTEN_FDNAMES); tock serves them instead of
// binding its own, makes no control.sock, keeps both across a hot restart
// and leaves the socket file alone when it stops.
func TestSystemd_SocketActivation(t *testing.T) {
	sockDir, err := os.MkdirTemp("", "sa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	ctlPath := filepath.Join(sockDir, "control.sock")
	clientF, clientAddr := listenerFile(t, "tcp", "127.0.0.1:0")
	ctlF, _ := listenerFile(t, "unix", ctlPath)
	if err := os.Chmod(ctlPath, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := startClusterWith(t, dir, clusterConfig(dir, ""), func(c *cluster) {
		c.env = []string{"LISTEN_FDS=2", "LISTEN_FDNAMES=client:control"}
		c.extra = []*os.File{clientF, ctlF}
		c.listenPID = true
	})
	if c.addr != clientAddr.String() {
		t.Fatalf("tock listens on %s, not on the passed listener %s", c.addr, clientAddr)
	}
	cl := dial(t, c.addr)
	cl.expect("s1 SET sa.job 4102444800000000000", "s1 OK")
	if _, err := os.Lstat(controlSocket(dir)); !os.IsNotExist(err) {
		t.Fatalf("tock made %s though systemd passed a control socket: %v", controlSocket(dir), err)
	}
	cc := unixControlAt(t, ctlPath)
	before := cc.stats()
	if before.BootedWorkers != 2 {
		t.Fatalf("stats over the passed control socket: %+v", before)
	}
	// Workers do not inherit the activation variables.
	for _, pid := range childPIDs(t, c) {
		env, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(env), "LISTEN_FDS=") {
			t.Fatalf("worker %d inherited LISTEN_FDS", pid)
		}
	}

	// A hot restart keeps both passed listeners.
	readies := strings.Count(c.logs.String(), "tock is ready")
	cc.expectOK("/restart", "")
	waitFor(t, 60*time.Second, "the restarted master", func() bool {
		return strings.Count(c.logs.String(), "tock is ready") == readies+1
	})
	waitFor(t, 30*time.Second, "stats after the restart", func() bool {
		code, _ := cc.do("GET", "/stats", "")
		return code == 200 && cc.stats().BootedWorkers == 2
	})
	if after := cc.stats(); after.PID != before.PID || !after.StartedAt.After(before.StartedAt) {
		t.Fatalf("restart: pid %d→%d", before.PID, after.PID)
	}
	dial(t, clientAddr.String()).expect("s2 GET sa.job", "s2 OK planned 4102444800000000000")
	if _, err := os.Lstat(controlSocket(dir)); !os.IsNotExist(err) {
		t.Fatalf("the restarted master made %s: %v", controlSocket(dir), err)
	}

	if err := c.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if fi, err := os.Lstat(ctlPath); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("tock removed systemd's control socket file: %v", err)
	}
}

// TestSystemd_BadActivation: a passed fd with a name tock does not know is
// a clear startup error.
func TestSystemd_BadActivation(t *testing.T) {
	f, _ := listenerFile(t, "tcp", "127.0.0.1:0")
	dir := t.TempDir()
	path := filepath.Join(dir, "tock.toml")
	if err := os.WriteFile(path, []byte(clusterConfig(dir, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" serve -c "$1"`, tockBin, path)
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_FDNAMES=metrics")
	cmd.ExtraFiles = []*os.File{f}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `fd 3 is named "metrics"; want client, control or http`) {
		t.Fatalf("bad activation: %v\n%s", err, out)
	}
}

// unixControlAt talks to the control socket at path.
func unixControlAt(t *testing.T, path string) *controlConn {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &controlConn{t: t, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}, base: "http://tock"}
}
