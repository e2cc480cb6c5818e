package master

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tockd/tock/ipc"
)

// Backoff for restarting a crashed worker: 100 ms doubling to 30 s, reset
// once a worker has run healthy for a minute.
const (
	backoffMin   = 100 * time.Millisecond
	backoffMax   = 30 * time.Second
	healthyAfter = time.Minute
)

// assignShards spreads shards over n workers round-robin: shard s → s mod n.
func assignShards(shards, n int) [][]int {
	out := make([][]int, n)
	for s := 0; s < shards; s++ {
		out[s%n] = append(out[s%n], s)
	}
	return out
}

// bootWorkers starts the configured workers and waits until all are ready.
func (m *Master) bootWorkers() error {
	n := m.cfg.Cluster.Workers
	assign := assignShards(m.hostShards(), n)
	m.mu.Lock()
	m.phase = 0
	for i := 0; i < n; i++ {
		m.slots = append(m.slots, &slot{index: i, shards: assign[i]})
	}
	m.mu.Unlock()
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func(i int) {
			p, err := m.startWorker(i, 0, assign[i], nil)
			if err == nil {
				m.mu.Lock()
				m.slots[i].cur = p
				m.mu.Unlock()
				m.watch(p)
			}
			errs <- err
		}(i)
	}
	var first error
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// startWorker spawns a worker, runs the handshake and waits for it to report
// its shards ready, all within the boot timeout. On success the router
// sends the shards' requests to it.
func (m *Master) startWorker(index, phase int, shards []int, running []ipc.RunningJob) (*proc, error) {
	p, err := spawn(m.spawner, spawnSpec{exe: m.opts.Exe, index: index, phase: phase, args: m.opts.WorkerArgs}, m.log)
	if err != nil {
		return nil, err
	}
	go m.readLink(p)
	m.mu.Lock()
	m.booting = append(m.booting, p)
	m.live = append(m.live, p)
	m.mu.Unlock()
	go m.reap(p)
	err = m.handshake(p, shards, running)
	m.mu.Lock()
	m.booting = slices.DeleteFunc(m.booting, func(q *proc) bool { return q == p })
	m.mu.Unlock()
	if err != nil {
		p.log.Error("worker failed to boot", "error", err)
		p.killAndReap("failed to boot: " + err.Error())
		return nil, fmt.Errorf("worker %d: %w", index, err)
	}
	p.log.Info("worker booted", "phase", phase, "shards", len(shards))
	m.router.SetOwner(shards, p)
	m.setShards(shards, shardOwned, p, "booted with them")
	return p, nil
}

func (m *Master) handshake(p *proc, shards []int, running []ipc.RunningJob) error {
	deadline := time.NewTimer(m.cfg.Cluster.WorkerBootTimeout.Duration)
	defer deadline.Stop()
	var hello ipc.Hello
	select {
	case hello = <-p.hello:
	case <-p.linkDone:
		return fmt.Errorf("exited before hello: %v", p.waitExit(time.Second))
	case <-deadline.C:
		return errors.New("no hello within the boot timeout")
	}
	if hello.Proto != ipc.ProtoVersion {
		return fmt.Errorf("speaks ipc protocol %d, master speaks %d", hello.Proto, ipc.ProtoVersion)
	}
	err := m.rules.welcome(p, func(rules ipc.Rules) error {
		w := ipc.Welcome{Index: p.index, Phase: p.phase, Settings: m.settings(), Shards: shards, Running: running, Rules: rules, Epoch: m.epochs.next()}
		return p.link.SendJSON(ipc.TypeWelcome, w)
	})
	if err != nil {
		return fmt.Errorf("send welcome: %w", err)
	}
	select {
	case r := <-p.ready:
		if r.Error != "" {
			return fmt.Errorf("cannot open its shards: %s", r.Error)
		}
		for shard, e := range r.ShardErrors {
			p.log.Error("shard cannot be served", "shard", shard, "error", e)
		}
		m.noteReopened(r.Epochs)
	case <-p.linkDone:
		return fmt.Errorf("exited while booting: %v", p.waitExit(time.Second))
	case <-deadline.C:
		return errors.New("not ready within the boot timeout")
	}
	p.mu.Lock()
	p.shards = slices.Clone(shards) // never share a backing array with a slot
	p.lastCheckin = time.Now()
	p.mu.Unlock()
	p.setState(workerServing, "booted")
	return nil
}

// waitExit waits up to d for the process to be reaped and returns its exit
// error, for messages.
func (p *proc) waitExit(d time.Duration) error {
	select {
	case <-p.exited:
		if p.exitErr == nil {
			return errors.New("exit status 0")
		}
		return p.exitErr
	case <-time.After(d):
		return errors.New("link closed")
	}
}

// readLink dispatches the worker's frames until the link breaks.
func (m *Master) readLink(p *proc) {
	defer func() { go m.requeueOrphans(p) }()
	defer close(p.linkDone)
	defer m.rules.forget(p)
	defer m.router.WorkerGone(p)
	var rb replyBatch
	for {
		// Replies are decoded as they come and delivered once no whole
		// frame is buffered (replies.go).
		if !p.link.FrameBuffered() || len(rb.replies) >= maxReplyBatch {
			if err := m.deliverReplies(p, &rb); err != nil {
				m.badFrame(p, err)
				return
			}
		}
		f, err := p.link.RecvShared()
		if err != nil {
			if err := m.deliverReplies(p, &rb); err != nil {
				m.badFrame(p, err)
				return
			}
			p.log.Debug("worker link closed", "error", err)
			p.link.Abort()
			return
		}
		if f.Type == ipc.TypeReply {
			r, err := ipc.DecodeReply(f.Payload) // copies what it keeps
			if err == nil {
				rb.replies = append(rb.replies, r)
				continue
			}
		}
		if err := m.deliverReplies(p, &rb); err != nil {
			m.badFrame(p, err)
			return
		}
		f.Payload = bytes.Clone(f.Payload) // handlers may keep it
		if err := m.handleWorkerFrame(p, f); err != nil {
			m.badFrame(p, err)
			return
		}
	}
}

func (m *Master) handleWorkerFrame(p *proc, f ipc.Frame) error {
	switch f.Type {
	case ipc.TypeReply:
		r, err := ipc.DecodeReply(f.Payload)
		if err != nil {
			return err
		}
		p.mu.Lock()
		pe := p.inflight[r.Seq]
		delete(p.inflight, r.Seq)
		p.mu.Unlock()
		if pe == nil {
			return nil
		}
		if r.Kind == ipc.KindNotOwned {
			if pe.proc != nil || pe.req.Shard < 0 || pe.req.Shard >= m.cfg.Cluster.Shards {
				// Only a single-shard request can be "not owned".
				pe.finish(ipc.Reply{Kind: ipc.KindStat})
				return errors.New("not-owned reply to a request bound to this worker")
			}
			m.router.Rehold(pe)
			return nil
		}
		pe.finish(r)
	case ipc.TypeStatus:
		var st ipc.Status
		if err := ipc.DecodeJSON(f.Payload, &st); err != nil {
			return err
		}
		p.mu.Lock()
		if st.Metrics != nil {
			p.lastMetrics = st.Metrics
			st.Metrics = nil
		}
		p.lastStatus, p.lastCheckin = st, time.Now()
		p.mu.Unlock()
		if len(st.Fenced) > 0 {
			m.noteFenced(p, st.Fenced)
		}
	case ipc.TypeHello:
		var h ipc.Hello
		if err := ipc.DecodeJSON(f.Payload, &h); err != nil {
			return err
		}
		select {
		case p.hello <- h:
		default:
			return errors.New("second hello")
		}
	case ipc.TypeReady:
		var r ipc.Ready
		if err := ipc.DecodeJSON(f.Payload, &r); err != nil {
			return err
		}
		select {
		case p.ready <- r:
		default:
			return errors.New("ready nobody asked for")
		}
	case ipc.TypePrepared:
		var r ipc.Prepared
		if err := ipc.DecodeJSON(f.Payload, &r); err != nil {
			return err
		}
		select {
		case p.prepared <- r:
		default: // nobody waits any more
		}
	case ipc.TypeReleased:
		var r ipc.Released
		if err := ipc.DecodeJSON(f.Payload, &r); err != nil {
			return err
		}
		// Tracked before anything else is read from p: an Outcome for
		// these may follow on the link at once.
		m.spans.released(p, r.Running)
		select {
		case p.released <- r:
		default:
			return errors.New("released nobody asked for")
		}
	case ipc.TypeRulesAck:
		var a ipc.RulesAck
		if err := ipc.DecodeJSON(f.Payload, &a); err != nil {
			return err
		}
		select {
		case p.rulesAck <- a.Version:
		default: // only the latest matters; a waiter re-checks
		}
		m.rules.acked(p, a.Version)
	case ipc.TypeCallReply:
		var r ipc.CallReply
		if err := ipc.DecodeJSON(f.Payload, &r); err != nil {
			return err
		}
		p.mu.Lock()
		ch := p.calls[r.ID]
		delete(p.calls, r.ID)
		p.mu.Unlock()
		if ch != nil {
			ch <- r // buffered for one; the id was used once
		}
	case ipc.TypeOutcome:
		var o ipc.Outcome
		if err := ipc.DecodeJSON(f.Payload, &o); err != nil {
			return err
		}
		m.forwardOutcome(o)
	default:
		return fmt.Errorf("unexpected frame %s", f.Type)
	}
	return nil
}

// forwardOutcome hands an old owner's execution result to the shard's
// current owner (see Router.ForwardOutcome).
func (m *Master) forwardOutcome(o ipc.Outcome) {
	if o.Shard < 0 || o.Shard >= m.cfg.Cluster.Shards {
		return
	}
	m.spans.finished(o)
	if !m.router.ForwardOutcome(o) {
		m.log.Warn("too many outcomes for a shard in handoff; dropped, the job will run again after a restart", "shard", o.Shard, "job", o.JobID)
	}
}

// requeueOrphans, once p is dead, requeues the executions that spanned a
// handoff and were still running in p to their shards' owners: they run
// again there (at-least-once, as after a crash) rather than stay triggered.
func (m *Master) requeueOrphans(p *proc) {
	<-p.exited
	for _, o := range m.spans.orphaned(p) {
		p.log.Warn("worker died while running a job whose shard had moved; the shard's owner runs it again", "shard", o.Shard, "job", o.JobID)
		m.forwardOutcome(o)
	}
}

// watch supervises p until it exits, then replaces it unless it was
// retired (draining, or the cluster is stopping).
func (m *Master) watch(p *proc) {
	go func() {
		<-p.linkDone
		select {
		case <-p.exited:
		case <-time.After(time.Second):
			p.killAndReap("link closed but the process lives on") // it is useless
		}
		m.retireMetrics(p)
		p.setState(workerExited, fmt.Sprintf("exited: %v", p.exitErr))
		m.mu.Lock()
		s := m.slotOf(p)
		replace := s != nil && !m.stopping && !p.draining
		if replace {
			s.cur = nil
		}
		stopping := m.stopping
		m.mu.Unlock()
		if !replace {
			if !stopping && p.draining {
				m.adoptOrphans(p)
			}
			return
		}
		p.log.Error("worker died, replacing it", "exit", p.exitErr, "uptime", time.Since(p.started).Round(time.Millisecond))
		p.mu.Lock()
		orphans := slices.Clone(p.shards)
		hung := p.hung
		p.mu.Unlock()
		m.setShards(orphans, shardOrphaned, p, "owner died")
		if hung {
			m.restarts.hang.Add(1)
		} else {
			m.restarts.crash.Add(1)
		}
		m.replace(s, p)
	}()
}

// adoptOrphans gives the shards a draining worker still owned when it died
// (an aborted rollout leaves some with it) to its slot's current worker,
// from disk: the dead cannot write any more.
func (m *Master) adoptOrphans(dead *proc) {
	dead.mu.Lock()
	shards := slices.Clone(dead.shards)
	dead.shards = nil
	dead.mu.Unlock()
	if len(shards) == 0 {
		return
	}
	m.mu.Lock()
	var cur *proc
	var home *slot
	for _, s := range m.slots {
		if slices.Contains(s.old, dead) {
			home = s
			if !s.replacing {
				cur = s.cur
			}
		}
	}
	if cur == nil && home != nil {
		// The slot's worker is down: its replacement opens them.
		home.orphans = slices.Sorted(slices.Values(append(home.orphans, shards...)))
	}
	m.mu.Unlock()
	if cur == nil {
		if home == nil {
			m.log.Error("shards of a dead draining worker have no one to take them", "worker", dead.index, "shards", shards)
		} else {
			m.setShards(shards, shardOrphaned, dead, "draining owner died; the slot's replacement opens them")
		}
		return
	}
	dead.log.Warn("draining worker died with shards; its slot's worker takes them", "shards", shards)
	if err := m.handoff(nil, cur, shards); err != nil {
		m.log.Error("adopt shards of a dead draining worker", "shards", shards, "error", err)
	}
}

func (m *Master) slotOf(p *proc) *slot {
	for _, s := range m.slots {
		if s.cur == p {
			return s
		}
	}
	return nil
}

// replace restarts a slot's worker with backoff until one boots or the
// cluster stops. It counts one restart. The replacement opens the shards
// the dead process owned (during a rollout, the others are still with the
// old worker). The slot is marked replacing throughout, so no rollout or
// rebalance opens the same shards meanwhile.
func (m *Master) replace(s *slot, dead *proc) {
	dead.mu.Lock()
	shards := slices.Clone(dead.shards)
	dead.mu.Unlock()
	m.mu.Lock()
	s.restarts++
	s.replacing = true
	if time.Since(dead.started) >= healthyAfter {
		s.failures = 0
	}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		s.replacing = false
		m.mu.Unlock()
	}()
	for {
		m.mu.Lock()
		delay := backoffFor(s.failures)
		s.failures++
		phase, stopping := m.phase, m.stopping
		m.mu.Unlock()
		if stopping {
			return
		}
		select {
		case <-time.After(delay):
		case <-m.stopCh:
			return
		}
		m.mu.Lock()
		orphans := slices.Clone(s.orphans)
		m.mu.Unlock()
		open := slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(shards), orphans...))))
		p, err := m.startWorker(s.index, phase, open, nil)
		if err != nil {
			m.log.Error("replacement worker failed to boot", "worker", s.index, "error", err)
			m.restarts.bootFailure.Add(1)
			continue
		}
		m.mu.Lock()
		s.orphans = slices.DeleteFunc(s.orphans, func(n int) bool { return slices.Contains(orphans, n) })
		if m.stopping {
			m.mu.Unlock()
			m.retire(p, 0)
			return
		}
		s.cur = p
		m.mu.Unlock()
		m.watch(p)
		return
	}
}

func backoffFor(failures int) time.Duration {
	if failures <= 0 {
		return backoffMin
	}
	d := backoffMin << min(failures, 20)
	return min(d, backoffMax)
}

// checkHeartbeats kills booted workers silent for longer than the worker
// timeout; watch then replaces them.
func (m *Master) checkHeartbeats(now time.Time) {
	timeout := m.cfg.Cluster.WorkerTimeout.Duration
	m.mu.Lock()
	var hung []*proc
	for _, s := range m.slots {
		for _, p := range append([]*proc{s.cur}, s.old...) {
			if p == nil {
				continue
			}
			p.mu.Lock()
			// A retiring worker drains executions with its loop stopped:
			// retire bounds it instead.
			if p.booted && !p.dead && !p.retiring && now.Sub(p.lastCheckin) > timeout {
				hung = append(hung, p)
			}
			p.mu.Unlock()
		}
	}
	m.mu.Unlock()
	for _, p := range hung {
		p.log.Error("worker missed its heartbeats, killing it", "timeout", timeout)
		p.mu.Lock()
		p.hung = true
		p.mu.Unlock()
		p.setState(workerKilled, "missed heartbeats")
		p.kill()
	}
}

// retire asks p to drain and exit, and kills it after timeout.
func (m *Master) retire(p *proc, timeout time.Duration) {
	p.setState(workerRetiring, "shutdown")
	if err := p.link.PostJSON(ipc.TypeShutdown, ipc.Shutdown{TimeoutNs: int64(timeout)}); err != nil {
		p.killAndReap("cannot send shutdown: " + err.Error())
	}
	select {
	case <-p.exited:
	case <-time.After(timeout + 5*time.Second):
		p.log.Warn("worker did not exit after shutdown, killing it")
		p.killAndReap("shutdown timeout")
	}
}

// stopWorkers retires every worker in parallel.
func (m *Master) stopWorkers(timeout time.Duration) {
	m.mu.Lock()
	m.stopping = true
	var all []*proc
	for _, s := range m.slots {
		if s.cur != nil {
			all = append(all, s.cur)
		}
		all = append(all, s.old...)
	}
	m.mu.Unlock()
	done := make(chan struct{}, len(all))
	for _, p := range all {
		go func(p *proc) { m.retire(p, timeout); done <- struct{}{} }(p)
	}
	for range all {
		<-done
	}
}
