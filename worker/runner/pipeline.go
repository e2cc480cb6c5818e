package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tockd/tock/store"
)

// ErrShutdown is the cancellation cause of executions still running when a
// Pipeline's Shutdown deadline passes; its text is their Outcome.Error.
var ErrShutdown = errors.New("canceled: worker shutting down")

// shutdownGrace bounds how long Shutdown waits, after cancelling, for the
// cancelled executions to report. Runners honour cancellation promptly
// (processes are SIGKILLed); this only guards against one that does not.
const shutdownGrace = 5 * time.Second

// Result is a finished execution and its outcome.
type Result struct {
	Execution Execution
	Outcome   store.Outcome
}

// Pipeline runs executions concurrently, at most maxInflight at a time, the
// rest queued FIFO. No method blocks on an execution (Shutdown waits by
// design): the worker's event loop submits, gets notified, and collects.
//
// An execution counts as pending from Submit until it starts and as inflight
// from its start until its Result is available from TakeResults; the
// transition from one execution to the next queued one is atomic, so
// Pending()+Inflight() plus the results taken or takeable always equals the
// executions submitted.
type Pipeline struct {
	run    Runner
	log    hclog.Logger
	max    int
	ctx    context.Context
	cancel context.CancelCauseFunc
	notify chan struct{}

	mu       sync.Mutex
	queue    fifo
	inflight int
	results  []Result
	stopping bool
	drained  chan struct{} // closed once stopping and nothing runs
	isDrain  bool
}

// NewPipeline returns a pipeline running executions with r, at most
// maxInflight concurrently (values below 1 mean 1). log may be nil.
func NewPipeline(maxInflight int, r Runner, log hclog.Logger) *Pipeline {
	if maxInflight < 1 {
		maxInflight = 1
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	return &Pipeline{
		run: r, log: log, max: maxInflight, ctx: ctx, cancel: cancel,
		notify:  make(chan struct{}, 1),
		drained: make(chan struct{}),
	}
}

// Submit queues ex, starting it at once when fewer than maxInflight run. It
// never blocks. After Shutdown it drops ex with a warning (the job is still
// persisted as triggered and runs again after the restart).
func (p *Pipeline) Submit(ex Execution) {
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		p.log.Warn("execution submitted during shutdown, not run", "job", ex.JobID)
		return
	}
	if p.inflight < p.max {
		p.inflight++
		p.mu.Unlock()
		go p.work(ex)
		return
	}
	p.queue.push(ex)
	p.mu.Unlock()
}

// work runs ex, then the queued executions, until the queue is empty.
func (p *Pipeline) work(ex Execution) {
	for {
		o := p.runOne(ex)
		p.mu.Lock()
		p.results = append(p.results, Result{Execution: ex, Outcome: o})
		next, more := Execution{}, false
		if !p.stopping {
			next, more = p.queue.pop()
		}
		if !more {
			p.inflight--
			if p.stopping && p.inflight == 0 && !p.isDrain {
				p.isDrain = true
				close(p.drained)
			}
		}
		p.mu.Unlock()
		select {
		case p.notify <- struct{}{}:
		default:
		}
		if !more {
			return
		}
		ex = next
	}
}

func (p *Pipeline) runOne(ex Execution) (o store.Outcome) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			o = store.Outcome{
				StartedAt: start.UnixNano(), Duration: int64(time.Since(start)),
				ExitCode: -1, Error: scrubRunner(fmt.Sprintf("runner panic: %v", r), ex.Runner),
			}
			p.log.Error("runner panicked", "job", ex.JobID, "error", o.Error)
		}
	}()
	return p.run.Run(p.ctx, ex)
}

// Results is signalled (capacity 1, never closed) whenever results are ready
// to be taken; one signal may stand for several results.
func (p *Pipeline) Results() <-chan struct{} { return p.notify }

// TakeResults appends the finished results to dst, in completion order, and
// returns it. It never blocks on executions.
func (p *Pipeline) TakeResults(dst []Result) []Result {
	p.mu.Lock()
	dst = append(dst, p.results...)
	clear(p.results)
	p.results = p.results[:0]
	p.mu.Unlock()
	return dst
}

// Pending is the number of queued executions not started yet.
func (p *Pipeline) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.queue.len()
}

// Inflight is the number of executions running now.
func (p *Pipeline) Inflight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inflight
}

// Shutdown stops starting queued executions and waits for the running ones
// until ctx is done; it then cancels them (cause ErrShutdown) and waits for
// them to report, at most a short grace period. Their Results, cancelled or
// not, are available from TakeResults when it returns. It returns the
// executions that never started, in submission order. Later calls return
// nil after the same waiting.
func (p *Pipeline) Shutdown(ctx context.Context) []Execution {
	p.mu.Lock()
	p.stopping = true
	queued := p.queue.drain()
	if p.inflight == 0 && !p.isDrain {
		p.isDrain = true
		close(p.drained)
	}
	p.mu.Unlock()

	select {
	case <-p.drained:
		return queued
	case <-ctx.Done():
	}
	n := p.Inflight()
	p.log.Info("shutdown deadline reached, cancelling running executions", "inflight", n)
	p.cancel(ErrShutdown)
	t := time.NewTimer(shutdownGrace)
	defer t.Stop()
	select {
	case <-p.drained:
	case <-t.C:
		p.log.Warn("executions did not stop after cancellation", "inflight", p.Inflight())
	}
	return queued
}

// fifo is an unbounded FIFO queue of executions.
type fifo struct {
	items []Execution
	head  int
}

func (q *fifo) len() int { return len(q.items) - q.head }

func (q *fifo) push(ex Execution) {
	if q.head > 0 && q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head >= 1024 && q.head*2 >= len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, ex)
}

func (q *fifo) pop() (Execution, bool) {
	if q.head == len(q.items) {
		return Execution{}, false
	}
	ex := q.items[q.head]
	q.items[q.head] = Execution{}
	q.head++
	return ex, true
}

// drain removes and returns all queued executions.
func (q *fifo) drain() []Execution {
	if q.len() == 0 {
		q.items, q.head = nil, 0
		return nil
	}
	out := append([]Execution(nil), q.items[q.head:]...)
	q.items, q.head = nil, 0
	return out
}
