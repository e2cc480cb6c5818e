package master

import (
	"sync"

	"github.com/tockd/tock/ipc"
)

// spanKey names one execution of one job.
type spanKey struct {
	shard int
	job   string
	exec  int64
}

// spanning tracks executions that span a handoff: they run in a worker that
// no longer owns their shard, and the shard's owner waits for their outcome
// (ipc.Released.Running). Each is tracked from the Released that listed it
// until an outcome for it arrives. If the worker running it dies first, the
// master requeues the job to the shard's owner, so it runs again there
// (at-least-once, as after a crash) instead of staying triggered for ever.
type spanning struct {
	mu   sync.Mutex
	runs map[spanKey]*proc // execution → the worker it runs in
}

func newSpanning() *spanning { return &spanning{runs: map[spanKey]*proc{}} }

// released records the executions p listed in its Released. An execution p
// inherited from an older worker (it was awaiting its outcome) stays
// attributed to that worker, which is the one running it.
func (s *spanning) released(p *proc, running []ipc.RunningJob) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range running {
		k := spanKey{r.Shard, r.JobID, r.Execution}
		if _, ok := s.runs[k]; !ok {
			s.runs[k] = p
		}
	}
}

// reclaimed forgets executions given back to the worker running them
// (a failed handoff returned their shard to it): it records them itself.
func (s *spanning) reclaimed(p *proc, running []ipc.RunningJob) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range running {
		k := spanKey{r.Shard, r.JobID, r.Execution}
		if s.runs[k] == p {
			delete(s.runs, k)
		}
	}
}

// finished forgets an execution whose outcome arrived.
func (s *spanning) finished(o ipc.Outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.runs, spanKey{o.Shard, o.JobID, o.Execution})
}

// orphaned removes and returns, as requeue outcomes, the executions that
// were running in p, which is dead.
func (s *spanning) orphaned(p *proc) []ipc.Outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ipc.Outcome
	for k, q := range s.runs {
		if q == p {
			out = append(out, ipc.Outcome{Shard: k.shard, JobID: k.job, Execution: k.exec, Requeue: true})
			delete(s.runs, k)
		}
	}
	return out
}

// count is how many executions span a handoff now (for tests and stats).
func (s *spanning) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.runs)
}
