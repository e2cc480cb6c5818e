package master

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/tockd/tock/internal/systemd"
	"github.com/tockd/tock/ipc"
)

// restartState is the phased restart in progress or the last one's result.
type restartState struct {
	inProgress bool
	startedAt  time.Time
	lastError  string
}

// ErrRestartInProgress is returned when a phased restart or a scale is
// asked for while one runs.
var ErrRestartInProgress = errors.New("a phased restart or scaling is already in progress")

// PhasedRestart starts a phased restart in the background: phase += 1, and
// worker by worker a new process from the binary on disk takes over the old
// one's shards. It returns at once.
func (m *Master) PhasedRestart() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.restart.inProgress {
		return ErrRestartInProgress
	}
	if m.stopping {
		return errors.New("stopping")
	}
	m.phase++
	m.restart = restartState{inProgress: true, startedAt: time.Now()}
	go m.phasedRestart(m.phase)
	return nil
}

func (m *Master) phasedRestart(phase int) {
	m.log.Info("phased restart started", "phase", phase)
	m.sdNotify(systemd.Reloading)
	err := m.rollOut(phase)
	m.mu.Lock()
	m.restart.inProgress = false
	if err != nil {
		m.restart.lastError = err.Error()
	} else {
		m.restart.lastError = ""
	}
	m.mu.Unlock()
	// Ready again either way: an aborted rollout leaves the old workers
	// serving, and STATUS= says it failed.
	m.sdNotify(systemd.Ready)
	if err != nil {
		m.log.Error("phased restart aborted; the remaining workers keep serving", "phase", phase, "error", err)
		return
	}
	m.log.Info("phased restart done", "phase", phase)
}

func (m *Master) rollOut(phase int) error {
	m.mu.Lock()
	n := len(m.slots)
	m.mu.Unlock()
	for i := 0; i < n; i++ {
		if err := m.replaceSlot(i, phase); err != nil {
			return err
		}
	}
	return nil
}

// replaceSlot boots a new worker for slot i and hands it the old one's
// shards; the old one then drains and exits in the background.
func (m *Master) replaceSlot(i, phase int) error {
	if m.slotDown(i) {
		m.log.Warn("worker is being replaced after a crash; its replacement boots at the new phase", "worker", i, "phase", phase)
		return nil
	}
	np, err := m.bootSpare(i, phase)
	if err != nil {
		return fmt.Errorf("worker %d of phase %d failed to boot: %w", i, phase, err)
	}
	m.mu.Lock()
	if i >= len(m.slots) || m.stopping {
		m.mu.Unlock()
		m.retire(np, 0)
		return errors.New("cluster changed during the restart")
	}
	s := m.slots[i]
	if s.cur == nil || s.replacing {
		m.mu.Unlock()
		go m.retire(np, 0)
		m.log.Warn("worker crashed during the restart; its replacement boots at the new phase", "worker", i, "phase", phase)
		return nil
	}
	old, shards := s.cur, slices.Clone(s.shards)
	s.cur = np
	if old != nil {
		s.old = append(s.old, old)
	}
	m.mu.Unlock()
	if old != nil {
		old.setState(workerDraining, fmt.Sprintf("replaced at phase %d", phase))
	}
	m.watch(np)
	// Let the new worker read the shards while the old one still serves
	// them; each handoff then only catches up. Best effort: without it the
	// handoff replays the whole shard.
	if _, err := request(np, ipc.TypePrepare, ipc.Prepare{Shards: shards}, np.prepared, m.cfg.Cluster.WorkerBootTimeout.Duration, nil, nil); err != nil {
		np.log.Warn("read-ahead of shards failed; handing off with full replays", "error", err)
	}
	// One shard at a time: each hold lasts one shard's replay, not the
	// whole worker's. Each shard comes from its actual owner (the router's
	// map is the truth): after an aborted rollout some may still be with
	// an older draining worker rather than with old.
	for _, sh := range shards {
		if !m.slotHas(s, sh) {
			continue // its lease moved to another host meanwhile (JetStream mode)
		}
		from := m.awaitOwner(sh)
		if from == np {
			continue
		}
		if from == nil && !m.slotHas(s, sh) {
			continue
		}
		if from == nil {
			return fmt.Errorf("hand off shard %d of worker %d: it has no owner (a worker is recovering)", sh, i)
		}
		if err := m.handoff(from, np, []int{sh}); err != nil {
			return fmt.Errorf("hand off shard %d of worker %d: %w", sh, i, err)
		}
	}
	m.retireEmpty(s)
	return nil
}

// slotHas reports whether shard n is still one of slot s's shards.
func (m *Master) slotHas(s *slot, n int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Contains(s.shards, n)
}

// retireEmpty drains and stops the old workers of s that own no shards
// any more, each once.
func (m *Master) retireEmpty(s *slot) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range s.old {
		p.mu.Lock()
		done := len(p.shards) == 0 && !p.retiring
		if done {
			p.retiring = true
		}
		p.mu.Unlock()
		if !done {
			continue
		}
		go func(p *proc) {
			m.retire(p, m.cfg.Cluster.WorkerShutdownTimeout.Duration)
			m.mu.Lock()
			s.old = slices.DeleteFunc(s.old, func(q *proc) bool { return q == p })
			m.mu.Unlock()
		}(p)
	}
}

// awaitOwner returns shard n's owner. A shard without one is being
// handed to one (its owner died during the rollout and the supervisor is
// adopting it): wait for that, up to the boot timeout.
func (m *Master) awaitOwner(n int) *proc {
	deadline := time.Now().Add(m.cfg.Cluster.WorkerBootTimeout.Duration)
	for {
		if p := m.router.Owner(n); p != nil || time.Now().After(deadline) {
			return p
		}
		select {
		case <-m.stopCh:
			return nil
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// slotDown reports whether slot i has no running worker or one is being
// booted to replace a crashed one.
func (m *Master) slotDown(i int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return i < len(m.slots) && (m.slots[i].cur == nil || m.slots[i].replacing)
}

// bootSpare starts a worker that owns no shards yet.
func (m *Master) bootSpare(i, phase int) (*proc, error) {
	return m.startWorker(i, phase, nil, nil)
}

// handoff moves shards from one worker to another without losing or
// failing a request: hold the shards' requests, let the old owner answer
// what it has and release, let the new owner replay, then release the held
// requests to it. from may be nil (a dead worker: the shards are on disk).
//
// Every failure ends with exactly one owner (see the table in doc.go): a
// process that may still have a shard open is killed and reaped before
// anyone else opens it, and a shard whose owners both failed is left to
// the supervisor, which opens it in the killed new owner's replacement.
func (m *Master) handoff(from, to *proc, shards []int) error {
	if len(shards) == 0 {
		return nil
	}
	timeout := m.cfg.Cluster.WorkerBootTimeout.Duration
	start := time.Now()
	// While shards move from a live worker, readiness (/healthz) stays ok:
	// their requests are held and answered by the new owner, none fails.
	// Once the handoff ends, a shard left without an owner is unready
	// again. Shards of a dead worker (from == nil) were unready already.
	if from != nil {
		m.router.SetHandoff(shards, true)
		defer m.router.SetHandoff(shards, false)
	}
	m.router.SetOwner(shards, nil)
	var running []ipc.RunningJob
	if from != nil {
		m.setShards(shards, shardReleasing, from, "handoff")
		// From here the shards are no longer from's: if it dies now, its
		// replacement must not open them.
		from.mu.Lock()
		from.shards = slices.DeleteFunc(slices.Clone(from.shards), func(s int) bool { return slices.Contains(shards, s) })
		from.mu.Unlock()
		rel, err := request(from, ipc.TypeRelease, ipc.Release{Shards: shards}, from.released, timeout,
			func(r ipc.Released) uint64 { return r.Seq }, func(r *ipc.Release, seq uint64) { r.Seq = seq })
		switch {
		case err == nil && !sameShards(rel.Shards, shards):
			// It did not own them all: someone else may. Opening them here
			// could make two writers; give back what it did release. The
			// rest stay unowned (their requests expire as "shard
			// unavailable"): safe, where guessing an owner is not.
			m.giveBack(from, rel.Shards, rel.Running)
			return fmt.Errorf("worker %d released %v, not %v", from.index, rel.Shards, shards)
		case err == nil && rel.Error != "":
			// It closed the shards, but what it wrote may not all be
			// durable: the handoff fails, and it reopens them from their
			// files, so memory matches the disk again.
			m.giveBack(from, shards, rel.Running)
			return fmt.Errorf("worker %d failed to release shards %v: %s", from.index, shards, rel.Error)
		case err != nil:
			// The old owner must not write the shards once another opens
			// them: make sure it is gone, then continue from disk.
			from.log.Warn("old owner did not release; killing it and continuing from disk", "error", err)
			from.killAndReap("no answer to Release: " + err.Error())
		default:
			running = rel.Running
		}
	}
	released := time.Since(start)
	m.setShards(shards, shardAcquiring, to, "released")
	ready, err := request(to, ipc.TypeAcquire, ipc.Acquire{Shards: shards, Running: running, Epoch: m.epochs.next()}, to.ready, timeout,
		func(r ipc.Ready) uint64 { return r.Seq }, func(a *ipc.Acquire, seq uint64) { a.Seq = seq })
	if err == nil && ready.Error != "" {
		// It answered and opened nothing: the old owner takes them back.
		err = fmt.Errorf("new owner cannot open shards: %s", ready.Error)
		if !m.giveBack(from, shards, running) {
			m.orphan(to, shards, "new owner cannot open them and the old one is gone")
		}
		return err
	}
	if err != nil {
		// It may be replaying them still, and would write them once done:
		// it must be gone before anyone else opens them. Who opens them
		// next is decided before it is killed: the old owner if it is
		// alive, else the new owner's replacement.
		to.log.Warn("new owner did not acquire in time; killing it", "shards", shards, "error", err)
		if !from.canOwn() {
			m.orphan(to, shards, "new owner failed and the old one is gone")
			to.killAndReap("no answer to Acquire: " + err.Error())
			return err
		}
		to.killAndReap("no answer to Acquire: " + err.Error())
		if !m.giveBack(from, shards, running) {
			m.log.Error("shards left without an owner after a failed handoff", "shards", shards)
		}
		return err
	}
	to.mu.Lock()
	for _, s := range shards {
		if !slices.Contains(to.shards, s) {
			to.shards = append(to.shards, s)
		}
	}
	slices.Sort(to.shards)
	to.mu.Unlock()
	m.router.SetOwner(shards, to)
	m.setShards(shards, shardOwned, to, "acquired")
	m.log.Info("shards handed off", "shards", shards, "to", to.index, "held", time.Since(start), "release", released)
	return nil
}

func sameShards(a, b []int) bool {
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	return slices.Equal(a, b)
}

// giveBack returns shards to their old owner after a failed handoff (the
// new owner is dead or never opened them), so they are not left without
// one. It reports false when from cannot own them (gone or dying): the
// caller then orphans them. If from fails to take them it is killed, and
// its successor opens them with the rest of its shards.
func (m *Master) giveBack(from *proc, shards []int, running []ipc.RunningJob) bool {
	if len(shards) == 0 {
		return true
	}
	if !from.canOwn() {
		return false
	}
	m.setShards(shards, shardReclaiming, from, "handoff failed")
	// Its shards from now: if it fails, its successor opens them.
	from.mu.Lock()
	from.shards = slices.Sorted(slices.Values(append(slices.Clone(from.shards), shards...)))
	from.mu.Unlock()
	ready, err := request(from, ipc.TypeAcquire, ipc.Acquire{Shards: shards, Running: running, Epoch: m.epochs.next()}, from.ready, m.cfg.Cluster.WorkerBootTimeout.Duration,
		func(r ipc.Ready) uint64 { return r.Seq }, func(a *ipc.Acquire, seq uint64) { a.Seq = seq })
	if err != nil || ready.Error != "" {
		from.log.Error("cannot give shards back after a failed handoff; killing it, its successor opens them", "shards", shards, "error", err, "ready_error", ready.Error)
		m.setShards(shards, shardOrphaned, from, "old owner failed to take them back")
		from.killAndReap("failed to take shards back")
		return true
	}
	m.spans.reclaimed(from, running)
	m.router.SetOwner(shards, from)
	m.setShards(shards, shardOwned, from, "given back")
	return true
}

// orphan gives shards whose old owner is gone to to's slot: to is killed
// after this (or is dead already), and the slot's next worker, the
// supervisor's replacement of to, opens them. If that replacement is up
// already, it adopts them now.
func (m *Master) orphan(to *proc, shards []int, why string) {
	m.setShards(shards, shardOrphaned, to, why)
	m.mu.Lock()
	if to.index >= len(m.slots) {
		m.mu.Unlock()
		m.log.Error("orphaned shards have no slot to go to", "shards", shards, "worker", to.index)
		return
	}
	home := m.slots[to.index]
	cur := home.cur
	if cur == to || cur == nil || home.replacing {
		home.orphans = slices.Compact(slices.Sorted(slices.Values(append(home.orphans, shards...))))
		m.mu.Unlock()
		return
	}
	m.mu.Unlock()
	go func() {
		if err := m.handoff(nil, cur, shards); err != nil {
			m.log.Error("adopt orphaned shards", "shards", shards, "error", err)
		}
	}()
}

// requestSeq numbers handoff requests, so an answer is matched to its
// request: a late answer to a timed-out one, or a duplicate, is dropped.
var requestSeq atomic.Uint64

// request sends a control message and waits for its answer on ch: the
// first whose sequence number (seqOf) is the request's (set by setSeq).
// Answers to other requests are logged and dropped.
func request[T, M any](p *proc, t ipc.Type, msg M, ch chan T, timeout time.Duration, seqOf func(T) uint64, setSeq func(*M, uint64)) (T, error) {
	var zero T
	p.control.Lock()
	defer p.control.Unlock()
	seq := requestSeq.Add(1)
	if setSeq != nil {
		setSeq(&msg, seq)
	}
	if err := p.link.SendJSON(t, msg); err != nil {
		return zero, err
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case v := <-ch:
			if seqOf != nil {
				if got := seqOf(v); got != 0 && got != seq {
					p.log.Warn("dropped an answer to another request", "type", t, "seq", got, "want", seq)
					continue
				}
			}
			return v, nil
		case <-p.linkDone:
			return zero, errors.New("worker exited")
		case <-timer.C:
			return zero, fmt.Errorf("no answer to %s within %s", t, timeout)
		}
	}
}
