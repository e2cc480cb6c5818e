package cluster

import (
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"
)

// A deterministic simulation: a scripted fake bucket pair (owners, hosts)
// with TTL expiry and markers, hosts running Machines, and a fake shard
// log per shard that fences at max(hint, last fence + 1). Time is virtual
// and advances in steps; nothing sleeps.

var errTimeout = errors.New("fake: request timed out")

type fkEntry struct {
	Entry
	written time.Time
}

// fakeKV is one bucket.
type fakeKV struct {
	sim  *sim
	name string
	cur  map[string]*fkEntry
	log  []Entry // every revision, for watchers
	rev  uint64
	ttl  time.Duration
	// lastAge is the last expiry check (every 250 ms, as nats-server's).
	lastAge time.Time
}

func (kv *fakeKV) write(key string, value []byte, op Op) uint64 {
	kv.rev++
	e := &fkEntry{Entry: Entry{Key: key, Value: value, Revision: kv.rev, Op: op, Created: kv.sim.now}, written: kv.sim.now}
	kv.cur[key] = e
	kv.log = append(kv.log, e.Entry)
	return kv.rev
}

func (kv *fakeKV) live(key string) *fkEntry {
	if e := kv.cur[key]; e != nil && e.Op == OpPut {
		return e
	}
	return nil
}

func (kv *fakeKV) expire() {
	if kv.sim.now.Sub(kv.lastAge) < 250*time.Millisecond {
		return
	}
	kv.lastAge = kv.sim.now
	var keys []string
	for k, e := range kv.cur {
		if e.Op == OpPut && kv.sim.now.Sub(e.written) >= kv.ttl {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		kv.write(k, nil, OpExpire)
	}
}

// apply runs one request against the bucket.
func (kv *fakeKV) apply(a Action) Result {
	r := Result{ID: a.ID}
	cur := kv.cur[a.Key]
	switch a.Kind {
	case ActCreate:
		if kv.live(a.Key) != nil {
			r.Err = ErrConflict
			return r
		}
		r.Rev = kv.write(a.Key, a.Value, OpPut)
	case ActUpdate:
		if cur == nil || cur.Revision != a.Rev {
			r.Err = ErrConflict
			return r
		}
		r.Rev = kv.write(a.Key, a.Value, OpPut)
	case ActMemberPut:
		r.Rev = kv.write(a.Key, a.Value, OpPut)
	case ActDelete, ActMemberDelete:
		if a.Rev != 0 && (cur == nil || cur.Revision != a.Rev) {
			r.Err = ErrConflict
			return r
		}
		kv.write(a.Key, nil, OpDelete)
	case ActGet:
		e := kv.live(a.Key)
		if e == nil {
			r.Err = ErrNotFound
			return r
		}
		r.Entry = e.Entry
	}
	return r
}

type request struct {
	a       Action
	sent    time.Time
	applyAt time.Time
	// timedOut: the driver gave up on it (answered a timeout); it still
	// reaches the bucket later.
	timedOut bool
	kv       *fakeKV
	// lose: apply it but answer with a timeout (an ambiguous answer).
	lose bool
}

type answer struct {
	at time.Time
	r  Result
}

type masterReply struct {
	at     time.Time
	shard  int
	open   bool
	epoch  uint64
	failed bool
}

type host struct {
	name    string
	m       *Machine
	dead    bool
	reqs    []request
	answers []answer
	replies []masterReply
	watched map[*fakeKV]int // watch position in each bucket's log
	serving map[int]bool    // shards the fake master has open
	routes  map[int]Route
	opens   int
	// stalled: its watches deliver nothing (they catch up once unstalled).
	stalled bool
	// dropping: its watches lose what is written meanwhile (a watch
	// re-created after markers were gone).
	dropping bool
}

type sim struct {
	t       *testing.T
	now     time.Time
	ttl     time.Duration
	shards  int
	owners  *fakeKV
	members *fakeKV
	hosts   []*host
	// down: the buckets' leader is gone; requests time out.
	down bool
	// latency of every request; opTimeout is the driver's bound.
	latency, opTimeout, openDelay time.Duration
	// fence is each shard's last fence epoch (the stream's).
	fence []uint64
	// lose, when set, decides which requests are applied but answered
	// with a timeout.
	lose func(h *host, a Action) bool
	// delay, when set, adds latency to a request.
	delay func(h *host, a Action) time.Duration
	// servedSince: when a shard was last seen served by nobody.
	unservedAt map[int]time.Time
	maxGap     time.Duration
}

func newSim(t *testing.T, shards int, names ...string) *sim {
	s := &sim{t: t, now: time.Unix(1_000_000, 0), ttl: 3 * time.Second, shards: shards,
		latency: 2 * time.Millisecond, opTimeout: time.Second, openDelay: 30 * time.Millisecond,
		fence: make([]uint64, shards), unservedAt: map[int]time.Time{}}
	s.owners = &fakeKV{sim: s, name: "owners", cur: map[string]*fkEntry{}, ttl: s.ttl}
	s.members = &fakeKV{sim: s, name: "hosts", cur: map[string]*fkEntry{}, ttl: s.ttl}
	for _, n := range names {
		s.addHost(n)
	}
	return s
}

func (s *sim) addHost(name string) *host {
	h := &host{name: name, watched: map[*fakeKV]int{}, serving: map[int]bool{}, routes: map[int]Route{}}
	h.m = NewMachine(Config{Host: name, Addr: name + ":5690", Shards: s.shards, TTL: s.ttl}, s.now)
	s.hosts = append(s.hosts, h)
	// The watch starts with the buckets' current values.
	for _, kv := range []*fakeKV{s.owners, s.members} {
		b := Owners
		if kv == s.members {
			b = Hosts
		}
		s.do(h, h.m.WatchRestarted(s.now, b))
		keys := make([]string, 0, len(kv.cur))
		for k := range kv.cur {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if e := kv.cur[k]; e.Op == OpPut {
				s.do(h, h.m.Seen(s.now, b, e.Entry))
			}
		}
		h.watched[kv] = len(kv.log)
		s.do(h, h.m.WatchSynced(s.now, b))
	}
	return h
}

func (s *sim) host(name string) *host {
	for _, h := range s.hosts {
		if h.name == name {
			return h
		}
	}
	s.t.Fatalf("no host %s", name)
	return nil
}

// do carries out a host's actions.
func (s *sim) do(h *host, acts []Action) {
	for _, a := range acts {
		switch a.Kind {
		case ActCreate, ActUpdate, ActDelete, ActGet:
			s.enqueue(h, a, s.owners)
		case ActMemberPut, ActMemberDelete:
			s.enqueue(h, a, s.members)
		case ActOpen:
			h.replies = append(h.replies, masterReply{at: s.now.Add(s.openDelay), shard: a.Shard, open: true, epoch: a.Epoch})
		case ActClose:
			// Closing is at once: the fake master stops serving now.
			delete(h.serving, a.Shard)
			h.replies = append(h.replies, masterReply{at: s.now.Add(5 * time.Millisecond), shard: a.Shard})
		case ActRoute:
			h.routes[a.Shard] = a.Route
		}
	}
}

func (s *sim) enqueue(h *host, a Action, kv *fakeKV) {
	d := s.latency
	if s.delay != nil {
		d += s.delay(h, a)
	}
	lose := s.lose != nil && s.lose(h, a)
	h.reqs = append(h.reqs, request{a: a, sent: s.now, applyAt: s.now.Add(d), kv: kv, lose: lose})
}

// step advances time by d.
func (s *sim) step(d time.Duration) {
	s.now = s.now.Add(d)
	if !s.down {
		s.owners.expire()
		s.members.expire()
	}
	for _, h := range s.hosts {
		if h.dead {
			continue
		}
		// Requests reach the bucket.
		keep := h.reqs[:0]
		for _, rq := range h.reqs {
			if !rq.timedOut && s.now.Sub(rq.sent) >= s.opTimeout && s.now.Before(rq.applyAt) {
				// The driver's bound: a timeout now, the request lands later.
				rq.timedOut = true
				h.answers = append(h.answers, answer{at: s.now, r: Result{ID: rq.a.ID, Err: errTimeout}})
			}
			if s.now.Before(rq.applyAt) {
				keep = append(keep, rq)
				continue
			}
			if rq.timedOut {
				if !s.down {
					rq.kv.apply(rq.a)
				}
				continue
			}
			if s.down {
				h.answers = append(h.answers, answer{at: rq.applyAt.Add(s.opTimeout - s.latency), r: Result{ID: rq.a.ID, Err: errTimeout}})
				continue
			}
			r := rq.kv.apply(rq.a)
			if rq.lose {
				r = Result{ID: rq.a.ID, Err: errTimeout}
				h.answers = append(h.answers, answer{at: rq.applyAt.Add(s.opTimeout - s.latency), r: r})
				continue
			}
			h.answers = append(h.answers, answer{at: s.now, r: r})
		}
		h.reqs = keep
	}
	for _, h := range s.hosts {
		if h.dead {
			continue
		}
		// Watches deliver.
		for _, kv := range []*fakeKV{s.owners, s.members} {
			if h.stalled {
				break
			}
			b := Owners
			if kv == s.members {
				b = Hosts
			}
			for h.watched[kv] < len(kv.log) {
				e := kv.log[h.watched[kv]]
				h.watched[kv]++
				if h.dropping {
					continue
				}
				s.do(h, h.m.Seen(s.now, b, e))
			}
		}
		// Answers arrive.
		var later []answer
		var due []answer
		for _, an := range h.answers {
			if s.now.Before(an.at) {
				later = append(later, an)
			} else {
				due = append(due, an)
			}
		}
		h.answers = later
		for _, an := range due {
			s.do(h, h.m.Result(s.now, an.r))
		}
		// The fake master answers.
		var pend []masterReply
		var ready []masterReply
		for _, r := range h.replies {
			if s.now.Before(r.at) {
				pend = append(pend, r)
			} else {
				ready = append(ready, r)
			}
		}
		h.replies = pend
		for _, r := range ready {
			if r.open {
				if h.m.shards[r.shard].st != stOpening {
					// Given up before it opened: the master's queue runs
					// the Close that followed right after.
					continue
				}
				epoch := max(r.epoch, s.fence[r.shard]+1)
				s.fence[r.shard] = epoch
				h.serving[r.shard] = true
				h.opens++
				s.do(h, h.m.Opened(s.now, r.shard, epoch, nil))
			} else {
				s.do(h, h.m.Closed(s.now, r.shard))
			}
		}
		s.do(h, h.m.Tick(s.now))
		// The fake master serves only what the machine says it serves.
		for n := range h.serving {
			if !contains(h.m.Serving(), n) && h.m.shards[n].st != stOpening {
				s.t.Fatalf("%s: %s serves shard %d in state %s", s.now.Format("15:04:05.000"), h.name, n, h.m.shards[n].st)
			}
		}
	}
	s.checkOneServer()
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// checkOneServer: never two live hosts serving one shard, and how long a
// shard has gone unserved.
func (s *sim) checkOneServer() {
	for n := 0; n < s.shards; n++ {
		var who []string
		for _, h := range s.hosts {
			if !h.dead && h.serving[n] {
				who = append(who, h.name)
			}
		}
		if len(who) > 1 {
			s.t.Fatalf("%s: shard %d served by %v at once", s.now.Format("15:04:05.000"), n, who)
		}
		if len(who) == 0 {
			if _, ok := s.unservedAt[n]; !ok {
				s.unservedAt[n] = s.now
			}
			continue
		}
		if at, ok := s.unservedAt[n]; ok {
			s.maxGap = max(s.maxGap, s.now.Sub(at))
			delete(s.unservedAt, n)
		}
	}
}

// run steps for d.
func (s *sim) run(d time.Duration) {
	for end := s.now.Add(d); s.now.Before(end); {
		s.step(10 * time.Millisecond)
	}
}

// runUntil steps until cond holds, failing after limit.
func (s *sim) runUntil(limit time.Duration, what string, cond func() bool) time.Duration {
	start := s.now
	for !cond() {
		if s.now.Sub(start) > limit {
			s.t.Fatalf("%s: not within %s: %s", what, limit, s.describe())
		}
		s.step(10 * time.Millisecond)
	}
	return s.now.Sub(start)
}

// restart replaces a dead host by a new process of the same name.
func (s *sim) restart(name string) *host {
	for i, h := range s.hosts {
		if h.name == name {
			s.hosts = append(s.hosts[:i], s.hosts[i+1:]...)
			break
		}
	}
	return s.addHost(name)
}

func (s *sim) kill(name string) {
	h := s.host(name)
	h.dead = true
	h.serving = map[int]bool{}
}

func (s *sim) served() int {
	n := 0
	for i := 0; i < s.shards; i++ {
		for _, h := range s.hosts {
			if !h.dead && h.serving[i] {
				n++
			}
		}
	}
	return n
}

func (s *sim) counts() map[string]int {
	c := map[string]int{}
	for _, h := range s.hosts {
		if !h.dead {
			c[h.name] = len(h.serving)
		}
	}
	return c
}

// balanced: every shard served, no live host above the target.
func (s *sim) balanced() bool {
	live := 0
	for _, h := range s.hosts {
		if !h.dead {
			live++
		}
	}
	target := (s.shards + live - 1) / live
	for _, c := range s.counts() {
		if c > target {
			return false
		}
	}
	return s.served() == s.shards
}

func (s *sim) describe() string {
	out := fmt.Sprintf("served %d/%d, counts %v;", s.served(), s.shards, s.counts())
	for _, h := range s.hosts {
		if h.dead {
			continue
		}
		out += " " + h.name + ":"
		for i := range h.m.shards {
			if st := h.m.shards[i].st; st != stFree {
				out += fmt.Sprintf(" %d=%s", i, st)
			}
		}
	}
	return out
}
