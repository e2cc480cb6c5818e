package master

import (
	"errors"
	"fmt"
	"slices"
	"time"

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
	err := m.rollOut(phase)
	m.mu.Lock()
	m.restart.inProgress = false
	if err != nil {
		m.restart.lastError = err.Error()
	} else {
		m.restart.lastError = ""
	}
	m.mu.Unlock()
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
		old.mu.Lock()
		old.draining = true
		old.mu.Unlock()
		s.old = append(s.old, old)
	}
	m.mu.Unlock()
	m.watch(np)
	// Let the new worker read the shards while the old one still serves
	// them; each handoff then only catches up. Best effort: without it the
	// handoff replays the whole shard.
	if _, err := request(np, ipc.TypePrepare, ipc.Prepare{Shards: shards}, np.prepared, m.cfg.Cluster.WorkerBootTimeout.Duration); err != nil {
		np.log.Warn("read-ahead of shards failed; handing off with full replays", "error", err)
	}
	// One shard at a time: each hold lasts one shard's replay, not the
	// whole worker's. Each shard comes from its actual owner (the router's
	// map is the truth): after an aborted rollout some may still be with
	// an older draining worker rather than with old.
	for _, sh := range shards {
		from := m.router.Owner(sh)
		if from == np {
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
		// From here the shards are no longer from's: if it dies now, its
		// replacement must not open them.
		from.mu.Lock()
		from.shards = slices.DeleteFunc(slices.Clone(from.shards), func(s int) bool { return slices.Contains(shards, s) })
		from.mu.Unlock()
		rel, err := request(from, ipc.TypeRelease, ipc.Release{Shards: shards}, from.released, timeout)
		if err == nil && !sameShards(rel.Shards, shards) {
			// It did not own them all: someone else may. Opening them here
			// could make two writers; give back what it did release.
			// The rest stay unowned (their requests expire as "shard
			// unavailable"): safe, where guessing an owner is not.
			m.giveBack(from, rel.Shards, rel.Running)
			return fmt.Errorf("worker %d released %v, not %v", from.index, rel.Shards, shards)
		}
		if err != nil {
			// The old owner must not write the shards once another opens
			// them: make sure it is gone, then continue from disk.
			from.log.Warn("old owner did not release; killing it and continuing from disk", "error", err)
			from.kill()
			<-from.exited
		} else {
			running = rel.Running
		}
	}
	released := time.Since(start)
	ready, err := request(to, ipc.TypeAcquire, ipc.Acquire{Shards: shards, Running: running}, to.ready, timeout)
	if err == nil && ready.Error != "" {
		err = fmt.Errorf("new owner cannot open shards: %s", ready.Error)
	}
	if err != nil {
		m.giveBack(from, shards, running)
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
	m.log.Info("shards handed off", "shards", shards, "to", to.index, "held", time.Since(start), "release", released)
	return nil
}

func sameShards(a, b []int) bool {
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	return slices.Equal(a, b)
}

// giveBack returns shards to their old owner after a failed handoff, so
// they are not left without one. If it is gone too, they stay held until
// its slot's replacement opens them.
func (m *Master) giveBack(from *proc, shards []int, running []ipc.RunningJob) {
	if from == nil || !from.isBooted() {
		return
	}
	ready, err := request(from, ipc.TypeAcquire, ipc.Acquire{Shards: shards, Running: running}, from.ready, m.cfg.Cluster.WorkerBootTimeout.Duration)
	if err != nil || ready.Error != "" {
		from.log.Error("cannot give shards back after a failed handoff", "shards", shards, "error", err)
		return
	}
	from.mu.Lock()
	from.shards = slices.Sorted(slices.Values(append(slices.Clone(from.shards), shards...)))
	from.mu.Unlock()
	m.router.SetOwner(shards, from)
}

// request sends a control message and waits for its answer on ch.
func request[T any](p *proc, t ipc.Type, msg any, ch chan T, timeout time.Duration) (T, error) {
	var zero T
	for len(ch) > 0 { // a late answer to an earlier, timed-out request
		<-ch
	}
	if err := p.link.SendJSON(t, msg); err != nil {
		return zero, err
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v, nil
	case <-p.linkDone:
		return zero, errors.New("worker exited")
	case <-timer.C:
		return zero, fmt.Errorf("no answer to %s within %s", t, timeout)
	}
}
