package master

import (
	"slices"
	"sync"
)

// The handoff state machine. Every change of a worker's or a shard's state
// goes through one of the two transition functions below, which log one
// line each; master/doc.go has the table of who owns a shard in each state
// and what each failure does.

// workerState is a worker process's life as the master sees it.
type workerState string

const (
	// workerBooting: spawned, handshake not finished. Owns nothing.
	workerBooting workerState = "booting"
	// workerServing: booted; owns the shards in proc.shards.
	workerServing workerState = "serving"
	// workerDraining: replaced or removed; gives up its shards one by one
	// and keeps running the executions it started.
	workerDraining workerState = "draining"
	// workerRetiring: told to shut down; owns no shard.
	workerRetiring workerState = "retiring"
	// workerKilled: SIGKILLed by the master (a failed handoff, a missed
	// heartbeat, a shutdown timeout); its shards go to its successor only
	// once it is reaped.
	workerKilled workerState = "killed"
	// workerExited: reaped. Its shards can be opened by another.
	workerExited workerState = "exited"
)

// setState moves p to st, logging why. Leaving killed or exited is not a
// transition: a dead process stays dead.
func (p *proc) setState(st workerState, why string) {
	p.mu.Lock()
	from := p.state
	if from == st || from == workerExited || (from == workerKilled && st != workerExited) {
		p.mu.Unlock()
		return
	}
	p.state = st
	switch st {
	case workerServing:
		p.booted = true
	case workerDraining:
		p.draining = true
	case workerRetiring:
		p.draining, p.retiring = true, true
	}
	p.mu.Unlock()
	p.log.Info("worker state", "from", string(from), "to", string(st), "why", why)
}

// killAndReap SIGKILLs p and waits until it is reaped: after it returns, p
// can no longer write any file, so another worker may open its shards.
func (p *proc) killAndReap(why string) {
	p.setState(workerKilled, why)
	p.kill()
	<-p.exited
	p.setState(workerExited, "reaped")
}

// shardState is where a shard is in its handoff.
type shardState string

const (
	// shardOwned: one serving (or draining) worker has it open; requests
	// go to it.
	shardOwned shardState = "owned"
	// shardReleasing: requests are held; the old owner answers what it
	// has, syncs and closes the shard.
	shardReleasing shardState = "releasing"
	// shardAcquiring: requests are held; no process has the shard open (the
	// old owner released it or is dead and reaped); the new owner opens it.
	shardAcquiring shardState = "acquiring"
	// shardReclaiming: the handoff failed and the process that may not own
	// the shard is dead or never opened it; the old owner opens it again.
	shardReclaiming shardState = "reclaiming"
	// shardOrphaned: requests are held; the worker meant to own it was
	// killed, and its replacement (the supervisor's) opens it.
	shardOrphaned shardState = "orphaned"
)

// shardStates is every shard's handoff state.
type shardStates struct {
	mu sync.Mutex
	st []shardState
}

func newShardStates(n int) *shardStates {
	s := &shardStates{st: make([]shardState, n)}
	for i := range s.st {
		s.st[i] = shardOrphaned // until a worker boots with it
	}
	return s
}

// set moves shards to st, logging one line per distinct previous state.
func (m *Master) setShards(shards []int, st shardState, who *proc, why string) {
	s := m.shardState
	s.mu.Lock()
	byFrom := map[shardState][]int{}
	for _, n := range shards {
		if n < 0 || n >= len(s.st) || s.st[n] == st {
			continue
		}
		byFrom[s.st[n]] = append(byFrom[s.st[n]], n)
		s.st[n] = st
	}
	s.mu.Unlock()
	for from, ns := range byFrom {
		slices.Sort(ns)
		args := []any{"shards", ns, "from", string(from), "to", string(st), "why", why}
		if who != nil {
			args = append(args, "worker", who.index, "pid", who.pid)
		}
		m.log.Info("shard state", args...)
	}
}

// shardStateOf returns shard n's state (for tests and stats).
func (m *Master) shardStateOf(n int) shardState {
	m.shardState.mu.Lock()
	defer m.shardState.mu.Unlock()
	return m.shardState.st[n]
}
