package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/internal/natstest"
	"github.com/tockd/tock/store/jslog"
)

// fakeMaster is a Handler that opens and closes shards at once and keeps
// a shared record of who serves what, to catch two servers of one shard.
type fakeMaster struct {
	name string
	rec  *record
	g    *Manager
}

type record struct {
	mu      sync.Mutex
	t       testing.TB
	serving map[int]string
	opened  map[int]time.Time // when each shard was last opened
	epochs  map[int]uint64
}

func (f *fakeMaster) Open(shard int, hint uint64) {
	f.rec.mu.Lock()
	if who, ok := f.rec.serving[shard]; ok && who != f.name {
		f.rec.t.Errorf("%s opens shard %d while %s serves it", f.name, shard, who)
	}
	epoch := max(hint, f.rec.epochs[shard]+1)
	f.rec.epochs[shard] = epoch
	f.rec.serving[shard] = f.name
	f.rec.opened[shard] = time.Now()
	f.rec.mu.Unlock()
	go f.g.Opened(shard, epoch, nil)
}

func (f *fakeMaster) Close(shard int, why string) {
	f.rec.mu.Lock()
	if f.rec.serving[shard] == f.name {
		delete(f.rec.serving, shard)
	}
	f.rec.mu.Unlock()
	go f.g.Closed(shard)
}

func (f *fakeMaster) Route(Route) {}

func (r *record) count(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, w := range r.serving {
		if w == name {
			n++
		}
	}
	return n
}

func (r *record) served() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.serving)
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, bounded by the deadline
	}
}

type natsHost struct {
	g      *Manager
	cancel context.CancelFunc
	done   chan struct{}
}

// Three hosts on a real 3-node NATS cluster split 16 shards; one host
// stops renewing (a crash: no release) and the other two serve its shards
// once its leases expire; a graceful stop hands over at once.
func TestNATSLeases(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a NATS cluster")
	}
	nc := natstest.Start(t, 3)
	eng, err := jslog.Connect(jslog.Config{URLs: nc.URLs(), Cluster: "t", Replicas: 3, Host: "test"}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const ttl = 2 * time.Second
	b, err := OpenBuckets(ctx, eng.JetStream(), "t", 3, ttl)
	if err != nil {
		t.Fatal(err)
	}
	rec := &record{t: t, serving: map[int]string{}, opened: map[int]time.Time{}, epochs: map[int]uint64{}}
	hosts := map[string]*natsHost{}
	start := func(name string) {
		fm := &fakeMaster{name: name, rec: rec}
		g := NewManager(Config{Host: name, Addr: name + ":1", Shards: 16, TTL: ttl}, b.Owners, b.Hosts, fm,
			hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn}))
		fm.g = g
		hctx, hcancel := context.WithCancel(context.Background())
		h := &natsHost{g: g, cancel: hcancel, done: make(chan struct{})}
		go func() { defer close(h.done); g.Run(hctx) }()
		hosts[name] = h
	}
	for _, n := range []string{"h1", "h2", "h3"} {
		start(n)
	}
	defer func() {
		for _, h := range hosts {
			h.cancel()
		}
		for _, h := range hosts {
			<-h.done
		}
	}()
	waitFor(t, 20*time.Second, "16 shards spread over 3 hosts", func() bool {
		return rec.served() == 16 && rec.count("h1") <= 6 && rec.count("h2") <= 6 && rec.count("h3") <= 6
	})

	// An observer of the owners bucket: when each expiry marker arrives.
	expiredAt := map[int]time.Time{}
	var expMu sync.Mutex
	octx, ocancel := context.WithCancel(context.Background())
	defer ocancel()
	och, err := b.Owners.Watch(octx)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for e := range och {
			if e != nil && e.Op == OpExpire {
				if n, ok := ParseShardKey(e.Key, 16); ok {
					expMu.Lock()
					expiredAt[n] = time.Now()
					expMu.Unlock()
				}
			}
		}
	}()

	// Crash h2: its loop stops, nothing is released.
	crashed := time.Now()
	hosts["h2"].cancel()
	<-hosts["h2"].done
	delete(hosts, "h2")
	rec.mu.Lock()
	var lost []int
	for n, w := range rec.serving {
		if w == "h2" {
			lost = append(lost, n)
			delete(rec.serving, n)
		}
	}
	rec.mu.Unlock()
	waitFor(t, 4*ttl, "h2's shards served by the others", func() bool { return rec.served() == 16 })
	var last time.Time
	rec.mu.Lock()
	for _, n := range lost {
		if rec.opened[n].After(last) {
			last = rec.opened[n]
		}
	}
	rec.mu.Unlock()
	t.Logf("crash of a host with %d shards: all served again %s after it stopped renewing (TTL %s)", len(lost), last.Sub(crashed).Round(time.Millisecond), ttl)
	var gaps []time.Duration
	rec.mu.Lock()
	expMu.Lock()
	for _, n := range lost {
		if at, ok := expiredAt[n]; ok {
			gaps = append(gaps, rec.opened[n].Sub(at))
		}
	}
	expMu.Unlock()
	rec.mu.Unlock()
	slices.Sort(gaps)
	if len(gaps) > 0 {
		t.Logf("expiry marker seen → shard opened elsewhere: p50 %s, max %s over %d shards", gaps[len(gaps)/2], gaps[len(gaps)-1], len(gaps))
	}
	waitFor(t, 10*time.Second, "8/8", func() bool { return rec.count("h1") == 8 && rec.count("h3") == 8 })

	// Graceful stop of h3: released, h1 takes every shard long before the TTL.
	stopped := time.Now()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := hosts["h3"].g.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	hosts["h3"].cancel()
	<-hosts["h3"].done
	delete(hosts, "h3")
	waitFor(t, 10*time.Second, "h1 serves all", func() bool { return rec.count("h1") == 16 })
	t.Logf("graceful stop: all 16 on h1 %s after Stop began", time.Since(stopped).Round(time.Millisecond))

	// A new host joins: h1 releases its surplus one by one.
	start("h4")
	waitFor(t, 30*time.Second, "8/8 after a join", func() bool { return rec.count("h1") == 8 && rec.count("h4") == 8 })
	v := hosts["h1"].g.View()
	if len(v.Members) != 2 || v.Target != 8 {
		t.Fatalf("h1's view: %+v", v)
	}
	// Routes are the leases; they may lag the fake master by a moment.
	waitFor(t, 5*time.Second, "h1's routes name every shard's server", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, r := range hosts["h1"].g.View().Routes {
			if r.Host != rec.serving[r.Shard] {
				return false
			}
		}
		return true
	})
}

// Hosts started together create the buckets together: nats-server may
// leave all but one concurrent creation of a new stream unanswered, and
// every host must still get its buckets (bounded attempts, retried).
func TestNATSOpenBucketsTogether(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a NATS cluster")
	}
	nc := natstest.Start(t, 3)
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func(i int) {
			eng, err := jslog.Connect(jslog.Config{URLs: nc.URLs(), Cluster: "t", Replicas: 3, Host: fmt.Sprintf("h%d", i)}, hclog.NewNullLogger())
			if err != nil {
				errs <- err
				return
			}
			defer eng.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			_, err = OpenBuckets(ctx, eng.JetStream(), "together", 3, 3*time.Second)
			t.Logf("host %d: buckets in %s", i, time.Since(start).Round(time.Millisecond))
			errs <- err
		}(i)
	}
	for i := 0; i < 3; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// The NATS server leading the lease bucket dies together with a tock
// host: renewals stall through NATS's election (4–9 s), every host may
// pass its local deadline, and then every shard is served again, never by
// two hosts at once (fakeMaster checks every Open).
func TestNATSLeaseLeaderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a NATS cluster")
	}
	nc := natstest.Start(t, 3)
	eng, err := jslog.Connect(jslog.Config{URLs: nc.URLs(), Cluster: "t", Replicas: 3, Host: "test"}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const ttl = 3 * time.Second
	if _, err := OpenBuckets(ctx, eng.JetStream(), "t", 3, ttl); err != nil {
		t.Fatal(err)
	}
	rec := &record{t: t, serving: map[int]string{}, opened: map[int]time.Time{}, epochs: map[int]uint64{}}
	type run struct {
		g      *Manager
		cancel context.CancelFunc
		done   chan struct{}
		eng    *jslog.Engine
	}
	runs := map[string]*run{}
	for _, name := range []string{"h1", "h2", "h3"} {
		// Each host its own connection, as each master has.
		e, err := jslog.Connect(jslog.Config{URLs: nc.URLs(), Cluster: "t", Replicas: 3, Host: name}, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		hb, err := OpenBuckets(ctx, e.JetStream(), "t", 3, ttl)
		if err != nil {
			t.Fatal(err)
		}
		fm := &fakeMaster{name: name, rec: rec}
		g := NewManager(Config{Host: name, Addr: name + ":1", Shards: 16, TTL: ttl}, hb.Owners, hb.Hosts, fm,
			hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Info}))
		fm.g = g
		hctx, hcancel := context.WithCancel(context.Background())
		r := &run{g: g, cancel: hcancel, done: make(chan struct{}), eng: e}
		go func() { defer close(r.done); g.Run(hctx) }()
		runs[name] = r
	}
	defer func() {
		// All at once: a host stopped while another runs is a crash the
		// other would take over from.
		for _, r := range runs {
			r.cancel()
		}
		for _, r := range runs {
			<-r.done
			r.eng.Close()
		}
	}()
	waitFor(t, 30*time.Second, "16 shards spread", func() bool {
		return rec.served() == 16 && rec.count("h1") <= 6 && rec.count("h2") <= 6 && rec.count("h3") <= 6
	})
	info, err := eng.JetStream().Stream(ctx, "KV_"+OwnersBucket("t"))
	if err != nil {
		t.Fatal(err)
	}
	leader := info.CachedInfo().Cluster.Leader
	victim := -1
	for i, n := range nc.Nodes {
		if n.Name == leader {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("lease bucket leader %q is not a node", leader)
	}
	killed := time.Now()
	nc.Kill(victim)
	runs["h2"].cancel()
	<-runs["h2"].done
	runs["h2"].eng.Close()
	delete(runs, "h2")
	rec.mu.Lock()
	for n, w := range rec.serving {
		if w == "h2" {
			delete(rec.serving, n)
		}
	}
	rec.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for !(rec.served() == 16 && rec.count("h1")+rec.count("h3") == 16) {
		if time.Now().After(deadline) {
			for name, r := range runs {
				v := r.g.View()
				t.Logf("%s: target %d synced %v members %d shards %+v", name, v.Target, v.Synced, len(v.Members), v.Shards)
				t.Logf("%s routes %+v", name, v.Routes)
			}
			t.Fatalf("every shard served by h1 and h3: not within 60s (served %d)", rec.served())
		}
		time.Sleep(20 * time.Millisecond) // polling, bounded by the deadline
	}
	t.Logf("lease bucket leader (%s) and a tock host killed together: every shard served again %s later", leader, time.Since(killed).Round(10*time.Millisecond))
}
