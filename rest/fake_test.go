package rest

import (
	"context"
	"errors"
	"hash/fnv"
	"slices"
	"strings"
	"sync"

	"github.com/tockd/tock/store"
)

// memBackend is a Backend over the real pure stores, one shard per store,
// for handler tests; the master's own backend is tested end to end.
type memBackend struct {
	mu          sync.Mutex
	shards      []*store.Jobs
	rules       *store.Rules
	tokens      map[string]Identity // secret → identity; nil = auth off
	unavailable bool                // every job and rule change fails as a dead shard would
	// block, when set, holds every GetJob until it is closed (a slow
	// shard, to fill the listener's concurrency limit).
	block chan struct{}
	held  chan struct{} // a token per GetJob being held
}

func newMemBackend(tokens map[string]Identity) *memBackend {
	b := &memBackend{rules: store.NewRules(), tokens: tokens}
	for range 4 {
		b.shards = append(b.shards, store.NewJobs())
	}
	return b
}

var errUnavailable = errors.New("shard unavailable: worker is gone")

func (b *memBackend) shard(id string) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % uint32(len(b.shards)))
}

func (b *memBackend) AuthEnabled() bool { return b.tokens != nil }

func (b *memBackend) Authenticate(secret string) (Identity, error) {
	if id, ok := b.tokens[secret]; ok {
		return id, nil
	}
	return Identity{}, ErrBadSecret
}

func (b *memBackend) GetJob(_ context.Context, id string) (Job, error) {
	if b.block != nil {
		b.held <- struct{}{}
		<-b.block
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.unavailable {
		return Job{}, errUnavailable
	}
	n := b.shard(id)
	j, ok := b.shards[n].Get(id)
	if !ok {
		return Job{}, ErrNotFound
	}
	r, _ := b.rules.Match(id)
	return Job{ID: id, Execution: j.Execution, Status: j.Status, Shard: n, Rule: r.ID, Outcome: j.Outcome}, nil
}

func (b *memBackend) SetJob(_ context.Context, id string, ns int64) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.unavailable {
		return 0, errUnavailable
	}
	n := b.shard(id)
	b.shards[n].Set(id, ns)
	return n, nil
}

func (b *memBackend) RemoveJob(_ context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.unavailable {
		return errUnavailable
	}
	if !b.shards[b.shard(id)].Remove(id) {
		return ErrNotFound
	}
	return nil
}

// ListJobs merges the shards' pages by sorting: the master's k-way merge
// is tested on its own.
func (b *memBackend) ListJobs(_ context.Context, q ListQuery) ([]store.Job, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.unavailable {
		return nil, false, errUnavailable
	}
	var all []store.Job
	more := false
	for _, s := range b.shards {
		page, m := s.Page(store.PageQuery{Prefix: q.Prefix, After: q.After, Limit: q.Limit, Statuses: q.Statuses})
		all = append(all, page...)
		more = more || m
	}
	sortJobs(all)
	if len(all) > q.Limit {
		all, more = all[:q.Limit], true
	}
	return all, more, nil
}

func (b *memBackend) MatchRule(id string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.rules.Match(id)
	return r.ID, ok
}

func (b *memBackend) Rule(id string) (store.Rule, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rules.Get(id)
}

func (b *memBackend) Rules(prefix string) []store.Rule {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rules.List(prefix)
}

func (b *memBackend) SetRule(_ context.Context, r store.Rule) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.unavailable {
		return errUnavailable
	}
	b.rules.Set(r)
	return nil
}

func (b *memBackend) RemoveRule(_ context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.unavailable {
		return errUnavailable
	}
	if !b.rules.Remove(id) {
		return ErrNotFound
	}
	return nil
}

// complete runs job id as the scheduler would and records o.
func (b *memBackend) complete(id string, st store.Status, o *store.Outcome) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.shards[b.shard(id)].SetStatus(id, st, o)
}

func sortJobs(js []store.Job) {
	slices.SortFunc(js, func(a, b store.Job) int { return strings.Compare(a.ID, b.ID) })
}
