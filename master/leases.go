package master

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tockd/tock/cluster"
	"github.com/tockd/tock/config"
	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store/jslog"
)

// The master's shard ownership with persistence = "jetstream"
// (docs/scale-out.md): the lease manager (package cluster) decides which
// shards this host serves; this file carries out its decisions on the
// workers. Workers boot with no shard; each acquired lease opens its shard
// on the worker of slot shard mod workers (ipc.Acquire, one shard at a
// time, at the lease's epoch hint); each lost lease releases it at once
// (ipc.Release) and the router holds its requests until the new owner is
// known. Work on one shard is done in order, by that shard's queue.

// localState is where a shard is on this host's workers.
type localState uint8

const (
	localNone localState = iota
	localOpening
	localOpen
	localClosing
)

// hostLeases is the master's side of the lease manager.
type hostLeases struct {
	m   *Master
	cfg cluster.Config
	// eng is a NATS connection of the master's own for the buckets, so
	// lease renewals never queue behind anything else.
	eng     *jslog.Engine
	buckets cluster.Buckets
	mgr     *cluster.Manager
	cancel  context.CancelFunc
	done    chan struct{}
	queues  []chan func()
	// quit stops the shard queues; closed after the manager stopped.
	quit chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	local  []localState
	opened []time.Time // when each open shard was opened
	epoch  []uint64    // the epoch each open shard was opened at
	routes []cluster.Route
	seqs   []uint64 // last stream sequence of each open shard (pollSeqs)
	rules  *ruleBucket
}

// jetStreamMode: shards are leased from the cluster, not all this host's.
func (m *Master) jetStreamMode() bool {
	return m.cfg.Database.Persistence == config.PersistenceJetStream
}

// hostShards is how many shards the workers boot with: all of them on a
// single host; none in JetStream mode, where leases decide.
func (m *Master) hostShards() int {
	if m.jetStreamMode() {
		return 0
	}
	return m.cfg.Cluster.Shards
}

// startHosts connects to NATS, opens the buckets and loads the rules from
// the rules bucket (before the workers boot, so their Welcome has them).
// Bounded by the worker boot timeout: a NATS meta-leader election takes
// up to 9 s.
func (m *Master) startHosts(ctx context.Context) error {
	if !m.jetStreamMode() {
		return nil
	}
	j := m.cfg.JetStream
	eng, err := jslog.Connect(jslog.ConfigFromFile(j), m.log.Named("leases"))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Cluster.WorkerBootTimeout.Duration)
	defer cancel()
	b, err := cluster.OpenBuckets(ctx, eng.JetStream(), eng.Config().Cluster, eng.Config().Replicas, j.LeaseTTL.Duration)
	if err != nil {
		eng.Close()
		return fmt.Errorf("jetstream: %w", err)
	}
	n := m.cfg.Cluster.Shards
	h := &hostLeases{m: m, eng: eng, buckets: b, quit: make(chan struct{}),
		local: make([]localState, n), opened: make([]time.Time, n), epoch: make([]uint64, n), routes: make([]cluster.Route, n), seqs: make([]uint64, n)}
	for i := range h.routes {
		h.routes[i].Shard = i
	}
	h.cfg = cluster.Config{Host: j.HostName, Addr: j.Advertise, Shards: n, TTL: j.LeaseTTL.Duration,
		Member: cluster.Member{Client: m.listener.Addr().String(), HTTP: m.httpAddrString(), Started: m.started.UTC()}}
	rb, err := openRuleBucket(ctx, b.Rules, m)
	if err != nil {
		eng.Close()
		return fmt.Errorf("jetstream: rules: %w", err)
	}
	h.rules = rb
	m.hosts = h
	m.log.Info("joined the cluster's buckets", "host", j.HostName, "cluster", eng.Config().Cluster, "lease_ttl", j.LeaseTTL.Duration, "rules", m.rules.count())
	return nil
}

// runHosts starts the lease manager once the workers are up.
func (m *Master) runHosts() {
	h := m.hosts
	if h == nil {
		return
	}
	h.queues = make([]chan func(), len(h.local))
	for i := range h.queues {
		h.queues[i] = make(chan func(), 64)
		h.wg.Add(1)
		go h.runQueue(h.queues[i])
	}
	h.mgr = cluster.NewManager(h.cfg, h.buckets.Owners, h.buckets.Hosts, h, m.log.Named("leases"))
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go func() { defer close(h.done); h.mgr.Run(ctx) }()
	h.wg.Add(1)
	go h.pollSeqs()
	h.rules.watch(m)
}

// stopHosts releases every lease (other hosts take the shards at once,
// not after the TTL), then stops the manager and closes the connection.
// Called after the client connections drained, before the workers stop.
// With keep (a hot restart) the leases are left to expire instead: the
// new image takes them over at once (a lease of its own host), so the
// shards do not move to other hosts and back.
func (m *Master) stopHosts(timeout time.Duration, keep bool) {
	h := m.hosts
	if h == nil {
		return
	}
	if h.mgr != nil {
		if keep {
			m.log.Info("keeping the leases for the restarted master")
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			if err := h.mgr.Stop(ctx); err != nil {
				m.log.Warn("leases not all released; they expire after the TTL", "error", err)
			} else {
				m.log.Info("every lease released")
			}
			cancel()
		}
		h.cancel()
		<-h.done
		close(h.quit)
		h.wg.Wait()
	}
	h.rules.stop()
	h.eng.Close()
}

func (h *hostLeases) runQueue(q chan func()) {
	defer h.wg.Done()
	for {
		select {
		case fn := <-q:
			fn()
		case <-h.quit:
			return
		}
	}
}

// enqueue runs fn on shard's queue; the manager's loop must not block, so
// a full queue (never expected: a shard has a few items at most) runs it
// on a goroutine of its own after the queue frees.
func (h *hostLeases) enqueue(shard int, fn func()) {
	select {
	case h.queues[shard] <- fn:
	default:
		go func() {
			select {
			case h.queues[shard] <- fn:
			case <-h.quit:
			}
		}()
	}
}

// Open implements cluster.Handler.
func (h *hostLeases) Open(shard int, hint uint64) {
	h.enqueue(shard, func() {
		epoch, err := h.open(shard, hint)
		h.mgr.Opened(shard, epoch, err)
	})
}

// Close implements cluster.Handler.
func (h *hostLeases) Close(shard int, why string) {
	h.enqueue(shard, func() {
		h.close(shard, why)
		h.mgr.Closed(shard)
	})
}

// Route implements cluster.Handler.
func (h *hostLeases) Route(r cluster.Route) {
	h.mu.Lock()
	h.routes[r.Shard] = r
	h.mu.Unlock()
	h.enqueue(r.Shard, func() { h.applyRoute(r.Shard) })
}

func (h *hostLeases) setLocal(shard int, st localState) {
	h.mu.Lock()
	h.local[shard] = st
	h.mu.Unlock()
}

// applyRoute points the router at the shard's owner unless this host has
// the shard on a worker (then the local lifecycle owns the router entry).
func (h *hostLeases) applyRoute(shard int) {
	h.mu.Lock()
	st, r := h.local[shard], h.routes[shard]
	h.mu.Unlock()
	if st != localNone {
		return
	}
	if r.Host == "" || r.Host == h.cfg.Host {
		h.m.routeUnowned(shard)
		return
	}
	h.m.routeRemote(shard, r)
}

// slotWorker waits (up to the boot timeout) for slot shard mod workers
// to have a booted worker.
func (h *hostLeases) slotWorker(shard int) (*proc, *slot, error) {
	m := h.m
	deadline := time.Now().Add(m.cfg.Cluster.WorkerBootTimeout.Duration)
	for {
		m.mu.Lock()
		var s *slot
		var p *proc
		if len(m.slots) > 0 {
			s = m.slots[shard%len(m.slots)]
			if !s.replacing {
				p = s.cur
			}
		}
		stopping := m.stopping
		m.mu.Unlock()
		if stopping {
			return nil, nil, errors.New("stopping")
		}
		if p.canOwn() {
			return p, s, nil
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("no booted worker for shard %d within the boot timeout", shard)
		}
		select {
		case <-h.quit:
			return nil, nil, errors.New("stopping")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// open opens shard on its slot's worker at an epoch of at least hint and
// returns the epoch used.
func (h *hostLeases) open(shard int, hint uint64) (uint64, error) {
	m := h.m
	h.setLocal(shard, localOpening)
	m.routeUnowned(shard) // held here until the worker has it
	p, s, err := h.slotWorker(shard)
	if err != nil {
		h.setLocal(shard, localNone)
		h.applyRoute(shard)
		return 0, err
	}
	m.setShards([]int{shard}, shardAcquiring, p, "lease acquired")
	running := m.runningOutside(shard) // leases_running.go
	ready, err := request(p, ipc.TypeAcquire, ipc.Acquire{Shards: []int{shard}, Running: running, Epoch: hint}, p.ready, m.cfg.Cluster.WorkerBootTimeout.Duration,
		func(r ipc.Ready) uint64 { return r.Seq }, func(a *ipc.Acquire, seq uint64) { a.Seq = seq })
	if err == nil && ready.Error != "" {
		err = errors.New(ready.Error)
	}
	if err != nil {
		if ready.Error == "" {
			// It may still be opening the shard: it must be gone before
			// the lease is given up (a dead one is only reaped).
			p.killAndReap("no answer to Acquire: " + err.Error())
		}
		m.setShards([]int{shard}, shardOrphaned, p, "cannot open: "+err.Error())
		h.setLocal(shard, localNone)
		h.applyRoute(shard)
		return 0, fmt.Errorf("open shard %d on worker %d: %w", shard, p.index, err)
	}
	m.spans.reclaimed(p, running) // its own: it records them itself
	epoch := hint
	if e, ok := ready.Epochs[shard]; ok {
		epoch = e
	}
	p.mu.Lock()
	if !slices.Contains(p.shards, shard) {
		p.shards = slices.Sorted(slices.Values(append(slices.Clone(p.shards), shard)))
	}
	p.mu.Unlock()
	m.mu.Lock()
	if !slices.Contains(s.shards, shard) {
		s.shards = slices.Sorted(slices.Values(append(slices.Clone(s.shards), shard)))
	}
	m.mu.Unlock()
	h.mu.Lock()
	h.local[shard], h.opened[shard], h.epoch[shard] = localOpen, time.Now(), epoch
	h.mu.Unlock()
	m.router.SetOwner([]int{shard}, p)
	m.setShards([]int{shard}, shardOwned, p, "lease acquired")
	return epoch, nil
}

// close stops serving shard now: requests are held, the worker that has
// it releases it (or is killed if it does not answer).
func (h *hostLeases) close(shard int, why string) {
	m := h.m
	h.mu.Lock()
	was := h.local[shard]
	h.local[shard] = localClosing
	h.mu.Unlock()
	m.routeUnowned(shard)
	if was != localNone {
		owner := h.awaitHandoff(shard)
		if owner != nil {
			m.setShards([]int{shard}, shardReleasing, owner, why)
			owner.mu.Lock()
			owner.shards = slices.DeleteFunc(slices.Clone(owner.shards), func(n int) bool { return n == shard })
			owner.mu.Unlock()
			rel, err := request(owner, ipc.TypeRelease, ipc.Release{Shards: []int{shard}, DrainNs: h.drainFor(why)}, owner.released, m.cfg.Cluster.WorkerBootTimeout.Duration,
				func(r ipc.Released) uint64 { return r.Seq }, func(r *ipc.Release, seq uint64) { r.Seq = seq })
			switch {
			case err != nil:
				owner.log.Warn("worker did not release a shard whose lease is gone; killing it", "shard", shard, "error", err)
				owner.killAndReap("no answer to Release: " + err.Error())
			case err == nil && rel.Error != "":
				// Its last writes may have failed: they were not
				// acknowledged, and the next owner replays the stream.
				owner.log.Warn("shard released with an error", "shard", shard, "error", rel.Error)
			}
		}
		m.mu.Lock()
		for _, s := range m.slots {
			s.shards = slices.DeleteFunc(slices.Clone(s.shards), func(n int) bool { return n == shard })
		}
		m.mu.Unlock()
		m.setShards([]int{shard}, shardOrphaned, nil, "not this host's: "+why)
	}
	h.setLocal(shard, localNone)
	h.applyRoute(shard)
}

// awaitHandoff returns the worker that has shard open; while a phased
// restart or a scale is moving it between workers (neither lists it), it
// waits for the move to end (bounded by the boot timeout), so the shard
// is not left open on the worker it was moving to.
func (h *hostLeases) awaitHandoff(shard int) *proc {
	deadline := time.Now().Add(h.m.cfg.Cluster.WorkerBootTimeout.Duration)
	for {
		if p := h.ownerOf(shard); p != nil {
			return p
		}
		switch h.m.shardStateOf(shard) {
		case shardReleasing, shardAcquiring, shardReclaiming:
		default:
			return nil
		}
		if time.Now().After(deadline) {
			return nil
		}
		select {
		case <-h.quit:
			return nil
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ownerOf is the live worker that has shard open, if any.
func (h *hostLeases) ownerOf(shard int) *proc {
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.slots {
		for _, p := range append([]*proc{s.cur}, s.old...) {
			if p == nil {
				continue
			}
			p.mu.Lock()
			has := slices.Contains(p.shards, shard) && !p.dead
			p.mu.Unlock()
			if has {
				return p
			}
		}
	}
	return nil
}

// noteReopened: a worker booted with shards (a crashed worker's
// replacement) opened them at these epochs; the leases show them from the
// next renewal.
func (m *Master) noteReopened(epochs map[int]uint64) {
	h := m.hosts
	if h == nil || h.mgr == nil {
		return
	}
	for n, e := range epochs {
		if n >= 0 && n < len(h.local) {
			h.mu.Lock()
			if h.local[n] == localOpen {
				h.epoch[n] = max(h.epoch[n], e)
			}
			h.mu.Unlock()
			h.mgr.Reopened(n, e)
		}
	}
}

// noteFenced: a worker reports shards whose stream another host fenced.
func (m *Master) noteFenced(p *proc, shards []int) {
	h := m.hosts
	if h == nil || h.mgr == nil {
		return
	}
	for _, n := range shards {
		if n >= 0 && n < len(h.local) {
			p.log.Warn("shard fenced by another host; giving it up", "shard", n)
			h.mgr.Fenced(n)
		}
	}
}
