package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tockd/tock/store"
)

// gateRunner blocks every execution until released (or cancelled) and
// records the order in which executions start.
type gateRunner struct {
	started chan string
	release chan struct{}
	mu      sync.Mutex
	order   []string
}

func newGateRunner() *gateRunner {
	return &gateRunner{started: make(chan string, 1000), release: make(chan struct{}, 1000)}
}

func (g *gateRunner) Run(ctx context.Context, ex Execution) store.Outcome {
	g.mu.Lock()
	g.order = append(g.order, ex.JobID)
	g.mu.Unlock()
	g.started <- ex.JobID
	select {
	case <-g.release:
		return store.Outcome{ExitCode: 0}
	case <-ctx.Done():
		return store.Outcome{ExitCode: -1, Error: context.Cause(ctx).Error()}
	}
}

func (g *gateRunner) waitStarted(t *testing.T, n int) []string {
	t.Helper()
	var ids []string
	for i := 0; i < n; i++ {
		select {
		case id := <-g.started:
			ids = append(ids, id)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d executions started", i, n)
		}
	}
	return ids
}

func (g *gateRunner) assertNoStart(t *testing.T) {
	t.Helper()
	select {
	case id := <-g.started:
		t.Fatalf("execution %s started beyond maxInflight", id)
	default:
	}
}

func jobs(n int) []Execution {
	out := make([]Execution, n)
	for i := range out {
		out[i] = Execution{JobID: fmt.Sprintf("job.%03d", i), Execution: int64(i), Gen: uint64(i), Shard: i % 4}
	}
	return out
}

// collect waits for notifications until n results were taken.
func collect(t *testing.T, p *Pipeline, n int) []Result {
	t.Helper()
	var out []Result
	deadline := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case <-p.Results():
			out = p.TakeResults(out)
		case <-deadline:
			t.Fatalf("got %d of %d results", len(out), n)
		}
	}
	return out
}

func checkCounts(t *testing.T, p *Pipeline, pending, inflight int) {
	t.Helper()
	if got := p.Pending(); got != pending {
		t.Errorf("Pending() = %d, want %d", got, pending)
	}
	if got := p.Inflight(); got != inflight {
		t.Errorf("Inflight() = %d, want %d", got, inflight)
	}
}

func TestPipelineMaxInflight(t *testing.T) {
	t.Parallel()
	g := newGateRunner()
	p := NewPipeline(3, g, nil)
	checkCounts(t, p, 0, 0)
	for _, ex := range jobs(5) {
		p.Submit(ex) // never blocks
	}
	checkCounts(t, p, 2, 3)
	g.waitStarted(t, 3)
	g.assertNoStart(t)
	checkCounts(t, p, 2, 3)

	// One finishes: its slot goes to the next queued one atomically.
	g.release <- struct{}{}
	res := collect(t, p, 1)
	if res[0].Outcome.Error != "" {
		t.Fatalf("outcome %+v", res[0].Outcome)
	}
	g.waitStarted(t, 1)
	checkCounts(t, p, 1, 3)

	for i := 0; i < 4; i++ {
		g.release <- struct{}{}
	}
	res = collect(t, p, 4)
	waitUntil(t, 5*time.Second, "inflight to drop to 0", func() bool { return p.Inflight() == 0 })
	checkCounts(t, p, 0, 0)
	if extra := p.TakeResults(nil); len(extra) != 0 {
		t.Errorf("%d unexpected extra results", len(extra))
	}
	// Opaque fields are carried back.
	for _, r := range res {
		i, _ := strconv.Atoi(strings.TrimPrefix(r.Execution.JobID, "job."))
		if r.Execution.Gen != uint64(i) || r.Execution.Shard != i%4 || r.Execution.Execution != int64(i) {
			t.Errorf("result execution %+v not carried back", r.Execution)
		}
	}
}

func TestPipelineCountersExactUnderLoad(t *testing.T) {
	t.Parallel()
	const max, total = 4, 200
	g := newGateRunner()
	p := NewPipeline(max, g, nil)
	for _, ex := range jobs(total) {
		p.Submit(ex)
	}
	taken := 0
	for taken < total {
		// Invariant at every observation: queued + running + finished = submitted.
		if inflight := p.Inflight(); inflight > max {
			t.Fatalf("inflight %d > max %d", inflight, max)
		}
		g.release <- struct{}{}
		select {
		case <-p.Results():
		case <-time.After(10 * time.Second):
			t.Fatal("no result")
		}
		taken += len(p.TakeResults(nil))
		p.mu.Lock()
		sum := p.queue.len() + p.inflight + len(p.results) + taken
		p.mu.Unlock()
		if sum != total {
			t.Fatalf("pending+inflight+results+taken = %d, want %d", sum, total)
		}
	}
	waitUntil(t, 5*time.Second, "idle", func() bool { return p.Inflight() == 0 })
	checkCounts(t, p, 0, 0)
}

func TestPipelineFIFO(t *testing.T) {
	t.Parallel()
	g := newGateRunner()
	p := NewPipeline(1, g, nil)
	all := jobs(50)
	for _, ex := range all {
		p.Submit(ex)
	}
	for range all {
		g.release <- struct{}{}
	}
	res := collect(t, p, len(all))
	for i, r := range res {
		if r.Execution.JobID != all[i].JobID {
			t.Fatalf("result %d is %s, want %s (FIFO)", i, r.Execution.JobID, all[i].JobID)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, id := range g.order {
		if id != all[i].JobID {
			t.Fatalf("start %d is %s, want %s", i, id, all[i].JobID)
		}
	}
}

func TestPipelineResultsNotification(t *testing.T) {
	t.Parallel()
	g := newGateRunner()
	p := NewPipeline(2, g, nil)
	if cap(p.Results()) != 1 {
		t.Errorf("notification channel capacity %d, want 1", cap(p.Results()))
	}
	select {
	case <-p.Results():
		t.Fatal("notified before any result")
	default:
	}
	if r := p.TakeResults(nil); len(r) != 0 {
		t.Fatalf("results before any execution: %v", r)
	}
	p.Submit(jobs(1)[0])
	g.waitStarted(t, 1)
	g.release <- struct{}{}
	select {
	case <-p.Results():
	case <-time.After(10 * time.Second):
		t.Fatal("no notification")
	}
	// The notification may precede TakeResults seeing the result only if
	// the result was appended first: it never does.
	if r := p.TakeResults(nil); len(r) != 1 || r[0].Execution.JobID != "job.000" {
		t.Fatalf("TakeResults = %+v", r)
	}
	// TakeResults appends to dst.
	dst := []Result{{Execution: Execution{JobID: "keep"}}}
	p.Submit(Execution{JobID: "second"})
	g.release <- struct{}{}
	<-p.Results()
	dst = p.TakeResults(dst)
	if len(dst) != 2 || dst[0].Execution.JobID != "keep" || dst[1].Execution.JobID != "second" {
		t.Fatalf("TakeResults(dst) = %+v", dst)
	}
}

func TestPipelineShutdownCancels(t *testing.T) {
	t.Parallel()
	g := newGateRunner()
	p := NewPipeline(2, g, nil)
	all := jobs(5)
	for _, ex := range all {
		p.Submit(ex)
	}
	g.waitStarted(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	before := time.Now()
	never := p.Shutdown(ctx)
	if el := time.Since(before); el < 100*time.Millisecond || el > 5*time.Second {
		t.Errorf("Shutdown took %v, want about the 100ms deadline", el)
	}
	if len(never) != 3 || never[0].JobID != "job.002" || never[1].JobID != "job.003" || never[2].JobID != "job.004" {
		t.Fatalf("never started = %+v, want job.002..004 in order", never)
	}
	res := p.TakeResults(nil)
	if len(res) != 2 {
		t.Fatalf("%d results after Shutdown, want the 2 cancelled", len(res))
	}
	for _, r := range res {
		if r.Outcome.Error != ErrShutdown.Error() {
			t.Errorf("%s: error %q, want %q", r.Execution.JobID, r.Outcome.Error, ErrShutdown)
		}
	}
	checkCounts(t, p, 0, 0)
	g.assertNoStart(t)

	// Submit after Shutdown does not run.
	p.Submit(Execution{JobID: "late"})
	checkCounts(t, p, 0, 0)
	g.assertNoStart(t)
	if again := p.Shutdown(context.Background()); again != nil {
		t.Errorf("second Shutdown returned %v", again)
	}
}

func TestPipelineShutdownWaitsForRunning(t *testing.T) {
	t.Parallel()
	g := newGateRunner()
	p := NewPipeline(2, g, nil)
	for _, ex := range jobs(3) {
		p.Submit(ex)
	}
	g.waitStarted(t, 2)
	done := make(chan []Execution)
	go func() { done <- p.Shutdown(context.Background()) }()
	// Shutdown stops starting queued work at once...
	waitUntil(t, 5*time.Second, "queue drained by Shutdown", func() bool { return p.Pending() == 0 })
	select {
	case <-done:
		t.Fatal("Shutdown returned while executions were running")
	default:
	}
	// ...and returns once the running ones finish by themselves.
	g.release <- struct{}{}
	g.release <- struct{}{}
	never := <-done
	if len(never) != 1 || never[0].JobID != "job.002" {
		t.Fatalf("never started = %+v", never)
	}
	res := p.TakeResults(nil)
	if len(res) != 2 {
		t.Fatalf("%d results", len(res))
	}
	for _, r := range res {
		mustSucceed(t, r.Outcome)
	}
	g.assertNoStart(t)
}

func TestPipelineShutdownIdle(t *testing.T) {
	t.Parallel()
	p := NewPipeline(4, newGateRunner(), nil)
	if never := p.Shutdown(context.Background()); len(never) != 0 {
		t.Fatalf("never = %v", never)
	}
}

type panicRunner struct{}

func (panicRunner) Run(context.Context, Execution) store.Outcome { panic("boom") }

func TestPipelineRecoversPanics(t *testing.T) {
	t.Parallel()
	p := NewPipeline(1, panicRunner{}, nil)
	p.Submit(Execution{JobID: "a"})
	p.Submit(Execution{JobID: "b"})
	res := collect(t, p, 2)
	for _, r := range res {
		mustFail(t, r.Outcome, "runner panic: boom")
	}
	waitUntil(t, 5*time.Second, "idle", func() bool { return p.Inflight() == 0 })
}

// The real thing: shell executions through Dispatcher and Pipeline, killed
// by a Shutdown deadline.
func TestPipelineShutdownKillsProcesses(t *testing.T) {
	t.Parallel()
	d := New(Config{}, nil)
	p := NewPipeline(2, d, nil)
	dir := t.TempDir()
	for i := 0; i < 3; i++ {
		p.Submit(exec1(store.RunnerShell, fmt.Sprintf("job.%d", i), "touch "+filepath.Join(dir, "$TOCK_JOB_ID")+"; sleep 30"))
	}
	waitUntil(t, 10*time.Second, "both processes to start", func() bool {
		_, err0 := os.Stat(filepath.Join(dir, "job.0"))
		_, err1 := os.Stat(filepath.Join(dir, "job.1"))
		return err0 == nil && err1 == nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	before := time.Now()
	never := p.Shutdown(ctx)
	if el := time.Since(before); el > 5*time.Second {
		t.Errorf("Shutdown took %v", el)
	}
	if len(never) != 1 || never[0].JobID != "job.2" {
		t.Fatalf("never = %+v", never)
	}
	res := p.TakeResults(nil)
	if len(res) != 2 {
		t.Fatalf("%d results", len(res))
	}
	for _, r := range res {
		if r.Outcome.Error != ErrShutdown.Error() || r.Outcome.StartedAt == 0 || r.Outcome.Duration <= 0 {
			t.Errorf("%s: outcome %+v", r.Execution.JobID, r.Outcome)
		}
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Error("shutdown context not expired")
	}
}
