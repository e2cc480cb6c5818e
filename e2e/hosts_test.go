package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/config"
	"github.com/tockd/tock/internal/natstest"
	"github.com/tockd/tock/master"
	"github.com/tockd/tock/store"
	"github.com/tockd/tock/store/jslog"
)

// hostConfig is host name of a JetStream cluster of 16 shards on nc.
func hostConfig(t *testing.T, dir string, nc *natstest.Cluster, cluster, name string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	advertise := l.Addr().String()
	l.Close()
	urls := make([]string, len(nc.URLs()))
	for i, u := range nc.URLs() {
		urls[i] = fmt.Sprintf("%q", u)
	}
	return fmt.Sprintf(`[log]
level = "debug"
[controller]
listen = "127.0.0.1:0"
[database]
data_dir = %q
framerate = 200
persistence = "jetstream"
[cluster]
workers = 2
shards = 16
worker_check_interval = "200ms"
worker_boot_timeout = "30s"
worker_shutdown_timeout = "10s"
[http]
listen = "127.0.0.1:0"
[jetstream]
urls = [%s]
cluster_name = %q
replicas = 3
host_name = %q
advertise = %q
lease_ttl = "3s"
`, filepath.Join(dir, "data"), strings.Join(urls, ", "), cluster, name, advertise)
}

type testHost struct {
	name string
	dir  string
	c    *cluster
	cc   *controlConn
}

func (h *testHost) view() *master.ClusterStats {
	var hr master.HostsReply
	h.cc.expect(http.MethodGet, "/hosts", "", http.StatusOK, &hr)
	return hr.Cluster
}

// served are the shards h serves now (lease held, open on a worker).
func (h *testHost) served() []int {
	var out []int
	for _, o := range h.view().Owned {
		if o.State == "serving" && o.Served {
			out = append(out, o.Shard)
		}
	}
	return out
}

// tryServed is served, or false while h's control socket does not answer
// (a hot restart).
func (h *testHost) tryServed() ([]int, bool) {
	resp, err := h.cc.hc.Get(h.cc.base + "/hosts")
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	var hr master.HostsReply
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&hr) != nil || hr.Cluster == nil {
		return nil, false
	}
	var out []int
	for _, o := range hr.Cluster.Owned {
		if o.State == "serving" && o.Served {
			out = append(out, o.Shard)
		}
	}
	return out, true
}

// servedBy maps each shard served by one of hosts to its host; ok is false
// if two serve one shard.
func servedBy(hosts []*testHost) (map[int]*testHost, bool) {
	by := map[int]*testHost{}
	for _, h := range hosts {
		for _, n := range h.served() {
			if by[n] != nil {
				return by, false
			}
			by[n] = h
		}
	}
	return by, true
}

// idsOn returns n job ids of shards in shards.
func idsOn(prefix string, shards []int, n int) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		id := fmt.Sprintf("%s.%d", prefix, i)
		if slices.Contains(shards, master.ShardOf(id, 16)) {
			out = append(out, id)
		}
	}
	return out
}

// TestHosts_Leases: three tock hosts on a 3-node NATS cluster split the
// 16 shards by leases (never two serving one shard); kill -9 of a host
// (master and workers) moves its shards to the other two once its leases
// expire, with every acknowledged SET readable there; a rule set through
// one host reaches the others; a graceful stop hands its shards over at
// once, without waiting for the lease TTL; a hot restart keeps a host's
// shards on it; a phased restart of the last
// host keeps serving every shard.
func TestHosts_Leases(t *testing.T) {
	nc := natstest.Start(t, 3)
	var hosts []*testHost
	for _, name := range []string{"h1", "h2", "h3"} {
		dir := t.TempDir()
		h := &testHost{name: name, dir: dir}
		h.c = startCluster(t, dir, hostConfig(t, dir, nc, "hosts", name))
		h.cc = unixControl(t, dir)
		hosts = append(hosts, h)
	}
	waitFor(t, 60*time.Second, "16 shards spread over 3 hosts", func() bool {
		by, ok := servedBy(hosts)
		if !ok {
			t.Fatalf("two hosts serve one shard: %v", by)
		}
		for _, h := range hosts {
			if n := len(h.served()); n > 6 {
				return false
			}
		}
		return len(by) == 16
	})
	for _, h := range hosts {
		v := h.view()
		if len(v.Hosts) != 3 || v.Target != 6 || !v.Synced {
			t.Fatalf("%s's view: %+v", h.name, v)
		}
	}

	// A hot restart of h3 (the master re-executes itself): its new image
	// takes its leases over, so no shard moves to another host.
	mine := hosts[2].served()
	hosts[2].cc.expect(http.MethodPost, "/restart", "", http.StatusOK, nil)
	waitFor(t, 30*time.Second, "h3 back with its shards", func() bool {
		got, ok := hosts[2].tryServed()
		return ok && slices.Equal(got, mine)
	})
	for _, h := range hosts[:2] {
		for _, n := range h.served() {
			if slices.Contains(mine, n) {
				t.Fatalf("shard %d moved to %s during h3's hot restart", n, h.name)
			}
		}
	}

	// Acknowledged SETs on h1's shards, through h1.
	victim := hosts[0]
	ids := idsOn("ack", victim.served(), 100)
	cl := dial(t, victim.c.addr)
	var lines []string
	for i, id := range ids {
		lines = append(lines, fmt.Sprintf("s%d SET %s %d", i, id, 4102444800000000000+int64(i)))
	}
	cl.send(lines...)
	for i := range ids {
		if got, want := cl.line(), fmt.Sprintf("s%d OK", i); got != want {
			t.Fatalf("SET %d: %q, want %q", i, got, want)
		}
	}
	// A rule set on h2 reaches h3.
	cl2 := dial(t, hosts[1].c.addr)
	cl2.expect("r1 RULE SET rule.a ack. shell true", "r1 OK")
	cl3 := dial(t, hosts[2].c.addr)
	waitFor(t, 10*time.Second, "the rule on h3", func() bool {
		body, end := cl3.list("l1", "l1 LISTRULES")
		return end == "l1 OK" && len(body) == 1 && strings.Contains(body[0], "rule.a")
	})

	// kill -9 of h1: master and workers at once.
	pids := append(workerPIDs(t, victim.c.cmd.Process.Pid), victim.c.cmd.Process.Pid)
	killed := time.Now()
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	<-victim.c.exited
	rest := hosts[1:]
	waitFor(t, 30*time.Second, "h1's shards served by h2 and h3", func() bool {
		by, ok := servedBy(rest)
		if !ok {
			t.Fatalf("two hosts serve one shard: %v", by)
		}
		return len(by) == 16
	})
	t.Logf("kill -9 of a host: its shards served elsewhere %s after the kill (lease_ttl 3s)", time.Since(killed).Round(10*time.Millisecond))
	by, _ := servedBy(rest)
	clients := map[*testHost]*client{hosts[1]: cl2, hosts[2]: cl3}
	for i, id := range ids {
		h := by[master.ShardOf(id, 16)]
		want := fmt.Sprintf("g%d OK planned %d", i, 4102444800000000000+int64(i))
		if got := clients[h].do(fmt.Sprintf("g%d GET %s", i, id)); got != want {
			t.Fatalf("acknowledged SET lost after the takeover: GET %s on %s: %q, want %q", id, h.name, got, want)
		}
	}
	// And through one host for all of them: the others' are forwarded.
	for i, id := range ids {
		want := fmt.Sprintf("f%d OK planned %d", i, 4102444800000000000+int64(i))
		if got := cl3.do(fmt.Sprintf("f%d GET %s", i, id)); got != want {
			t.Fatalf("GET %s through h3: %q, want %q", id, got, want)
		}
	}
	waitFor(t, 30*time.Second, "8/8", func() bool { return len(hosts[1].served()) == 8 && len(hosts[2].served()) == 8 })

	// Graceful stop of h2: released, h3 takes every shard well within the TTL.
	stopped := time.Now()
	hosts[1].c.cmd.Process.Signal(syscall.SIGTERM)
	waitFor(t, 30*time.Second, "h3 serves all 16", func() bool { return len(hosts[2].served()) == 16 })
	took := time.Since(stopped)
	t.Logf("graceful stop: the other host serves all 16 shards %s after SIGTERM", took.Round(10*time.Millisecond))
	if err := hosts[1].c.stop(); err != nil {
		t.Fatalf("h2 exit: %v", err)
	}
	// A phased restart within the host moves its leased shards between its
	// workers as on a single host.
	hosts[2].cc.expect(http.MethodPost, "/phased-restart", "", http.StatusOK, nil)
	waitFor(t, 60*time.Second, "the phased restart to finish", func() bool {
		var st master.Stats
		hosts[2].cc.expect(http.MethodGet, "/stats", "", http.StatusOK, &st)
		return st.Phase == 1 && !st.PhasedRestart.InProgress && st.OldWorkers == 0 && len(hosts[2].served()) == 16
	})
	if got := cl3.do("p1 GET " + ids[0]); !strings.HasPrefix(got, "p1 OK planned") {
		t.Fatalf("after the phased restart: GET %s: %q", ids[0], got)
	}
	// Scaling within the host: a worker more, every shard still served.
	hosts[2].cc.expect(http.MethodPost, "/workers", `{"delta":1}`, http.StatusOK, nil)
	waitFor(t, 60*time.Second, "3 workers serving every shard", func() bool {
		var st master.Stats
		hosts[2].cc.expect(http.MethodGet, "/stats", "", http.StatusOK, &st)
		return st.BootedWorkers == 3 && !st.PhasedRestart.InProgress && len(hosts[2].served()) == 16
	})
	// /varz keeps nats-server's shape and adds the host view as "hosts".
	m := regexp.MustCompile(`tock is ready: .*http=(\S+)`).FindStringSubmatch(hosts[2].c.logs.String())
	if m == nil {
		t.Fatal("no HTTP address in h3's ready line")
	}
	resp, err := http.Get("http://" + m[1] + "/varz")
	if err != nil {
		t.Fatal(err)
	}
	var varz map[string]json.RawMessage
	err = json.NewDecoder(resp.Body).Decode(&varz)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"server_id", "connections", "in_msgs", "hosts"} {
		if _, ok := varz[k]; !ok {
			t.Fatalf("/varz has no %q", k)
		}
	}
	if _, ok := varz["cluster"]; ok {
		t.Fatalf("/varz has a \"cluster\" key: that is nats-server's routes object")
	}
	// The stats tree and /varz carry the host view.
	var st map[string]json.RawMessage
	hosts[2].cc.expect(http.MethodGet, "/stats", "", http.StatusOK, &st)
	if _, ok := st["cluster"]; !ok {
		t.Fatalf("/stats has no cluster object: %s", st)
	}
	var hz master.Health
	hosts[2].cc.expect(http.MethodGet, "/healthz", "", http.StatusOK, &hz)
	if hz.Status != "ok" || hz.Cluster == nil || len(hz.Cluster.Owned) != 16 {
		t.Fatalf("/healthz: %+v", hz)
	}
}

// TestHosts_ContribConfigs: the README's three-host configs are valid and
// give each host its own name, ports and data dir.
func TestHosts_ContribConfigs(t *testing.T) {
	seen := map[string]string{}
	for _, n := range []string{"h1", "h2", "h3"} {
		path := filepath.Join("..", "contrib", "scaleout", n+".toml")
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if cfg.Database.Persistence != config.PersistenceJetStream || cfg.JetStream.HostName != n {
			t.Fatalf("%s: persistence %q, host_name %q", path, cfg.Database.Persistence, cfg.JetStream.HostName)
		}
		if cfg.HTTP.Listen == nil {
			t.Fatalf("%s: no [http] listen", path)
		}
		for _, v := range []string{cfg.Controller.Listen, *cfg.HTTP.Listen, cfg.JetStream.Advertise, cfg.Database.DataDir} {
			if other, dup := seen[v]; dup {
				t.Fatalf("%s and %s both use %s", other, n, v)
			}
			seen[v] = n
		}
	}
}

// TestHosts_FencedShardIsGivenUp: another writer fences a shard that a
// host serves (as a host that took it over would). The host's next write
// to it is refused by the stream and not acknowledged, the host gives the
// shard up at once (worker → Status.Fenced → lease released), and serves
// it again only after opening it above the other writer's epoch; every
// SET acknowledged before the fence is still there.
func TestHosts_FencedShardIsGivenUp(t *testing.T) {
	nc := natstest.Start(t, 3)
	dir := t.TempDir()
	h := &testHost{name: "h1", dir: dir}
	h.c = startCluster(t, dir, hostConfig(t, dir, nc, "fence", "h1"))
	h.cc = unixControl(t, dir)
	waitFor(t, 60*time.Second, "16 shards served", func() bool { return len(h.served()) == 16 })
	const shard = 5
	ids := idsOn("f", []int{shard}, 3)
	cl := dial(t, h.c.addr)
	cl.expect("s0 SET "+ids[0]+" 4102444800000000000", "s0 OK")

	// The rogue writer: fences shard 5 at a high epoch.
	eng, err := jslog.Connect(jslog.Config{URLs: nc.URLs(), Cluster: "fence", Replicas: 3, Host: "rogue"}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sl, opened, err := eng.OpenShard(ctx, shard, 1000, store.NewJobs())
	if err != nil {
		t.Fatal(err)
	}
	if err := sl.Close(); err != nil {
		t.Fatal(err)
	}
	// The host's next write to the shard is refused, not acknowledged.
	fenced := time.Now()
	if got := cl.do("s1 SET " + ids[1] + " 4102444800000000001"); got == "s1 OK" {
		t.Fatalf("a SET after another writer's fence was acknowledged")
	} else {
		t.Logf("SET after the fence: %q after %s", got, time.Since(fenced).Round(time.Millisecond))
	}
	// It gives the shard up and takes it back above the rogue's epoch.
	waitFor(t, 30*time.Second, "the shard served again above the rogue's epoch", func() bool {
		for _, o := range h.view().Owned {
			if o.Shard == shard && o.State == "serving" && o.Served && o.Epoch > opened.Epoch {
				return true
			}
		}
		return false
	})
	t.Logf("served again %s after the fence", time.Since(fenced).Round(time.Millisecond))
	if !strings.Contains(h.c.logs.String(), "shard fenced by another host") {
		t.Fatalf("no log line for the fenced shard")
	}
	cl.expect("g0 GET "+ids[0], "g0 OK planned 4102444800000000000")
	cl.expect("s2 SET "+ids[2]+" 4102444800000000002", "s2 OK")
}
