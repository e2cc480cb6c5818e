package master

import (
	"errors"
	"fmt"
	"github.com/tockd/tock/config"
	"github.com/tockd/tock/ipc"
	"slices"
	"time"
)

// Scale sets the number of workers (at least 1) in the background. New
// workers boot empty and take their shards through handoffs; removed ones
// hand theirs over first, then drain and exit.
func (m *Master) Scale(target int) error {
	if target < 1 {
		return errors.New("a cluster needs at least one worker")
	}
	if target > m.MaxWorkers() {
		return fmt.Errorf("at most %d workers (one per shard)", m.MaxWorkers())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.restart.inProgress {
		return ErrRestartInProgress
	}
	if m.stopping {
		return errors.New("stopping")
	}
	if target == len(m.slots) {
		return nil
	}
	m.restart = restartState{inProgress: true, startedAt: time.Now()}
	go func() {
		err := m.scaleTo(target)
		m.mu.Lock()
		m.restart.inProgress = false
		if err != nil {
			m.restart.lastError = err.Error()
		}
		m.mu.Unlock()
		if err != nil {
			m.log.Error("scaling failed", "target", target, "error", err)
			return
		}
		m.log.Info("scaled", "workers", target)
	}()
	return nil
}

// MaxWorkers is the most workers the cluster can use: one per shard, and
// no more than the configuration allows.
func (m *Master) MaxWorkers() int { return min(config.MaxWorkers, m.cfg.Cluster.Shards) }

// ScaleBy adds delta workers (negative removes).
func (m *Master) ScaleBy(delta int) error {
	m.mu.Lock()
	n := len(m.slots)
	m.mu.Unlock()
	return m.Scale(n + delta)
}

func (m *Master) scaleTo(target int) error {
	m.mu.Lock()
	phase, n := m.phase, len(m.slots)
	m.mu.Unlock()
	for i := n; i < target; i++ {
		p, err := m.bootSpare(i, phase)
		if err != nil {
			return fmt.Errorf("boot worker %d: %w", i, err)
		}
		m.mu.Lock()
		m.slots = append(m.slots, &slot{index: i, cur: p})
		m.mu.Unlock()
		m.watch(p)
	}
	if err := m.rebalance(target); err != nil {
		return err
	}
	m.mu.Lock()
	var removed []*slot
	if target < len(m.slots) {
		removed = m.slots[target:]
		m.slots = m.slots[:target:target]
	}
	m.mu.Unlock()
	for _, s := range removed {
		if p := s.cur; p != nil {
			p.setState(workerDraining, "removed by scaling")
			m.retire(p, m.cfg.Cluster.WorkerShutdownTimeout.Duration)
		}
	}
	return nil
}

// rebalance moves shards so that shard s is owned by slot s mod n.
func (m *Master) rebalance(n int) error {
	want := assignShards(m.cfg.Cluster.Shards, n)
	for to := 0; to < n; to++ {
		for from := 0; from < m.slotCount(); from++ {
			if from == to {
				continue
			}
			m.mu.Lock()
			src, dst := m.slots[from], m.slots[to]
			var moving []int
			for _, s := range src.shards {
				if slices.Contains(want[to], s) {
					moving = append(moving, s)
				}
			}
			fp, tp := src.cur, dst.cur
			down := src.replacing || dst.replacing || fp == nil || tp == nil
			m.mu.Unlock()
			if len(moving) == 0 {
				continue
			}
			if down {
				return fmt.Errorf("cannot move shards from worker %d to %d: one is down", from, to)
			}
			if _, err := request(tp, ipc.TypePrepare, ipc.Prepare{Shards: moving}, tp.prepared, m.cfg.Cluster.WorkerBootTimeout.Duration, nil, nil); err != nil {
				tp.log.Warn("read-ahead of shards failed; handing off with full replays", "error", err)
			}
			if err := m.handoff(fp, tp, moving); err != nil {
				return fmt.Errorf("move shards %v from worker %d to %d: %w", moving, from, to, err)
			}
			m.mu.Lock()
			src.shards = slices.DeleteFunc(slices.Clone(src.shards), func(s int) bool { return slices.Contains(moving, s) })
			dst.shards = slices.Sorted(slices.Values(append(slices.Clone(dst.shards), moving...)))
			m.mu.Unlock()
		}
	}
	return nil
}

func (m *Master) slotCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.slots)
}
