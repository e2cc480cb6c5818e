package master

import (
	"container/heap"
	"context"
	"errors"
	"strings"

	"github.com/tockd/tock/httpapi"
	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/rest"
	"github.com/tockd/tock/store"
)

// RESTBackend is the master as the REST API's backend: job requests go
// through the router exactly as the line protocol's (same durability, same
// holds while a shard moves, `shard unavailable` past them), rule changes
// through the rule set with RULE SET's guarantee.
func (m *Master) RESTBackend() rest.Backend { return restBackend{m} }

// REST returns the REST API over this master.
func (m *Master) REST() *rest.Server { return rest.New(m.RESTBackend(), m.log.Named("rest")) }

// RESTRoutes mounts the REST API on the HTTP listener: pass it in
// Options.HTTPRoutes. The backend reads the master's state per request, so
// it may run before New has loaded the rules.
func RESTRoutes(m *Master, mux *httpapi.Mux) { m.REST().Register(mux) }

type restBackend struct{ m *Master }

var _ rest.Backend = restBackend{}

func (b restBackend) AuthEnabled() bool { return b.m.auth.Load() != nil }

func (b restBackend) Authenticate(secret string) (rest.Identity, error) {
	ts := b.m.auth.Load()
	if ts == nil {
		return rest.Identity{Namespace: "*"}, nil
	}
	id, err := ts.authenticate(secret)
	if err != nil {
		return rest.Identity{}, rest.ErrBadSecret
	}
	return b.identity(id), nil
}

// identity is the line protocol's identity as the REST API's.
func (restBackend) identity(id identity) rest.Identity {
	return rest.Identity{Name: id.name, Namespace: id.namespace}
}

// workerError turns a worker's error reply into the backend's error.
func workerError(text string) error {
	if text == "not found" {
		return rest.ErrNotFound
	}
	return errors.New(text)
}

// call routes one request and waits for its reply or ctx.
func (b restBackend) call(ctx context.Context, req ipc.Request) (ipc.Reply, error) {
	ch := make(chan ipc.Reply, 1)
	b.m.router.Route(&pending{req: req, deliver: func(r ipc.Reply) { ch <- r }})
	select {
	case r := <-ch:
		if r.Kind == ipc.KindError {
			return r, workerError(r.Err)
		}
		return r, nil
	case <-ctx.Done():
		return ipc.Reply{}, ctx.Err()
	}
}

func (b restBackend) shard(id string) int { return ShardOf(id, b.m.cfg.Cluster.Shards) }

func (b restBackend) GetJob(ctx context.Context, id string) (rest.Job, error) {
	shard := b.shard(id)
	r, err := b.call(ctx, ipc.Request{Op: ipc.OpInfo, Shard: shard, Key: id})
	if err != nil {
		return rest.Job{}, err
	}
	if r.Kind != ipc.KindInfo {
		return rest.Job{}, errors.New("shard unavailable: unexpected reply")
	}
	rule, _ := b.MatchRule(id)
	return rest.Job{ID: id, Execution: r.Execution, Status: r.Status, Shard: shard, Rule: rule, Outcome: r.Outcome}, nil
}

func (b restBackend) SetJob(ctx context.Context, id string, execution int64) (int, error) {
	shard := b.shard(id)
	_, err := b.call(ctx, ipc.Request{Op: ipc.OpSet, Shard: shard, Key: id, Execution: execution})
	return shard, err
}

func (b restBackend) RemoveJob(ctx context.Context, id string) error {
	_, err := b.call(ctx, ipc.Request{Op: ipc.OpRemove, Shard: b.shard(id), Key: id})
	return err
}

// maxListings bounds the REST listings answered at once; others wait for
// a slot. A shard answers a page by scanning all its jobs on the worker's
// loop (the store keeps no id order), so each page costs the workers time
// in the number of jobs whatever its limit: without a bound, clients
// looping on GET /jobs?limit=1 (any namespace's) kept every worker
// scanning, and the line protocol's requests and the tick waited seconds
// behind the scans.
const maxListings = 2

// ListJobs asks every shard for its next q.Limit matching ids after
// q.After and merges the sorted answers k-way. The master holds at most
// shards × limit ids, whatever the number of jobs; a shard that is moving
// is waited for (its request is held), not skipped.
func (b restBackend) ListJobs(ctx context.Context, q rest.ListQuery) ([]store.Job, bool, error) {
	b.m.listWaiting.Add(1)
	select {
	case b.m.listings <- struct{}{}:
		b.m.listWaiting.Add(-1)
	case <-ctx.Done():
		b.m.listWaiting.Add(-1)
		return nil, false, ctx.Err()
	}
	defer func() { <-b.m.listings }()
	n := b.m.cfg.Cluster.Shards
	ch := make(chan ipc.Reply, n)
	for s := 0; s < n; s++ {
		req := ipc.Request{Op: ipc.OpList, Shard: s, Key: q.Prefix, After: q.After, Limit: int32(q.Limit), Statuses: q.Statuses}
		b.m.router.Route(&pending{req: req, deliver: func(r ipc.Reply) { ch <- r }})
	}
	pages := make([]ipc.Reply, 0, n)
	for len(pages) < n {
		select {
		case r := <-ch:
			if r.Kind == ipc.KindError {
				return nil, false, workerError(r.Err)
			}
			pages = append(pages, r)
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	jobs, more := mergePages(pages, q.Limit)
	return jobs, more, nil
}

// mergePages merges the shards' sorted pages into the first limit ids. A
// shard that has more than it sent bounds the merge: no id past its last
// one may be returned, since its next ones could come before it.
func mergePages(pages []ipc.Reply, limit int) ([]store.Job, bool) {
	bound, bounded := "", false
	h := &pageHeap{}
	for _, p := range pages {
		if p.More && len(p.Jobs) > 0 {
			if last := p.Jobs[len(p.Jobs)-1].ID; !bounded || last < bound {
				bound, bounded = last, true
			}
		}
		if len(p.Jobs) > 0 {
			*h = append(*h, p.Jobs)
		}
	}
	more := bounded
	heap.Init(h)
	var out []store.Job
	for h.Len() > 0 {
		top := (*h)[0]
		j := top[0]
		if len(out) == limit || (bounded && j.ID > bound) {
			more = true
			break
		}
		out = append(out, store.Job{ID: j.ID, Status: j.Status, Execution: j.Execution})
		if (*h)[0] = top[1:]; len((*h)[0]) == 0 {
			heap.Pop(h)
		} else {
			heap.Fix(h, 0)
		}
	}
	return out, more
}

// pageHeap orders the shards' remaining pages by their first id.
type pageHeap [][]ipc.JobLine

func (h pageHeap) Len() int           { return len(h) }
func (h pageHeap) Less(a, b int) bool { return strings.Compare(h[a][0].ID, h[b][0].ID) < 0 }
func (h pageHeap) Swap(a, b int)      { h[a], h[b] = h[b], h[a] }
func (h *pageHeap) Push(x any)        { *h = append(*h, x.([]ipc.JobLine)) }
func (h *pageHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (b restBackend) MatchRule(id string) (string, bool) {
	rs := b.m.rules
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.rules.Match(id)
	return r.ID, ok
}

func (b restBackend) Rule(id string) (store.Rule, bool) { return b.m.rules.get(id) }

func (b restBackend) Rules(prefix string) []store.Rule { return b.m.rules.list(prefix) }

func (b restBackend) SetRule(_ context.Context, r store.Rule) error {
	return b.m.rules.change(store.Record{Type: store.RecordRule, Rule: r}, b.m.welcomedProcs)
}

func (b restBackend) RemoveRule(_ context.Context, id string) error {
	err := b.m.rules.change(store.Record{Type: store.RecordRuleRemoval, ID: id}, b.m.welcomedProcs)
	if errors.Is(err, errRuleNotFound) {
		return rest.ErrNotFound
	}
	return err
}
