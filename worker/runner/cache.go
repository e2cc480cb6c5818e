package runner

import (
	"errors"
	"sync"
)

// errRunnerClosed is returned by a network runner used after Close.
var errRunnerClosed = errors.New("runner closed")

// defaultMaxClients bounds the clients (redis) or connections (amqp) a
// network runner keeps, one per distinct URL.
const defaultMaxClients = 64

// clientCache keeps one client per key (a runner URL), at most max of them.
// Entries are reference counted: evicting the least recently used entry (or
// closing the cache) closes its client only once the executions using it
// have released it, so an eviction never breaks a running execution.
//
// newFn must be cheap (no I/O): it runs under the cache lock. Clients dial
// lazily on first use.
type clientCache[T interface{ Close() error }] struct {
	newFn func(key string) (T, error)
	max   int

	mu      sync.Mutex
	entries map[string]*cacheEntry[T]
	clock   uint64
	closed  bool
}

type cacheEntry[T interface{ Close() error }] struct {
	key     string
	client  T
	refs    int
	lastUse uint64
	evicted bool
}

func newClientCache[T interface{ Close() error }](max int, newFn func(string) (T, error)) *clientCache[T] {
	if max <= 0 {
		max = defaultMaxClients
	}
	return &clientCache[T]{newFn: newFn, max: max, entries: make(map[string]*cacheEntry[T])}
}

// acquire returns the entry for key, creating it if needed. The caller must
// release it.
func (c *clientCache[T]) acquire(key string) (*cacheEntry[T], error) {
	var toClose []T
	defer func() { closeAll(toClose) }()

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errRunnerClosed
	}
	c.clock++
	if e, ok := c.entries[key]; ok {
		e.refs++
		e.lastUse = c.clock
		return e, nil
	}
	for len(c.entries) >= c.max {
		var lru *cacheEntry[T]
		for _, e := range c.entries {
			if lru == nil || betterVictim(e, lru) {
				lru = e
			}
		}
		delete(c.entries, lru.key)
		lru.evicted = true
		if lru.refs == 0 {
			toClose = append(toClose, lru.client)
		}
	}
	client, err := c.newFn(key)
	if err != nil {
		return nil, err
	}
	e := &cacheEntry[T]{key: key, client: client, refs: 1, lastUse: c.clock}
	c.entries[key] = e
	return e, nil
}

// betterVictim: idle entries go first; among equals, the least recently used.
func betterVictim[T interface{ Close() error }](a, b *cacheEntry[T]) bool {
	if (a.refs == 0) != (b.refs == 0) {
		return a.refs == 0
	}
	return a.lastUse < b.lastUse
}

// release gives back an entry obtained from acquire.
func (c *clientCache[T]) release(e *cacheEntry[T]) {
	c.mu.Lock()
	e.refs--
	closeIt := e.evicted && e.refs == 0
	c.mu.Unlock()
	if closeIt {
		_ = e.client.Close()
	}
}

// len is the number of cached clients.
func (c *clientCache[T]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Close closes the idle clients now and the busy ones when released; later
// acquires fail.
func (c *clientCache[T]) Close() error {
	c.mu.Lock()
	var toClose []T
	c.closed = true
	for k, e := range c.entries {
		delete(c.entries, k)
		e.evicted = true
		if e.refs == 0 {
			toClose = append(toClose, e.client)
		}
	}
	c.mu.Unlock()
	return closeAll(toClose)
}

func closeAll[T interface{ Close() error }](cs []T) error {
	var errs []error
	for _, c := range cs {
		if err := c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// lazyCache creates its clientCache on first use, so that the network
// runners' zero values work.
type lazyCache[T interface{ Close() error }] struct {
	once sync.Once
	c    *clientCache[T]
}

func (l *lazyCache[T]) get(max int, newFn func(string) (T, error)) *clientCache[T] {
	l.once.Do(func() { l.c = newClientCache(max, newFn) })
	return l.c
}

func (l *lazyCache[T]) close() error {
	l.once.Do(func() {
		l.c = newClientCache(1, func(string) (T, error) { var zero T; return zero, errRunnerClosed })
	})
	return l.c.Close()
}
