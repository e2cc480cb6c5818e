package e2e

// The scale-out harness: three nats-server processes (internal/natstest)
// and three tock hosts, each a real `tock serve -c hN.toml` (a master and
// its workers) with persistence = "jetstream", on loopback ports of their
// own. A host is killed as a machine dies: SIGKILL of the master and every
// process under it at once; a restart reuses its config, ports and data
// dir. See docs/scale-out.md, "Testing it".

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go/jetstream"

	tockcluster "github.com/tockd/tock/cluster"
	"github.com/tockd/tock/internal/natstest"
	"github.com/tockd/tock/master"
	"github.com/tockd/tock/store/jslog"
)

// Scale-out cluster shape: the three hosts over 16 shards.
const (
	soShards   = 16
	soHosts    = 3
	soCluster  = "e2e"
	soLeaseTTL = 3 * time.Second
)

// soHost is one tock host: a master and its workers.
type soHost struct {
	name    string // host_name, "h1"..
	netns   string // the network namespace it runs in ("" = the test's)
	dir     string
	cfgPath string
	client  string // the line-protocol address
	http    string
	peer    string // jetstream.advertise

	mu     sync.Mutex
	gen    int // incremented by every start; TOCK_E2E_HOST is name.gGEN
	cmd    *exec.Cmd
	exited chan struct{}
	logs   *syncBuffer // this generation's output
	all    *syncBuffer // every generation's output, for failure reports
	up     bool        // started and not killed
}

// soClusterT is the NATS cluster and the tock hosts on it.
type soClusterT struct {
	t                      testing.TB
	dir                    string
	ranLog                 string            // where the shell rules of the tests log executions
	nats                   *natstest.Cluster // nil in the network-namespace variant
	urls                   []string          // the NATS servers
	tlsCA, tlsCert, tlsKey string            // the test's TLS to NATS, when set
	hosts                  []*soHost
	eng                    *jslog.Engine // the test's own connection: lease bucket, offline reads
	owners                 jetstream.KeyValue
}

// soPorts are the ports freePort handed out in this run.
var soPorts = struct {
	sync.Mutex
	used map[int]bool
}{used: map[int]bool{}}

// freePort returns a loopback port that was free a moment ago, below the
// kernel's ephemeral range (32768 and up), so that no outgoing connection
// (a NATS client's, a peer link's) takes it before the host binds it.
func freePort(t testing.TB) int {
	t.Helper()
	soPorts.Lock()
	defer soPorts.Unlock()
	for range 1000 {
		p := 20000 + rand.IntN(12000)
		if soPorts.used[p] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		ln.Close()
		soPorts.used[p] = true
		return p
	}
	t.Fatal("no free port below the ephemeral range")
	return 0
}

// soHostConfig is host h's tock.toml.
func soHostConfig(h *soHost, urls []string, extra string) string {
	quoted := make([]string, len(urls))
	for i, u := range urls {
		quoted[i] = fmt.Sprintf("%q", u)
	}
	level := "info"
	if l := os.Getenv("TOCK_SCALEOUT_LOG"); l != "" {
		level = l // "debug" for a post-mortem with TOCK_SCALEOUT_KEEP
	}
	return fmt.Sprintf(`[log]
level = %q
[controller]
listen = %q
[database]
data_dir = %q
persistence = "jetstream"
framerate = 200
[cluster]
workers = 2
shards = %d
worker_check_interval = "200ms"
worker_boot_timeout = "20s"
worker_shutdown_timeout = "10s"
[http]
listen = %q
[jetstream]
urls = [%s]
cluster_name = %q
replicas = 3
host_name = %q
advertise = %q
lease_ttl = %q
%s`, level, h.client, filepath.Join(h.dir, "data"), soShards, h.http, strings.Join(quoted, ", "),
		soCluster, h.name, h.peer, soLeaseTTL.String(), extra)
}

// startScaleOut starts three nats-server processes and three tock hosts,
// and waits until the shards are spread and every host serves every shard.
// extra is appended to every host's config.
func startScaleOut(t testing.TB, extra string) *soClusterT {
	t.Helper()
	c := &soClusterT{t: t, dir: t.TempDir()}
	c.nats = natstest.Start(t, 3)
	c.boot(c.nats.URLs(), extra, func(i int) (ns, ip string) { return "", "127.0.0.1" })
	return c
}

// boot connects the test to NATS at urls and starts the three hosts;
// place says where host i runs: its network namespace ("" = this one) and
// the address its listeners bind.
func (c *soClusterT) boot(urls []string, extra string, place func(i int) (ns, ip string)) {
	t := c.t
	t.Helper()
	c.ranLog = filepath.Join(c.dir, "ran.log")
	c.urls = urls
	eng, err := jslog.Connect(jslog.Config{URLs: urls, Cluster: soCluster, Replicas: 3, Host: "e2e-verifier",
		TLSCA: c.tlsCA, TLSCert: c.tlsCert, TLSKey: c.tlsKey}, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("connect to NATS: %v", err)
	}
	c.eng = eng
	t.Cleanup(eng.Close)
	for i := range soHosts {
		ns, ip := place(i)
		port := func() int {
			if ns != "" {
				return 5678 + 2*i // a namespace of its own: fixed ports are free
			}
			return freePort(t)
		}
		h := &soHost{
			name:   fmt.Sprintf("h%d", i+1),
			netns:  ns,
			dir:    filepath.Join(c.dir, fmt.Sprintf("h%d", i+1)),
			client: fmt.Sprintf("%s:%d", ip, port()),
			http:   fmt.Sprintf("%s:%d", ip, port()+100),
			peer:   fmt.Sprintf("%s:%d", ip, port()+200),
			all:    &syncBuffer{},
		}
		if err := os.MkdirAll(h.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		h.cfgPath = filepath.Join(h.dir, "tock.toml")
		if err := os.WriteFile(h.cfgPath, []byte(soHostConfig(h, urls, extra)), 0o644); err != nil {
			t.Fatal(err)
		}
		c.hosts = append(c.hosts, h)
	}
	t.Cleanup(c.cleanup)
	// Start them together: the first one up must not wait for the others
	// to be balanced against.
	for _, h := range c.hosts {
		c.launch(h)
	}
	for _, h := range c.hosts {
		c.waitReady(h)
	}
	c.waitServing(90 * time.Second)
}

// launch starts h's master; waitReady waits for its ready line.
func (c *soClusterT) launch(h *soHost) {
	c.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gen++
	h.logs = &syncBuffer{}
	fmt.Fprintf(h.all, "=== %s generation %d started %s\n", h.name, h.gen, time.Now().UTC().Format("15:04:05.000"))
	h.cmd = exec.Command(tockBin, "serve", "-c", h.cfgPath)
	if h.netns != "" {
		// ip execs tock in the namespace: the pid is the master's.
		h.cmd = exec.Command("ip", "netns", "exec", h.netns, tockBin, "serve", "-c", h.cfgPath)
	}
	h.cmd.Dir = h.dir
	h.cmd.Env = append(os.Environ(), fmt.Sprintf("TOCK_E2E_HOST=%s.g%d", h.name, h.gen))
	w := teeWriter{h.logs, h.all}
	h.cmd.Stdout, h.cmd.Stderr = w, w
	// Its own group: a ^C of the test run does not reach it first.
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := h.cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", h.name, err)
	}
	exited := make(chan struct{})
	h.exited = exited
	cmd := h.cmd
	go func() {
		cmd.Wait()
		close(exited)
	}()
	h.up = true
}

func (c *soClusterT) waitReady(h *soHost) {
	c.t.Helper()
	h.mu.Lock()
	logs, exited := h.logs, h.exited
	h.mu.Unlock()
	waitFor(c.t, 90*time.Second, h.name+" ready", func() bool {
		select {
		case <-exited:
			c.t.Fatalf("%s exited at start:\n%s", h.name, tail(logs.String(), 80))
		default:
		}
		return readyRE.MatchString(logs.String())
	})
}

// teeWriter writes to both buffers.
type teeWriter struct{ a, b *syncBuffer }

func (w teeWriter) Write(p []byte) (int, error) {
	w.a.Write(p)
	return w.b.Write(p)
}

// liveHosts are the hosts started and not killed.
func (c *soClusterT) liveHosts() []*soHost {
	var out []*soHost
	for _, h := range c.hosts {
		h.mu.Lock()
		if h.up {
			out = append(out, h)
		}
		h.mu.Unlock()
	}
	return out
}

// addrsExcept lists the client addresses of the live hosts other than skip.
func (c *soClusterT) addrsExcept(skip ...*soHost) []string {
	var out []string
	for _, h := range c.liveHosts() {
		if !slices.Contains(skip, h) {
			out = append(out, h.client)
		}
	}
	return out
}

// hostTree is pid and every process below it (workers, runners' children).
func hostTree(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var p int
		if _, err := fmt.Sscanf(e.Name(), "%d", &p); err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		var ppid int
		if len(f) > 1 {
			fmt.Sscanf(f[1], "%d", &ppid)
		}
		children[ppid] = append(children[ppid], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// kill crashes host h: SIGKILL of the master and every process under it,
// sent together, the master's group included. It returns when the master
// has been reaped and nothing of the host is left.
func (c *soClusterT) kill(h *soHost) time.Time {
	c.t.Helper()
	h.mu.Lock()
	pid, exited := h.cmd.Process.Pid, h.exited
	h.up = false
	h.mu.Unlock()
	tree := hostTree(pid)
	// Stop them all first, so that no process of the host acts on another
	// one's death before it dies itself; then kill.
	for _, p := range tree {
		syscall.Kill(p, syscall.SIGSTOP)
	}
	at := time.Now()
	syscall.Kill(-pid, syscall.SIGKILL)
	for _, p := range tree {
		syscall.Kill(p, syscall.SIGKILL)
	}
	fmt.Fprintf(h.all, "=== %s killed %s\n", h.name, at.UTC().Format("15:04:05.000"))
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		c.t.Fatalf("%s: master %d not reaped 30s after SIGKILL", h.name, pid)
	}
	waitFor(c.t, 30*time.Second, h.name+"'s processes to be gone", func() bool {
		for _, p := range tree[1:] {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p)); err == nil && !isZombie(string(b)) {
				return false
			}
		}
		return true
	})
	return at
}

// restart starts a killed host again (same config, ports and data dir) and
// waits for its ready line.
func (c *soClusterT) restart(h *soHost) {
	c.t.Helper()
	c.launch(h)
	c.waitReady(h)
}

func (c *soClusterT) cleanup() {
	for _, h := range c.hosts {
		h.mu.Lock()
		cmd, exited := h.cmd, h.exited
		h.mu.Unlock()
		if cmd == nil {
			continue
		}
		select {
		case <-exited:
		default:
			cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, h := range c.hosts {
		h.mu.Lock()
		cmd, exited := h.cmd, h.exited
		h.mu.Unlock()
		if cmd == nil {
			continue
		}
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			for _, p := range hostTree(cmd.Process.Pid) {
				syscall.Kill(p, syscall.SIGKILL)
			}
			<-exited
		}
		for _, p := range hostTree(cmd.Process.Pid)[1:] {
			syscall.Kill(p, syscall.SIGKILL) // a leftover worker; ESRCH when gone
		}
		if c.t.Failed() {
			c.t.Logf("%s logs:\n%s", h.name, tail(h.all.String(), 150))
		}
	}
	if keep := os.Getenv("TOCK_SCALEOUT_KEEP"); keep != "" {
		// Every host's whole log and the ran log, for a failure's post-mortem.
		d := filepath.Join(keep, strings.ReplaceAll(c.t.Name(), "/", "_"))
		os.MkdirAll(d, 0o755)
		for _, h := range c.hosts {
			os.WriteFile(filepath.Join(d, h.name+".log"), []byte(h.all.String()), 0o644)
		}
		logs, _ := filepath.Glob(filepath.Join(c.dir, "n*", "nats-server.log"))
		if c.nats != nil {
			for _, n := range c.nats.Nodes {
				logs = append(logs, n.LogFile())
			}
		}
		logs = append(logs, c.ranLog)
		for i, l := range logs {
			if b, err := os.ReadFile(l); err == nil {
				os.WriteFile(filepath.Join(d, fmt.Sprintf("%d-%s", i, filepath.Base(l))), b, 0o644)
			}
		}
	}
	if c.t.Failed() && c.nats != nil {
		for _, n := range c.nats.Nodes {
			b, _ := os.ReadFile(n.LogFile())
			c.t.Logf("nats-server %s log:\n%s", n.Name, tail(string(b), 60))
		}
	}
}

// soLease is a lease's value in the owners bucket (docs/scale-out.md).
type soLease struct {
	Host  string `json:"host"`
	Epoch uint64 `json:"epoch"`
	Addr  string `json:"addr"`
}

// leases reads the owners bucket: shard → lease, for the shards that have
// one.
func (c *soClusterT) leases() (map[int]soLease, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c.owners == nil {
		kv, err := c.eng.JetStream().KeyValue(ctx, tockcluster.OwnersBucket(soCluster))
		if err != nil {
			return nil, fmt.Errorf("owners bucket: %w", err)
		}
		c.owners = kv
	}
	out := map[int]soLease{}
	for s := range soShards {
		e, err := c.owners.Get(ctx, tockcluster.ShardKey(s))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("lease of shard %d: %w", s, err)
		}
		var l soLease
		if err := json.Unmarshal(e.Value(), &l); err != nil {
			return nil, fmt.Errorf("lease of shard %d: %q: %w", s, e.Value(), err)
		}
		out[s] = l
	}
	return out, nil
}

// shardsOf lists the shards leased to host.
func shardsOf(ls map[int]soLease, host string) []int {
	var out []int
	for s, l := range ls {
		if l.Host == host {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// spread describes the leases per host, e.g. "h1=[0 3 ...] h2=[...]".
func spread(ls map[int]soLease) string {
	byHost := map[string][]int{}
	for s, l := range ls {
		byHost[l.Host] = append(byHost[l.Host], s)
	}
	var parts []string
	for _, h := range slices.Sorted(maps.Keys(byHost)) {
		slices.Sort(byHost[h])
		parts = append(parts, fmt.Sprintf("%s=%v", h, byHost[h]))
	}
	if n := soShards - len(ls); n > 0 {
		parts = append(parts, fmt.Sprintf("unowned=%d", n))
	}
	return strings.Join(parts, " ")
}

// balanced: every shard leased to a live host, none holding more than
// ⌈shards/live⌉, every live host holding one.
func (c *soClusterT) balanced(ls map[int]soLease) bool {
	live := c.liveHosts()
	if len(ls) != soShards || len(live) == 0 {
		return false
	}
	most := (soShards + len(live) - 1) / len(live)
	for _, h := range live {
		if n := len(shardsOf(ls, h.name)); n == 0 || n > most {
			return false
		}
	}
	for _, l := range ls {
		if !slices.ContainsFunc(live, func(h *soHost) bool { return h.name == l.Host }) {
			return false
		}
	}
	return true
}

// keyOnShard is the n-th job id with prefix that hashes to shard.
func keyOnShard(prefix string, shard, n int) string {
	for i := 0; ; i++ {
		k := fmt.Sprintf("%s%d", prefix, i)
		if master.ShardOf(k, soShards) == shard {
			if n == 0 {
				return k
			}
			n--
		}
	}
}

// waitServing waits until the leases are balanced over the live hosts and
// every live host answers a GET for every shard (not "shard
// unavailable"): routes are known everywhere.
func (c *soClusterT) waitServing(d time.Duration) {
	c.t.Helper()
	start := time.Now()
	var last string
	waitForWhy(c.t, d, "shards spread and served by every host", func() (bool, string) {
		ls, err := c.leases()
		if err != nil {
			return false, err.Error()
		}
		last = spread(ls)
		if !c.balanced(ls) {
			return false, last
		}
		for _, h := range c.liveHosts() {
			if why := c.servesAll(h); why != "" {
				return false, last + "; " + why
			}
		}
		return true, last
	})
	c.t.Logf("serving after %s: %s", time.Since(start).Round(time.Millisecond), last)
}

// waitForWhy is waitFor whose condition also says why it does not hold
// yet; the last reason is in the failure.
func waitForWhy(t testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last: %s", d, what, why)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not a wait for an event
	}
}

// servesAll asks h for a key on every shard; it returns "" when every
// answer is a real one, else what was wrong.
func (c *soClusterT) servesAll(h *soHost) string {
	rc := dialNoT(h.client)
	if rc == nil {
		return h.name + ": cannot connect"
	}
	defer rc.close()
	for s := range soShards {
		got := rc.doWithin(fmt.Sprintf("w%d GET %s", s, keyOnShard("ready.", s, 0)), 3*time.Second)
		if got != fmt.Sprintf("w%d ERROR not found", s) {
			return fmt.Sprintf("%s shard %d: %q", h.name, s, got)
		}
	}
	return ""
}

// host returns the host named name.
func (c *soClusterT) host(name string) *soHost {
	for _, h := range c.hosts {
		if h.name == name {
			return h
		}
	}
	c.t.Fatalf("no host %q", name)
	return nil
}
