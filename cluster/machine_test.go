package cluster

import (
	"testing"
	"time"
)

// Three hosts started together split 16 shards without ever serving one
// shard twice.
func TestSimStartSplits(t *testing.T) {
	s := newSim(t, 16, "h1", "h2", "h3")
	s.runUntil(10*time.Second, "balanced", s.balanced)
	for name, c := range s.counts() {
		if c < 4 || c > 6 {
			t.Fatalf("%s serves %d shards, want 4 to 6: %v", name, c, s.counts())
		}
	}
	// And stays so: renewals keep every lease.
	opens := s.host("h1").opens + s.host("h2").opens + s.host("h3").opens
	s.run(20 * time.Second)
	if got := s.host("h1").opens + s.host("h2").opens + s.host("h3").opens; got != opens || !s.balanced() {
		t.Fatalf("shards moved while nothing happened: opens %d → %d, %s", opens, got, s.describe())
	}
}

// A host that dies: its leases expire and the others take its shards at
// once (no contention delay: the bucket was fine), within TTL + a little.
func TestSimHostDiesShardsMove(t *testing.T) {
	s := newSim(t, 16, "h1", "h2", "h3")
	s.runUntil(10*time.Second, "balanced", s.balanced)
	s.run(2 * time.Second)
	s.maxGap = 0
	s.kill("h2")
	took := s.runUntil(10*time.Second, "h2's shards served elsewhere", func() bool { return s.served() == 16 })
	if took > s.ttl+time.Second {
		t.Fatalf("takeover took %s, want ≤ TTL + 1 s", took)
	}
	s.runUntil(10*time.Second, "balanced over two", s.balanced)
	if c := s.counts(); c["h1"] != 8 || c["h3"] != 8 {
		t.Fatalf("counts %v, want 8/8", c)
	}
	t.Logf("takeover %s, longest unserved %s", took, s.maxGap)
}

// A host that joins gets its share by rebalancing, one shard at a time,
// never with two servers.
func TestSimJoinRebalances(t *testing.T) {
	s := newSim(t, 16, "h1", "h2")
	s.runUntil(10*time.Second, "balanced", s.balanced)
	s.addHost("h3")
	s.runUntil(30*time.Second, "balanced over three", func() bool { return s.balanced() && s.counts()["h3"] >= 4 })
}

// A graceful stop deletes the leases: the others take over without
// waiting for the TTL.
func TestSimStopReleases(t *testing.T) {
	s := newSim(t, 16, "h1", "h2", "h3")
	s.runUntil(10*time.Second, "balanced", s.balanced)
	s.maxGap = 0
	h := s.host("h2")
	s.do(h, h.m.Stop(s.now))
	s.runUntil(5*time.Second, "h2 done", h.m.Done)
	took := s.runUntil(5*time.Second, "all served", func() bool { return s.served() == 16 })
	s.kill("h2")
	if s.maxGap > s.ttl/2 {
		t.Fatalf("a shard went unserved for %s after a graceful stop, want well under the TTL", s.maxGap)
	}
	t.Logf("served again after %s; longest gap %s", took, s.maxGap)
	if len(s.members.cur) != 3 || s.members.live("h2") != nil {
		t.Fatalf("h2's member entry not deleted")
	}
}

// Two hosts racing for one shard: exactly one wins; the other does not
// serve it.
func TestSimRaceForOneShard(t *testing.T) {
	s := newSim(t, 1, "h1", "h2")
	s.runUntil(5*time.Second, "served", func() bool { return s.served() == 1 })
	s.run(5 * time.Second)
	if s.host("h1").opens+s.host("h2").opens != 1 {
		t.Fatalf("opens h1=%d h2=%d, want exactly one", s.host("h1").opens, s.host("h2").opens)
	}
}

// A bucket leader outage of 5 s: every renewal times out, every host passes
// its local deadline and stops serving, every key expires on recovery; the
// previous owners take their shards back (others wait), and never two
// serve one shard.
func TestSimBucketOutage(t *testing.T) {
	s := newSim(t, 16, "h1", "h2", "h3")
	s.runUntil(10*time.Second, "balanced", s.balanced)
	s.run(2 * time.Second)
	before := map[int]string{}
	for _, h := range s.hosts {
		for n := range h.serving {
			before[n] = h.name
		}
	}
	s.down = true
	s.runUntil(s.ttl, "every host stops serving", func() bool { return s.served() == 0 })
	s.run(5*time.Second - s.ttl)
	s.down = false
	took := s.runUntil(10*time.Second, "served again", func() bool { return s.served() == 16 })
	moved := 0
	for _, h := range s.hosts {
		for n := range h.serving {
			if before[n] != h.name {
				moved++
			}
		}
	}
	if moved > 0 {
		t.Fatalf("%d shards changed hosts after the outage, want 0 (previous owners first): %s", moved, s.describe())
	}
	t.Logf("served again %s after the outage ended", took)
}

// Ambiguous answers: Creates and Updates that land but answer with a
// timeout. The host finds its own write (Get) and keeps its leases.
func TestSimAmbiguousTimeouts(t *testing.T) {
	s := newSim(t, 4, "h1")
	// Every 4th write of each shard: never two in a row, which no lease
	// can survive (two 1 s timeouts exceed the 2.5 s deadline).
	n := map[int]int{}
	s.lose = func(h *host, a Action) bool {
		if a.Kind == ActCreate || a.Kind == ActUpdate {
			n[a.Shard]++
			return n[a.Shard]%4 == 0
		}
		return false
	}
	s.runUntil(10*time.Second, "served", func() bool { return s.served() == 4 })
	opens := s.host("h1").opens
	s.run(30 * time.Second)
	if got := s.host("h1").opens; got != opens || s.served() != 4 {
		t.Fatalf("lost leases to its own timed-out writes: opens %d → %d, %s", opens, got, s.describe())
	}
}

// An expiry during a renewal: the owner's requests for its shard are
// slow (4 s, over the TTL; its driver answers timeouts after 1 s and they
// land late). Its lease expires, the other host takes the shard, the late
// renewals fail, and the owner stopped serving before the other started
// (checked at every step).
func TestSimExpiryDuringRenewal(t *testing.T) {
	s := newSim(t, 1, "h1", "h2")
	s.runUntil(10*time.Second, "served", func() bool { return s.served() == 1 })
	owner, other := "h1", "h2"
	if !s.host("h1").serving[0] {
		owner, other = "h2", "h1"
	}
	slow := true
	s.delay = func(h *host, a Action) time.Duration {
		if slow && h.name == owner && a.Shard == 0 && a.Kind != ActMemberPut {
			return 4 * time.Second
		}
		return 0
	}
	s.runUntil(10*time.Second, "the other host serves shard 0", func() bool { return s.host(other).serving[0] })
	slow = false
	s.run(10 * time.Second)
	if s.host(owner).serving[0] || !s.host(other).serving[0] {
		t.Fatalf("after the expiry: %s", s.describe())
	}
}

// A CAS conflict: someone else rewrote the lease (an operator, a bug):
// the owner stops serving at once.
func TestSimForeignWriteLoses(t *testing.T) {
	s := newSim(t, 1, "h1")
	s.runUntil(5*time.Second, "served", func() bool { return s.served() == 1 })
	s.owners.write(ShardKey(0), LeaseValue{Host: "intruder", Epoch: 99, Addr: "x:1"}.Encode(), OpPut)
	s.runUntil(time.Second, "h1 stops", func() bool { return s.served() == 0 })
	// Once the foreign lease expires h1 takes it back above its epoch.
	s.runUntil(10*time.Second, "h1 again", func() bool { return s.served() == 1 })
	if s.fence[0] <= 99 {
		t.Fatalf("reopened at epoch %d, want above the foreign lease's 99", s.fence[0])
	}
}

// A fenced shard is released at once and its lease deleted; it is served
// again (here by the same host once its backoff ends: nobody else wants it).
func TestSimFencedReleases(t *testing.T) {
	s := newSim(t, 2, "h1", "h2")
	s.runUntil(10*time.Second, "balanced", s.balanced)
	h := s.host("h1")
	var n int
	for n = range h.serving {
		break
	}
	s.do(h, h.m.Fenced(s.now, n))
	if h.serving[n] {
		t.Fatal("still serving a fenced shard")
	}
	s.runUntil(time.Second, "lease deleted", func() bool { return s.owners.live(ShardKey(n)) == nil })
	s.runUntil(10*time.Second, "served again", func() bool { return s.served() == 2 })
}

// Routes: every host's routes name the owner of each shard.
func TestSimRoutes(t *testing.T) {
	s := newSim(t, 16, "h1", "h2", "h3")
	s.runUntil(10*time.Second, "balanced", s.balanced)
	s.run(time.Second)
	for _, h := range s.hosts {
		for n := 0; n < 16; n++ {
			r := h.routes[n]
			if !s.host(r.Host).serving[n] || r.Addr != r.Host+":5690" || r.Epoch != s.fence[n] {
				t.Fatalf("%s: route of shard %d is %+v, fence %d: %s", h.name, n, r, s.fence[n], s.describe())
			}
		}
	}
}

// A host restarted after a crash (same name) takes its old leases over at
// once instead of waiting for them to expire, and no shard moves.
func TestSimRestartDropsOldLeases(t *testing.T) {
	s := newSim(t, 4, "h1")
	s.runUntil(5*time.Second, "served", func() bool { return s.served() == 4 })
	s.kill("h1")
	h := s.restart("h1")
	took := s.runUntil(5*time.Second, "served again", func() bool { return len(h.serving) == 4 })
	if took >= s.ttl/2 {
		t.Fatalf("took %s, want well under the TTL", took)
	}
	for n := 0; n < 4; n++ {
		if s.fence[n] != 2 {
			t.Fatalf("shard %d fenced at epoch %d, want 2 (reopened once)", n, s.fence[n])
		}
	}
}

// Three hosts; one restarts (same name) within the TTL: it gets its own
// shards back and nothing else moves.
func TestSimRestartKeepsShards(t *testing.T) {
	s := newSim(t, 16, "h1", "h2", "h3")
	s.runUntil(10*time.Second, "balanced", s.balanced)
	before := map[int]string{}
	for _, h := range s.hosts {
		for n := range h.serving {
			before[n] = h.name
		}
	}
	s.kill("h2")
	s.run(time.Second)
	s.restart("h2")
	s.runUntil(5*time.Second, "all served", func() bool { return s.served() == 16 })
	s.run(5 * time.Second)
	for _, h := range s.hosts {
		for n := range h.serving {
			if before[n] != h.name {
				t.Fatalf("shard %d moved from %s to %s: %s", n, before[n], h.name, s.describe())
			}
		}
	}
}

// Stalled watches (NATS re-creates a watch's consumer through its meta
// leader, which may be electing for seconds): a host that dies is still
// replaced within about the TTL, because the others read leases whose
// renewals they stopped seeing.
func TestSimStalledWatchPolls(t *testing.T) {
	s := newSim(t, 16, "h1", "h2", "h3")
	s.runUntil(10*time.Second, "balanced", s.balanced)
	s.host("h1").stalled = true
	s.host("h3").stalled = true
	s.kill("h2")
	took := s.runUntil(10*time.Second, "h2's shards served", func() bool { return s.served() == 16 })
	if took > s.ttl+2*time.Second {
		t.Fatalf("took %s with stalled watches, want about the TTL", took)
	}
	s.host("h1").stalled = false
	s.host("h3").stalled = false
	s.run(5 * time.Second)
	if s.served() != 16 {
		t.Fatalf("after the watches caught up: %s", s.describe())
	}
	t.Logf("served again %s after the kill with stalled watches", took)
}

// A bucket outage whose expiry markers no watch shows (the watches were
// re-created after the markers were gone): every shard is served again
// anyway, each host reading the leases it stopped seeing renewed.
func TestSimOutageMarkersMissed(t *testing.T) {
	s := newSim(t, 16, "h1", "h2", "h3")
	s.runUntil(10*time.Second, "balanced", s.balanced)
	for _, h := range s.hosts {
		h.dropping = true
	}
	s.down = true
	s.run(5 * time.Second)
	s.down = false
	s.run(1500 * time.Millisecond)
	for _, h := range s.hosts {
		h.dropping = false
	}
	took := s.runUntil(15*time.Second, "served again", func() bool { return s.served() == 16 })
	t.Logf("served again %s after the watches came back", took)
}

// A shard reopened at a higher epoch on this host (its worker was
// replaced) shows the new epoch in its lease, and so in every route.
func TestSimReopenedEpochInLease(t *testing.T) {
	s := newSim(t, 1, "h1", "h2")
	s.runUntil(5*time.Second, "served", func() bool { return s.served() == 1 })
	owner := s.host("h1")
	if !owner.serving[0] {
		owner = s.host("h2")
	}
	s.do(owner, owner.m.Reopened(s.now, 0, 99))
	s.runUntil(time.Second, "epoch 99 in every route", func() bool {
		return s.host("h1").routes[0].Epoch == 99 && s.host("h2").routes[0].Epoch == 99
	})
}
