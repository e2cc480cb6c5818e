package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Handler is the master's side of the lease manager. Its methods are
// called from the manager's loop, one at a time and in order, and must
// not block: the master queues the work per shard and answers with
// Manager.Opened / Manager.Closed.
type Handler interface {
	// Open: this host holds shard's lease; open it at an epoch of at
	// least epochHint, then call Opened with the epoch used.
	Open(shard int, epochHint uint64)
	// Close: stop serving shard now (lease lost, deadline passed, fence,
	// hand-over), then call Closed.
	Close(shard int, why string)
	// Route: the owners bucket names a new owner (or none) for a shard.
	Route(r Route)
}

// tickEvery is how often the manager's clock ticks the machine: small
// against the TTL (deadlines are checked at this granularity).
const tickEvery = 50 * time.Millisecond

// Manager runs a Machine against the owners and hosts buckets.
type Manager struct {
	owners, hosts KV
	h             Handler
	log           hclog.Logger
	// opTimeout bounds every bucket request.
	opTimeout time.Duration
	// watchIdle: a watch that delivers nothing for this long is restarted.
	// Every host puts its member entry and renews its leases every TTL/3,
	// so a silent watch is a broken one: nats.go's ordered consumer gives
	// up re-creating itself on some errors after a quorum loss (seen in
	// the e2e 2-of-3 nats-server restart) and then delivers nothing,
	// without closing its channel.
	watchIdle time.Duration

	ev chan func(time.Time) []Action

	mu sync.Mutex // guards m
	m  *Machine

	stopped chan struct{} // closed once a Stop has released everything
	stopMu  sync.Once
	quit    chan struct{} // closed when Run returns
}

// NewManager prepares the lease manager of one host; Run starts it.
func NewManager(cfg Config, owners, hosts KV, h Handler, log hclog.Logger) *Manager {
	return &Manager{
		owners: owners, hosts: hosts, h: h, log: log,
		opTimeout: cfg.TTL / 4,
		watchIdle: 2 * cfg.TTL,
		ev:        make(chan func(time.Time) []Action, 1024),
		m:         NewMachine(cfg, time.Now()),
		stopped:   make(chan struct{}),
		quit:      make(chan struct{}),
	}
}

// Run runs the lease loop until ctx ends.
func (g *Manager) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wctx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); close(g.quit); wg.Wait() }()
	wg.Add(2)
	go func() { defer wg.Done(); g.watch(wctx, Owners, g.owners) }()
	go func() { defer wg.Done(); g.watch(wctx, Hosts, g.hosts) }()
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			g.step(wctx, now, func(now time.Time) []Action { return g.m.Tick(now) })
		case fn := <-g.ev:
			g.step(wctx, time.Now(), fn)
		}
	}
}

// post queues an input for the loop (dropped once Run has returned).
func (g *Manager) post(fn func(time.Time) []Action) {
	select {
	case g.ev <- fn:
	case <-g.quit:
	}
}

func (g *Manager) step(ctx context.Context, now time.Time, fn func(time.Time) []Action) {
	g.mu.Lock()
	acts := fn(now)
	trans := g.m.TakeTransitions()
	done := g.m.Done()
	g.mu.Unlock()
	for _, t := range trans {
		g.log.Info("lease state", "shard", t.Shard, "from", t.From, "to", t.To)
	}
	for _, a := range acts {
		g.do(ctx, a)
	}
	if done {
		g.stopMu.Do(func() { close(g.stopped) })
	}
}

func (g *Manager) do(ctx context.Context, a Action) {
	switch a.Kind {
	case ActOpen:
		g.log.Info("lease acquired; opening the shard", "shard", a.Shard, "epoch_hint", a.Epoch)
		g.h.Open(a.Shard, a.Epoch)
	case ActClose:
		g.log.Warn("stop serving the shard", "shard", a.Shard, "why", a.Why)
		g.h.Close(a.Shard, a.Why)
	case ActRoute:
		g.h.Route(a.Route)
	default:
		go g.request(ctx, a)
	}
}

// request runs one bucket request and posts its answer.
func (g *Manager) request(ctx context.Context, a Action) {
	rctx, cancel := context.WithTimeout(ctx, g.opTimeout)
	defer cancel()
	r := Result{ID: a.ID}
	switch a.Kind {
	case ActCreate:
		r.Rev, r.Err = g.owners.Create(rctx, a.Key, a.Value)
	case ActUpdate:
		r.Rev, r.Err = g.owners.Update(rctx, a.Key, a.Value, a.Rev)
	case ActDelete:
		r.Err = g.owners.Delete(rctx, a.Key, a.Rev)
	case ActGet:
		r.Entry, r.Err = g.owners.Get(rctx, a.Key)
	case ActMemberPut:
		r.Rev, r.Err = g.hosts.Put(rctx, a.Key, a.Value)
	case ActMemberDelete:
		r.Err = g.hosts.Delete(rctx, a.Key, 0)
	}
	if r.Err != nil && !errors.Is(r.Err, ErrConflict) && !errors.Is(r.Err, ErrNotFound) {
		g.log.Debug("bucket request failed", "op", a.Kind.String(), "key", a.Key, "error", r.Err)
	}
	if ctx.Err() != nil {
		return
	}
	g.post(func(now time.Time) []Action { return g.m.Result(now, r) })
}

// watch keeps a watch on one bucket, restarting it when it breaks.
func (g *Manager) watch(ctx context.Context, b Bucket, kv KV) {
	name := [...]string{"owners", "hosts"}[b]
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		ch, err := kv.Watch(wctx)
		if err != nil {
			cancel()
			g.log.Warn("cannot watch bucket; retrying", "bucket", name, "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		g.post(func(now time.Time) []Action { return g.m.WatchRestarted(now, b) })
		silent := g.follow(ctx, b, ch)
		cancel() // ends a silent watch's goroutine and subscription
		if silent {
			g.log.Warn("bucket watch silent; restarting it", "bucket", name, "silent_for", g.watchIdle)
		} else if ctx.Err() == nil {
			g.log.Warn("bucket watch ended; restarting it", "bucket", name)
		}
	}
}

// follow feeds one watch's entries to the machine until the watch ends
// (false) or stays silent for watchIdle (true; its context is cancelled).
func (g *Manager) follow(ctx context.Context, b Bucket, ch <-chan *Entry) (silent bool) {
	idle := time.NewTimer(g.watchIdle)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-idle.C:
			return true
		case e, ok := <-ch:
			if !ok {
				return false
			}
			idle.Reset(g.watchIdle)
			if e == nil {
				g.post(func(now time.Time) []Action { return g.m.WatchSynced(now, b) })
				continue
			}
			ent := *e
			g.post(func(now time.Time) []Action { return g.m.Seen(now, b, ent) })
		}
	}
}

// Opened answers Handler.Open.
func (g *Manager) Opened(shard int, epoch uint64, err error) {
	if err != nil {
		g.log.Error("cannot open the shard; releasing its lease", "shard", shard, "error", err)
	} else {
		g.log.Info("shard open and served", "shard", shard, "epoch", epoch)
	}
	g.post(func(now time.Time) []Action { return g.m.Opened(now, shard, epoch, err) })
}

// Closed answers Handler.Close.
func (g *Manager) Closed(shard int) {
	g.post(func(now time.Time) []Action { return g.m.Closed(now, shard) })
}

// Reopened: the shard, still leased here, was opened again at epoch (a
// crashed worker's replacement); the lease shows it from the next renewal.
func (g *Manager) Reopened(shard int, epoch uint64) {
	g.post(func(now time.Time) []Action { return g.m.Reopened(now, shard, epoch) })
}

// Fenced: the shard's stream refused this host's write.
func (g *Manager) Fenced(shard int) {
	g.post(func(now time.Time) []Action { return g.m.Fenced(now, shard) })
}

// Stop releases every lease and the member entry, so that other hosts
// take the shards at once, and waits for that (or ctx). Run must still be
// running; cancel its context after.
func (g *Manager) Stop(ctx context.Context) error {
	g.post(func(now time.Time) []Action { return g.m.Stop(now) })
	select {
	case <-g.stopped:
		return nil
	case <-ctx.Done():
		v := g.View()
		var held []int
		for _, s := range v.Shards {
			held = append(held, s.Shard)
		}
		return fmt.Errorf("leases of shards %v not released in time (they expire by themselves): %w", held, ctx.Err())
	}
}

// View is the host's picture of the cluster now.
func (g *Manager) View() View {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.m.View(time.Now())
}

// Members are the live hosts.
func (g *Manager) Members() []Member {
	return g.View().Members
}

// Serving lists the shards this host serves.
func (g *Manager) Serving() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.m.Serving())
}
