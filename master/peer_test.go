package master

import (
	"bufio"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/config"
	"github.com/tockd/tock/ipc"
)

// Forwarding between masters (docs/scale-out.md, "Forwarding"), tested
// in-process: each test host is a Master over tagged fake workers, with
// its peer listener and client listener on loopback, and the shard table
// set by hand (SetRemote/SetUnowned/SetOwner), as the lease manager would.
// A fake peer (fakePeer) plays a remote master over a real TCP socket when
// a test scripts the remote side's failures.

// testPeerTimings are short bounds so the failure tests run quickly.
var testPeerTimings = peerTimings{
	dial: 2 * time.Second, ping: 50 * time.Millisecond, deadAfter: 400 * time.Millisecond,
	request: time.Second, fanout: 500 * time.Millisecond,
	backoffMin: 10 * time.Millisecond, backoffMax: 100 * time.Millisecond, healthyUpTo: time.Second,
}

const testShards = 4

type testHost struct {
	t    testing.TB
	name string
	m    *Master
	fs   *fakeSpawner
	ln   net.Listener
}

func startTestHost(t testing.TB, name string, mutate func(*config.Config)) *testHost {
	t.Helper()
	cfg := config.Default()
	cfg.Database.Persistence = config.PersistenceMemory
	cfg.Database.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Cluster.Workers, cfg.Cluster.Shards = 2, testShards
	cfg.Cluster.WorkerBootTimeout = config.Duration{Duration: 3 * time.Second} // also the hold bound
	cfg.Cluster.WorkerShutdownTimeout = config.Duration{Duration: 200 * time.Millisecond}
	cfg.JetStream.HostName = name
	cfg.JetStream.Advertise = "127.0.0.1:0"
	if mutate != nil {
		mutate(&cfg)
	}
	lw := &hostLogWriter{t: t}
	t.Cleanup(lw.stop) // registered first, so it runs after the host has stopped
	log := hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Debug, Output: lw})
	m, err := New(cfg, Options{Exe: "/nonexistent"}, log)
	if err != nil {
		t.Fatal(err)
	}
	fs := newFakeSpawner(t)
	fs.tag, fs.shards = name, testShards
	m.spawner = fs
	m.peers.timings = testPeerTimings
	if err := m.bootWorkers(); err != nil {
		t.Fatal(err)
	}
	if err := m.startPeers(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.listener = ln
	m.wg.Add(2)
	go m.acceptLoop()
	go func() {
		defer m.wg.Done()
		m.every(20*time.Millisecond, m.router.Expire) // the hold bounds, as housekeeping does
	}()
	h := &testHost{t: t, name: name, m: m, fs: fs, ln: ln}
	t.Cleanup(func() {
		m.Stop()
		ln.Close()
		m.conns.closeAll()
		m.wg.Wait()
		m.stopPeers(0)
		m.stopWorkers(0)
		m.unlockDataDir()
		fs.check()
	})
	return h
}

// hostLogWriter logs into the test until it ends: a link reader that
// notices its link closed after the cleanup must not log into a finished
// test.
type hostLogWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *hostLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *hostLogWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// route sends shards to other's master.
func (h *testHost) route(other *testHost, shards ...int) {
	p := h.m.Peer(other.name, other.m.PeerAddr().String())
	for _, s := range shards {
		h.m.router.SetRemote(s, p)
	}
}

// do routes one request through h's router and waits for its reply.
func (h *testHost) do(req ipc.Request) ipc.Reply {
	h.t.Helper()
	got := make(chan ipc.Reply, 1)
	h.m.router.Route(&pending{req: req, deliver: func(r ipc.Reply) { got <- r }})
	select {
	case r := <-got:
		return r
	case <-time.After(20 * time.Second):
		h.t.Fatalf("%s: no reply to %+v", h.name, req)
		return ipc.Reply{}
	}
}

// whoServes answers which host's worker serves shard s, asked through h.
func (h *testHost) whoServes(s int) string {
	h.t.Helper()
	r := h.do(ipc.Request{Op: ipc.OpGet, Shard: s, Key: fmt.Sprintf("who.%d.%d", s, time.Now().UnixNano())})
	name, _, _ := strings.Cut(strings.TrimPrefix(r.Err, "served by "), "#")
	return name
}

// keyIn returns a job id of shard s.
func keyIn(prefix string, s int) string {
	for i := 0; ; i++ {
		if k := fmt.Sprintf("%s%d", prefix, i); ShardOf(k, testShards) == s {
			return k
		}
	}
}

// client is a line-protocol connection to a test host.
type client struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func (h *testHost) dial() *client {
	h.t.Helper()
	c, err := net.Dial("tcp", h.ln.Addr().String())
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &client{t: h.t, c: c, r: bufio.NewReader(c)}
}

func (c *client) send(lines ...string) {
	c.t.Helper()
	if _, err := c.c.Write([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read reply: %v", err)
	}
	return strings.TrimSuffix(l, "\n")
}

// until reads lines up to and including the one with prefix end.
func (c *client) until(end string) []string {
	c.t.Helper()
	var out []string
	for {
		l := c.line()
		out = append(out, l)
		if strings.HasPrefix(l, end) {
			return out
		}
	}
}

// TestPeer_ForwardsToTheOwner attacks "clients may connect to any host":
// requests for a shard another host owns are served by that host's
// workers, both ways, and a pipelining client gets its replies in request
// order whichever host served each; QUERY and STAT cover every host.
func TestPeer_ForwardsToTheOwner(t *testing.T) {
	h1, h2 := startTestHost(t, "h1", nil), startTestHost(t, "h2", nil)
	h1.route(h2, 2, 3)
	h2.route(h1, 0, 1)
	for s := 0; s < testShards; s++ {
		want := "h1"
		if s >= 2 {
			want = "h2"
		}
		for _, via := range []*testHost{h1, h2} {
			if got := via.whoServes(s); got != want {
				t.Errorf("shard %d asked through %s: served by %q, want %q", s, via.name, got, want)
			}
		}
	}
	// Pipelined SETs and GETs of jobs in every shard through h1, then a
	// QUERY and a STAT: one reply per line, in order.
	c := h1.dial()
	var lines, want []string
	for i := 0; i < 40; i++ {
		k := keyIn(fmt.Sprintf("job.%d.", i), i%testShards)
		lines = append(lines, fmt.Sprintf("s%d SET %s %d", i, k, 1000+i), fmt.Sprintf("g%d GET %s", i, k))
		want = append(want, fmt.Sprintf("s%d OK", i), fmt.Sprintf("g%d OK planned %d", i, 1000+i))
	}
	c.send(lines...)
	for i, w := range want {
		if got := c.line(); got != w {
			t.Fatalf("reply %d: %q, want %q", i, got, w)
		}
	}
	c.send("q QUERY job.")
	if got := c.until("q OK"); len(got) != 41 {
		t.Errorf("QUERY through h1: %d lines, want 40 jobs and OK: %q", len(got), got)
	}
	// The same QUERY through h2 sees the same jobs.
	c2 := h2.dial()
	c2.send("q QUERY job.")
	if got := c2.until("q OK"); len(got) != 41 {
		t.Errorf("QUERY through h2: %d lines, want 41", len(got))
	}
	if n := h2.m.ForwardedServed(); n < 40 {
		t.Errorf("h2 counts %d requests forwarded to it, want at least h1's 40", n)
	}
	if st := h1.m.PeerStatuses(); len(st) != 1 || st[0].Answered < 40 || st[0].State != string(peerConnected) {
		t.Errorf("h1's view of h2: %+v", st)
	}
	c.send("st STAT")
	stat := c.until("st OK")
	if !containsLine(stat, "st jobs_total 40") {
		t.Errorf("STAT through h1 does not count both hosts' jobs: %q", stat)
	}
	// Each host's workers got only their own shards' jobs.
	for _, h := range []*testHost{h1, h2} {
		for _, fw := range h.fs.spawned {
			for _, r := range fw.requests() {
				if r.Op == ipc.OpSet && (ShardOf(r.Key, testShards) >= 2) != (h.name == "h2") {
					t.Errorf("%s's worker got a SET of %s (shard %d)", h.name, r.Key, ShardOf(r.Key, testShards))
				}
			}
		}
	}
}

func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

// TestPeer_NoSecondHop attacks "never forwarded twice": two hosts that
// each believe the other owns a shard do not bounce a request between
// them; the sender holds it, answers it once its route is right, and
// fails it as `shard unavailable` when no route change comes in time.
func TestPeer_NoSecondHop(t *testing.T) {
	h1, h2 := startTestHost(t, "h1", nil), startTestHost(t, "h2", nil)
	h1.route(h2, 2)
	h2.route(h1, 2) // h2's route is stale: it thinks h1 owns shard 2
	got := make(chan ipc.Reply, 1)
	h1.m.router.Route(&pending{req: ipc.Request{Op: ipc.OpGet, Shard: 2, Key: "nobody"}, deliver: func(r ipc.Reply) { got <- r }})
	// h2 answers "not owned" and h1 keeps asking, at most every
	// notOwnedRetry: the request stays held at h1.
	waitUntil(t, "h2 refused the forwarded request", func() bool {
		return h1.m.router.Held() == 1 && h1.m.router.Owner(2) == nil
	})
	select {
	case r := <-got:
		t.Fatalf("answered while no host serves the shard: %+v", r)
	default:
	}
	// h2's route catches up: the shard is its own.
	h2.m.router.SetOwner([]int{2}, h2.fs.ownerOf(2).proc(h2.m))
	r := <-got
	if r.Err != "served by h2#"+fmt.Sprint(h2.fs.ownerOf(2).n) {
		t.Fatalf("after the route change: %+v, want served by h2", r)
	}
	// h1's own workers never saw it: it crossed one link, once.
	for _, fw := range h1.fs.spawned {
		for _, q := range fw.requests() {
			if q.Key == "nobody" {
				t.Errorf("h1's worker got the request back from h2: %+v", q)
			}
		}
	}

	// With no route change at all, the hold bound answers it.
	h2.route(h1, 3)
	h1.route(h2, 3)
	r = h1.do(ipc.Request{Op: ipc.OpGet, Shard: 3, Key: "nobody"})
	if r.Kind != ipc.KindError || r.Err != ErrShardUnavailable.Error() {
		t.Fatalf("a request no host serves: %+v, want ERROR shard unavailable", r)
	}
}

// proc returns the master's proc of a fake worker.
func (fw *fakeWorker) proc(m *Master) *proc {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.slots {
		if s.cur != nil && s.cur.pid == fw.Pid() {
			return s.cur
		}
	}
	return nil
}

// TestPeer_ForwardedRequestForAShardNotOwned attacks the receiving side:
// a request another master forwards for a shard this host does not own
// (remote here, or unowned during a takeover) is answered KindNotOwned,
// a shard that does not exist is an error, and a local shard is served.
func TestPeer_ForwardedRequestForAShardNotOwned(t *testing.T) {
	h2, h3 := startTestHost(t, "h2", nil), startTestHost(t, "h3", nil)
	h2.route(h3, 1)
	h2.m.router.SetUnowned(2)
	l := dialPeer(t, h2.m.PeerAddr().String(), ipc.PeerHello{Cluster: "tock", Host: "hx", Proto: ipc.ProtoVersion, PeerProto: ipc.PeerProto})
	for i, c := range []struct {
		shard int
		kind  ipc.ReplyKind
		err   string
	}{{0, ipc.KindError, "served by h2#"}, {1, ipc.KindNotOwned, ""}, {2, ipc.KindNotOwned, ""}, {99, ipc.KindError, "shard 99 does not exist"}} {
		seq := uint64(100 + i)
		if err := l.SendRequest(ipc.Request{Seq: seq, Op: ipc.OpGet, Shard: c.shard, Key: "k"}); err != nil {
			t.Fatal(err)
		}
		r := recvReply(t, l)
		if r.Seq != seq || r.Kind != c.kind || !strings.HasPrefix(r.Err, c.err) {
			t.Errorf("shard %d: %+v, want seq %d kind %d %q", c.shard, r, seq, c.kind, c.err)
		}
	}
	// h3 never saw the request for shard 1: no second hop.
	for _, fw := range h3.fs.spawned {
		if n := len(fw.requests()); n != 0 {
			t.Errorf("h3's worker got %d requests forwarded on by h2", n)
		}
	}
	// A request held while the shard was this host's, when the shard
	// moves away: answered "not owned", not sent on.
	h2.m.router.SetOwner([]int{0}, nil) // a local handoff: held
	if err := l.SendRequest(ipc.Request{Seq: 7, Op: ipc.OpGet, Shard: 0, Key: "k"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the forwarded request held", func() bool { return h2.m.router.Held() == 1 })
	h2.route(h3, 0)
	if r := recvReply(t, l); r.Seq != 7 || r.Kind != ipc.KindNotOwned {
		t.Errorf("held forwarded request after the shard moved away: %+v, want not owned", r)
	}
}

// dialPeer opens a peer link to addr as host hello.Host, handshake done.
func dialPeer(t *testing.T, addr string, hello ipc.PeerHello) *ipc.Link {
	t.Helper()
	l, welcome := dialPeerRaw(t, addr, hello)
	if welcome.Error != "" {
		t.Fatalf("handshake refused: %s", welcome.Error)
	}
	return l
}

func dialPeerRaw(t *testing.T, addr string, hello ipc.PeerHello) (*ipc.Link, ipc.PeerHello) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	l := ipc.NewLink(c)
	t.Cleanup(l.Abort)
	if err := l.SendJSON(ipc.TypePeerHello, hello); err != nil {
		t.Fatal(err)
	}
	f, err := l.Recv()
	if err != nil {
		t.Fatalf("no welcome: %v", err)
	}
	if f.Type != ipc.TypePeerWelcome {
		t.Fatalf("first frame %s, want peer-welcome", f.Type)
	}
	w, err := ipc.DecodePeerHello(f.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return l, w
}

// recvReply reads frames until a Reply (pings are skipped).
func recvReply(t *testing.T, l *ipc.Link) ipc.Reply {
	t.Helper()
	for {
		f, err := l.Recv()
		if err != nil {
			t.Fatalf("recv: %v", err)
		}
		if f.Type == ipc.TypePeerPing {
			continue
		}
		if f.Type != ipc.TypeReply {
			t.Fatalf("got %s, want a reply", f.Type)
		}
		r, err := ipc.DecodeReply(f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}

// TestPeer_HandshakeMismatch attacks the handshake: another cluster,
// another protocol version, a host name clash or a malformed hello are
// refused with a reason; a master dialing a mismatched host holds the
// shard's requests (then `shard unavailable`) and says why in its state.
func TestPeer_HandshakeMismatch(t *testing.T) {
	h2 := startTestHost(t, "h2", nil)
	addr := h2.m.PeerAddr().String()
	ok := ipc.PeerHello{Cluster: "tock", Host: "hx", Proto: ipc.ProtoVersion, PeerProto: ipc.PeerProto}
	for _, c := range []struct {
		name   string
		change func(*ipc.PeerHello)
		want   string
	}{
		{"cluster", func(h *ipc.PeerHello) { h.Cluster = "other" }, `in cluster "other"`},
		{"proto", func(h *ipc.PeerHello) { h.Proto++ }, "speaks ipc protocol"},
		{"peer proto", func(h *ipc.PeerHello) { h.PeerProto = 0 }, "peer protocol 0"},
		{"same host", func(h *ipc.PeerHello) { h.Host = "h2" }, "must be unique"},
	} {
		hello := ok
		c.change(&hello)
		_, w := dialPeerRaw(t, addr, hello)
		if !strings.Contains(w.Error, c.want) {
			t.Errorf("%s: refusal %q, want it to say %q", c.name, w.Error, c.want)
		}
	}
	// Not a hello at all: the link is closed.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	l := ipc.NewLink(conn)
	defer l.Abort()
	if err := l.SendRequest(ipc.Request{Seq: 1, Op: ipc.OpGet, Shard: 0, Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if f, err := l.Recv(); err == nil {
		w, err := ipc.DecodePeerHello(f.Payload)
		if f.Type != ipc.TypePeerWelcome || err != nil || !strings.Contains(w.Error, "not peer-hello") {
			t.Errorf("a request before the handshake got %s %+v %v, want a refusal", f.Type, w, err)
		}
	}

	// The dialing side: h1 of cluster "blue" routes to h2 of "tock".
	h1 := startTestHost(t, "h1", func(c *config.Config) { c.JetStream.ClusterName = "blue" })
	h1.route(h2, 1)
	p := h1.m.Peer("h2", "")
	waitUntil(t, "h1 gave up dialing h2", func() bool {
		return p.State() == string(peerBackoff) && strings.Contains(p.lastErrOr(nil).Error(), "cluster")
	})
	r := h1.do(ipc.Request{Op: ipc.OpGet, Shard: 1, Key: "k"})
	if r.Err != ErrShardUnavailable.Error() {
		t.Errorf("a request for a shard behind a refused link: %+v, want shard unavailable", r)
	}
}

// TestPeer_OutcomeGoesToTheOwner attacks Outcome forwarding: a result of
// an execution that finished on a host that no longer owns the shard
// reaches the owner host's worker, once; one forwarded to a host that does
// not own the shard is not sent on.
func TestPeer_OutcomeGoesToTheOwner(t *testing.T) {
	h1, h2 := startTestHost(t, "h1", nil), startTestHost(t, "h2", nil)
	h1.route(h2, 3)
	if got := h1.whoServes(3); got != "h2" {
		t.Fatalf("shard 3 served by %q", got)
	}
	o := ipc.Outcome{Shard: 3, JobID: "j", Execution: 7}
	h1.fs.ownerOf(3).send(ipc.TypeOutcome, o)
	owner := h2.fs.ownerOf(3)
	select {
	case got := <-owner.outcomes:
		if got.JobID != "j" || got.Execution != 7 {
			t.Fatalf("outcome %+v", got)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the outcome did not reach the owner host's worker")
	}
	// h2 itself does not own shard 2 (h3 does, for h2): an outcome h1
	// forwards to h2 for it stops there.
	h3 := startTestHost(t, "h3", nil)
	h2.route(h3, 2)
	h1.route(h2, 2)
	if !waitReady(h1, 2) {
		t.Fatal("h1's link to h2 is not up")
	}
	h1.fs.ownerOf(2).send(ipc.TypeOutcome, ipc.Outcome{Shard: 2, JobID: "k", Execution: 8})
	h1.fs.ownerOf(3).send(ipc.TypeOutcome, ipc.Outcome{Shard: 3, JobID: "after", Execution: 9})
	if got := <-owner.outcomes; got.JobID != "after" { // the link is FIFO: k came first
		t.Fatalf("outcome %+v, want the one sent after k", got)
	}
	for _, fw := range h3.fs.spawned {
		select {
		case o := <-fw.outcomes:
			t.Errorf("h3 got an outcome forwarded twice: %+v", o)
		default:
		}
	}
}

// waitReady waits until h routes shard s to a live owner.
func waitReady(h *testHost, s int) bool {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if h.m.router.Owner(s) != nil {
			return true
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	return false
}

// fakePeer is a remote master played by the test over a real TCP socket:
// it answers the handshake as host, then hands each link to the test.
type fakePeer struct {
	t     *testing.T
	host  string
	ln    net.Listener
	links chan *ipc.Link
}

func startFakePeer(t *testing.T, host string) *fakePeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fp := &fakePeer{t: t, host: host, ln: ln, links: make(chan *ipc.Link, 16)}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l := ipc.NewLink(c)
			t.Cleanup(l.Abort)
			f, err := l.Recv()
			if err != nil || f.Type != ipc.TypePeerHello {
				l.Abort()
				continue
			}
			if err := l.SendJSON(ipc.TypePeerWelcome, ipc.PeerHello{Cluster: "tock", Host: host, Proto: ipc.ProtoVersion, PeerProto: ipc.PeerProto}); err != nil {
				l.Abort()
				continue
			}
			fp.links <- l
		}
	}()
	return fp
}

// next waits for the next link the master dials.
func (fp *fakePeer) next() *ipc.Link {
	fp.t.Helper()
	select {
	case l := <-fp.links:
		return l
	case <-time.After(20 * time.Second):
		fp.t.Fatal("the master did not dial the fake peer")
		return nil
	}
}

// keepPinging makes a fake peer's link look alive until the test ends.
func keepPinging(t *testing.T, l *ipc.Link) {
	stop, done := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if l.PostJSON(ipc.TypePeerPing, struct{}{}) != nil {
					return
				}
			}
		}
	}()
}

// recvRequest reads frames until a Request (pings are skipped).
func recvRequest(t *testing.T, l *ipc.Link) ipc.Request {
	t.Helper()
	for {
		f, err := l.Recv()
		if err != nil {
			t.Fatalf("recv: %v", err)
		}
		if f.Type != ipc.TypeRequest {
			continue
		}
		r, err := ipc.DecodeRequest(f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}

// replies collects the replies of requests routed through a router.
type replies struct {
	mu  sync.Mutex
	got map[string][]ipc.Reply
	ch  chan struct{}
}

func newReplies() *replies {
	return &replies{got: map[string][]ipc.Reply{}, ch: make(chan struct{}, 1)}
}

func (rs *replies) route(r *Router, name string, req ipc.Request) {
	r.Route(&pending{req: req, deliver: func(rep ipc.Reply) {
		rs.mu.Lock()
		rs.got[name] = append(rs.got[name], rep)
		rs.mu.Unlock()
		select { // a wake-up for wait, which re-reads got: never blocks the router
		case rs.ch <- struct{}{}:
		default:
		}
	}})
}

func (rs *replies) wait(t *testing.T, name string) ipc.Reply {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		rs.mu.Lock()
		got := rs.got[name]
		rs.mu.Unlock()
		if len(got) > 0 {
			return got[0]
		}
		select {
		case <-rs.ch:
		case <-deadline:
			t.Fatalf("no reply to %s", name)
		}
	}
}

// once checks every request got exactly one reply.
func (rs *replies) once(t *testing.T) {
	t.Helper()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for name, got := range rs.got {
		if len(got) != 1 {
			t.Errorf("%s answered %d times", name, len(got))
		}
	}
}

// TestPeer_DiesMidRequest attacks "never lost, never delivered twice":
// the owner's link breaks with requests in flight; the SET and the GET
// are sent once more, marked Retried, on the redialed link, ahead of one
// sent meanwhile; the REMOVE fails (it may have been applied); when the
// link breaks again before answering, the retried ones fail instead of
// going round again.
func TestPeer_DiesMidRequest(t *testing.T) {
	h1 := startTestHost(t, "h1", nil)
	fp := startFakePeer(t, "h9")
	p := h1.m.Peer("h9", fp.ln.Addr().String())
	h1.m.router.SetRemote(1, p)
	l := fp.next()
	waitUntil(t, "shard 1 routed on the link", func() bool { return h1.m.router.Owner(1) != nil })
	rs := newReplies()
	rs.route(h1.m.router, "set", ipc.Request{Op: ipc.OpSet, Shard: 1, Key: "a", Execution: 5})
	rs.route(h1.m.router, "get", ipc.Request{Op: ipc.OpGet, Shard: 1, Key: "a"})
	rs.route(h1.m.router, "remove", ipc.Request{Op: ipc.OpRemove, Shard: 1, Key: "b"})
	for range 3 {
		if r := recvRequest(t, l); r.Retried {
			t.Fatalf("first send marked retried: %+v", r)
		}
	}
	l.Abort() // the peer dies without answering
	if r := rs.wait(t, "remove"); r.Kind != ipc.KindError || !strings.Contains(r.Err, "may or may not have been applied") ||
		!strings.Contains(r.Err, "h9") {
		t.Errorf("REMOVE on a dead link: %+v", r)
	}
	rs.route(h1.m.router, "later", ipc.Request{Op: ipc.OpSet, Shard: 1, Key: "a", Execution: 6})
	l = fp.next() // redialed
	var order []string
	for range 3 {
		r := recvRequest(t, l)
		order = append(order, fmt.Sprintf("%s/%d/%v", r.Op, r.Execution, r.Retried))
		if r.Op == ipc.OpGet {
			if err := l.SendReply(ipc.Reply{Seq: r.Seq, Kind: ipc.KindJob, Execution: 5}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if want := "set/5/true get/0/true set/6/false"; strings.Join(order, " ") != want {
		t.Errorf("after the redial: %s, want %s (retried ones first, marked)", strings.Join(order, " "), want)
	}
	if r := rs.wait(t, "get"); r.Kind != ipc.KindJob || r.Execution != 5 {
		t.Errorf("GET: %+v", r)
	}
	l.Abort() // dies again: the retried SET is not sent a third time
	if r := rs.wait(t, "set"); r.Kind != ipc.KindError || !strings.Contains(r.Err, "already being retried") {
		t.Errorf("SET lost twice: %+v", r)
	}
	l = fp.next()
	r := recvRequest(t, l) // the later SET, retried once
	if r.Execution != 6 || !r.Retried {
		t.Errorf("the later SET after the second break: %+v", r)
	}
	if err := l.SendReply(ipc.Reply{Seq: r.Seq, Kind: ipc.KindOK}); err != nil {
		t.Fatal(err)
	}
	if r := rs.wait(t, "later"); r.Kind != ipc.KindOK {
		t.Errorf("later: %+v", r)
	}
	rs.once(t)
}

// TestPeer_SlowPeer attacks the liveness bounds: a peer that sends
// nothing is declared dead after deadAfter, one that pings but leaves a
// request unanswered after the request bound; in both cases the request
// is retried on the next link instead of waiting forever, and a late
// answer on the old link is not delivered a second time.
func TestPeer_SlowPeer(t *testing.T) {
	h1 := startTestHost(t, "h1", nil)
	fp := startFakePeer(t, "h9")
	p := h1.m.Peer("h9", fp.ln.Addr().String())
	h1.m.router.SetRemote(2, p)
	silent := fp.next() // reads nothing, sends nothing
	rs := newReplies()
	rs.route(h1.m.router, "get", ipc.Request{Op: ipc.OpGet, Shard: 2, Key: "a"})
	pinging := fp.next() // the silent link was declared dead; this one pings
	keepPinging(t, pinging)
	first := recvRequest(t, pinging)
	if !first.Retried {
		t.Errorf("the GET resent after a dead link is not marked retried: %+v", first)
	}
	// Unanswered past the request bound: declared dead, and the GET,
	// already retried once, fails with a clear error.
	r := rs.wait(t, "get")
	if r.Kind != ipc.KindError || !strings.Contains(r.Err, "unanswered") {
		t.Errorf("GET on a link that never answers: %+v", r)
	}
	// A late answer on the dead link changes nothing.
	pinging.SendReply(ipc.Reply{Seq: first.Seq, Kind: ipc.KindOK}) // the link may be closed already: that is the point
	silent.SendReply(ipc.Reply{Seq: first.Seq, Kind: ipc.KindOK})
	fp.next()
	rs.once(t)
}

// TestPeer_ReplyAfterRouteChange attacks a request caught by a route
// change: it stays on the link it was sent on; when the old owner answers
// "not owned" it goes to the new owner and is answered there, once.
func TestPeer_ReplyAfterRouteChange(t *testing.T) {
	h1, h2 := startTestHost(t, "h1", nil), startTestHost(t, "h2", nil)
	fp := startFakePeer(t, "h9")
	h1.m.router.SetRemote(0, h1.m.Peer("h9", fp.ln.Addr().String()))
	l := fp.next()
	rs := newReplies()
	rs.route(h1.m.router, "set", ipc.Request{Op: ipc.OpSet, Shard: 0, Key: keyIn("moved.", 0), Execution: 11})
	req := recvRequest(t, l)
	h1.route(h2, 0) // the shard moved to h2 while h9 had the request
	if err := l.SendReply(ipc.Reply{Seq: req.Seq, Kind: ipc.KindNotOwned}); err != nil {
		t.Fatal(err)
	}
	if r := rs.wait(t, "set"); r.Kind != ipc.KindOK {
		t.Fatalf("SET after the route change: %+v", r)
	}
	if r := h2.do(ipc.Request{Op: ipc.OpGet, Shard: 0, Key: keyIn("moved.", 0)}); r.Execution != 11 {
		t.Errorf("the SET did not reach h2: %+v", r)
	}
	rs.once(t)
}

// TestPeer_StatFailsWhenAHostIsSilent attacks the fan-out bound: STAT
// through a host fails, naming the silent host, instead of leaving its
// jobs out.
func TestPeer_StatFailsWhenAHostIsSilent(t *testing.T) {
	h1 := startTestHost(t, "h1", nil)
	fp := startFakePeer(t, "h9")
	h1.m.router.SetRemote(3, h1.m.Peer("h9", fp.ln.Addr().String()))
	keepPinging(t, fp.next()) // alive, but never answers
	waitUntil(t, "shard 3 routed on the link", func() bool { return h1.m.router.Owner(3) != nil })
	c := h1.dial()
	c.send("st STAT")
	if got := c.line(); !strings.HasPrefix(got, "st ERROR host h9 did not answer STAT within") {
		t.Errorf("STAT with a silent host: %q", got)
	}
}

// TestPeer_LoopbackRule: without TLS only loopback addresses may link.
func TestPeer_LoopbackRule(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:1": true, "[::1]:1": true, "[::ffff:127.0.0.1]:1": true,
		"10.0.0.1:1": false, "[2001:db8::1]:1": false} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := isLoopback(a); got != want {
			t.Errorf("isLoopback(%s) = %v", addr, got)
		}
	}
}

// TestPeer_RouteChangeKeepsSetOrder attacks the order of one job's SETs
// across a route change: a SET in flight at the old owner when the shard
// moves, bounced "not owned", reaches the new owner before a later SET of
// the same job sent after the change, so the later one wins.
func TestPeer_RouteChangeKeepsSetOrder(t *testing.T) {
	h1, h2 := startTestHost(t, "h1", nil), startTestHost(t, "h2", nil)
	fp := startFakePeer(t, "h9")
	h1.m.router.SetRemote(0, h1.m.Peer("h9", fp.ln.Addr().String()))
	l := fp.next()
	keepPinging(t, l)
	waitUntil(t, "shard 0 routed on the link", func() bool { return h1.m.router.Owner(0) != nil })
	k := keyIn("order.", 0)
	rs := newReplies()
	rs.route(h1.m.router, "first", ipc.Request{Op: ipc.OpSet, Shard: 0, Key: k, Execution: 1})
	first := recvRequest(t, l)
	h1.route(h2, 0) // the shard moves while h9 has the first SET
	if h1.m.router.Owner(0) != nil {
		t.Fatal("the shard is not held while the old owner has a SET of it in flight")
	}
	rs.route(h1.m.router, "second", ipc.Request{Op: ipc.OpSet, Shard: 0, Key: k, Execution: 2})
	if err := l.SendReply(ipc.Reply{Seq: first.Seq, Kind: ipc.KindNotOwned}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"first", "second"} {
		if r := rs.wait(t, name); r.Kind != ipc.KindOK {
			t.Fatalf("%s SET: %+v", name, r)
		}
	}
	if r := h2.do(ipc.Request{Op: ipc.OpGet, Shard: 0, Key: k}); r.Execution != 2 {
		t.Errorf("after the move the job is at %d, want the later SET's 2", r.Execution)
	}
	rs.once(t)
	if n := h1.m.Peer("h9", "").drains.Load(); n != 0 {
		t.Errorf("drains left counted: %d", n)
	}
}

// TestPeer_IdleWhenNoShardRoutesToIt: a host no shard is routed to any
// more is not redialed after its link breaks (a host that left the
// cluster is not dialed forever); routing a shard to it again dials it.
func TestPeer_IdleWhenNoShardRoutesToIt(t *testing.T) {
	h1 := startTestHost(t, "h1", nil)
	fp := startFakePeer(t, "h9")
	p := h1.m.Peer("h9", fp.ln.Addr().String())
	h1.m.router.SetRemote(1, p)
	l := fp.next()
	waitUntil(t, "connected", func() bool { return p.State() == string(peerConnected) })
	if st := h1.m.PeerStatuses(); len(st) != 1 || st[0].Host != "h9" || len(st[0].Shards) != 1 || st[0].Shards[0] != 1 {
		t.Errorf("peer statuses: %+v", st)
	}
	h1.m.router.SetUnowned(1)
	l.Abort()
	waitUntil(t, "the unused peer idle", func() bool { return p.State() == string(peerIdle) })
	h1.m.router.SetRemote(1, p)
	fp.next() // dialed again
	waitUntil(t, "connected again", func() bool { return p.State() == string(peerConnected) })
}

// TestPeer_TakeoverAfterHostDies plays a takeover with three masters: h1
// forwards a stream of SETs for a shard to h3; h3 dies (its links break
// with requests in flight); the lease manager would mark the shard
// unowned, then route it to h2, which took it over. Every SET is answered
// exactly once, none is lost in between: those held or in flight at the
// break are answered by h2.
func TestPeer_TakeoverAfterHostDies(t *testing.T) {
	h1, h2, h3 := startTestHost(t, "h1", nil), startTestHost(t, "h2", nil), startTestHost(t, "h3", nil)
	h1.route(h3, 2)
	h2.route(h3, 2)
	if got := h1.whoServes(2); got != "h3" {
		t.Fatalf("shard 2 served by %q, want h3", got)
	}
	rs := newReplies()
	const n = 200
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("set%d", i)
		rs.route(h1.m.router, names[i], ipc.Request{Op: ipc.OpSet, Shard: 2, Key: keyIn(fmt.Sprintf("t%d.", i), 2), Execution: int64(i)})
		if i == n/2 {
			// h3 dies: its peer links break, its workers stop.
			h3.m.stopPeers(0)
			h3.m.stopWorkers(0)
			h1.m.router.SetUnowned(2) // its lease expired
		}
	}
	// h2 takes the shard over (its own route first, as its lease manager
	// acquires it), then h1 learns the new route.
	h2.m.router.SetOwner([]int{2}, h2.fs.ownerOf(2).proc(h2.m))
	h1.route(h2, 2)
	onH2 := 0
	for _, name := range names {
		r := rs.wait(t, name)
		switch {
		case r.Kind == ipc.KindOK:
		case r.Kind == ipc.KindError && strings.Contains(r.Err, "h3"):
			// a retried request lost a second time: said so, naming h3
		default:
			t.Errorf("%s: %+v", name, r)
		}
	}
	for _, fw := range h2.fs.spawned {
		for _, q := range fw.requests() {
			if q.Op == ipc.OpSet && strings.HasPrefix(q.Key, "t") {
				onH2++
			}
		}
	}
	if onH2 < n/2-1 {
		t.Errorf("h2 served %d of the SETs after the takeover, want at least the %d sent after h3 died", onH2, n/2-1)
	}
	rs.once(t)
}

func TestNotOwnedWait(t *testing.T) {
	for tries, want := range []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond,
		400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second} {
		if got := notOwnedWait(tries); got != want {
			t.Errorf("notOwnedWait(%d) = %s, want %s", tries, got, want)
		}
	}
	if got := notOwnedWait(1000); got != time.Second {
		t.Errorf("notOwnedWait(1000) = %s", got)
	}
}
