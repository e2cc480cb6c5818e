package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
	"github.com/tockd/tock/store/jslog"
	"github.com/tockd/tock/worker/runner"
)

// Version is set by cmd/tock for the Hello.
var Version = "dev"

// Worker is one worker process's state. All fields are owned by the loop
// goroutine except those documented otherwise.
type Worker struct {
	opts    runOptions
	log     hclog.Logger
	link    *ipc.Link
	index   int
	phase   int
	set     ipc.Settings
	started time.Time

	shards       map[int]*shard
	shardErrors  map[int]string
	rules        *store.Rules
	rulesVersion uint64

	pipe     *runner.Pipeline
	dispatch *runner.Dispatcher
	// running are executions handed to the pipeline and not yet finished,
	// by shard and job id: reported on Release.
	running map[int]map[string]int64
	// awaiting are jobs of acquired shards still running in an old worker.
	awaiting map[int]map[string]int64
	// drains are planned releases waiting for their executions (drain.go).
	drains []drain

	commit   *committer
	inbox    chan *frameBatch // from readLoop (inbox.go)
	spare    chan *frameBatch // handled batches, back to readLoop
	linkErr  atomic.Value     // error that ended the reader
	requests atomic.Int64

	batch []batchReply // replies of the current batch that need a commit
	// handledBatches is handleFrames's list of the batches it handled,
	// kept to save its allocation.
	handledBatches []*frameBatch
	warmSink       uint64 // keeps decode's warming reads
	// warmJobs and warmHashes are decode's list of ids to warm.
	warmJobs   []*store.Jobs
	warmHashes []uint64
	// replyBuf is endBatch's reply slice, reused when sendNow sends it.
	replyBuf []ipc.Reply
	touched  []*shard // shards with records in the current batch
	results  []runner.Result

	lateness latency
	metrics  *metrics // for /metrics, sent in heartbeats (metrics.go)
	lastTick time.Time
	wakeAt   time.Time // when the wake timer is armed for; zero = not armed

	// failed are shards down after a write or fsync failure (fault.go).
	failed map[int]*failedShard

	// fenced are shards another host fenced (jetstream.go): down, not
	// reopened, until the master releases them.
	fenced map[int]bool
	// js is the JetStream engine (persistence = "jetstream"), connected
	// on first use.
	js *jslog.Engine

	// staged are shards read ahead of a handoff (Prepare), by shard.
	staged   map[int]staged
	stagedCh chan []staged
}

// Run is the whole life of a worker process on link. It returns when the
// master says Shutdown (nil) or the link breaks (the master is gone), after
// writing every frame it queued and closing link.
func Run(link *ipc.Link, index, phase int, log hclog.Logger) error {
	limitProcs(log)
	return run(link, index, phase, log, runOptions{})
}

// runOptions are seams for in-process tests; the zero value is production.
type runOptions struct {
	// wrapLog, when set, wraps every shard log the worker opens: tests
	// inject write and fsync failures behind the ShardLog seam.
	wrapLog func(shard int, l store.ShardLog) store.ShardLog
	// fsync, when set, replaces fsync(2) for shard logs (fault injection).
	fsync func(*os.File) error
	// journal is not a seam: run sets it, so that openShard finds the
	// worker's journal (journal.go).
	journal *journals
}

func run(link *ipc.Link, index, phase int, log hclog.Logger, opts runOptions) error {
	opts.journal = &journals{log: log, fsync: opts.fsync}
	w := &Worker{
		opts: opts,
		log:  log, link: link, index: index, phase: phase, started: time.Now(),
		shards: map[int]*shard{}, shardErrors: map[int]string{}, rules: store.NewRules(),
		running: map[int]map[string]int64{}, awaiting: map[int]map[string]int64{},
		inbox: make(chan *frameBatch, inboxBatches), spare: make(chan *frameBatch, inboxBatches+1),
		staged: map[int]staged{}, stagedCh: make(chan []staged, 16), failed: map[int]*failedShard{},
		fenced: map[int]bool{}, metrics: newMetrics(),
	}
	welcome, err := w.handshake()
	if err != nil {
		return err
	}
	w.set = welcome.Settings
	w.dispatch = runner.New(runner.Config{
		ShellPath: w.set.ShellPath, ShellArgs: w.set.ShellArgs,
		ProcessTimeout: time.Duration(w.set.ExecutionTimeoutNs),
	}, log.Named("runner"))
	defer w.dispatch.Close()
	w.pipe = runner.NewPipeline(w.set.MaxInflight, w.dispatch, log.Named("pipeline"))
	w.commit = newCommitter(link, log, w.metrics, w.pipe.Submit)
	w.applyRules(welcome.Rules)
	go w.readLoop()
	w.acquire(ipc.Acquire{Shards: welcome.Shards, Running: welcome.Running, Epoch: welcome.Epoch})
	err = w.loop()
	w.closeJetStream()
	w.flushLink()
	return err
}

// linkFlushTimeout bounds the wait for the master to read a worker's last
// frames; a master that stopped reading is gone or about to kill us.
const linkFlushTimeout = 5 * time.Second

// flushLink writes every queued frame and closes the link. The last frames
// of a draining worker are the outcomes of executions whose shards moved:
// exiting with them still queued would leave those jobs triggered with no
// execution anywhere.
func (w *Worker) flushLink() {
	done := make(chan error, 1)
	go func() { done <- w.link.Close() }()
	select {
	case err := <-done:
		if err != nil {
			w.log.Debug("close master link", "error", err)
		}
	case <-time.After(linkFlushTimeout):
		w.log.Warn("master did not read the last frames; dropping them", "timeout", linkFlushTimeout)
		w.link.Abort()
	}
}

func (w *Worker) handshake() (ipc.Welcome, error) {
	hello := ipc.Hello{Proto: ipc.ProtoVersion, Version: Version, PID: os.Getpid(), Index: w.index, Phase: w.phase}
	if err := w.link.SendJSON(ipc.TypeHello, hello); err != nil {
		return ipc.Welcome{}, fmt.Errorf("send hello: %w", err)
	}
	f, err := w.link.Recv()
	if err != nil {
		return ipc.Welcome{}, fmt.Errorf("read welcome: %w", err)
	}
	if f.Type != ipc.TypeWelcome {
		return ipc.Welcome{}, fmt.Errorf("handshake: expected welcome, got %s", f.Type)
	}
	var wel ipc.Welcome
	if err := ipc.DecodeJSON(f.Payload, &wel); err != nil {
		return ipc.Welcome{}, fmt.Errorf("handshake: %w", err)
	}
	if wel.Settings.Framerate <= 0 || wel.Settings.NumShards <= 0 {
		return ipc.Welcome{}, errors.New("handshake: welcome without settings")
	}
	return wel, nil
}

func (w *Worker) loop() error {
	tick := time.NewTicker(time.Second / time.Duration(w.set.Framerate))
	defer tick.Stop()
	beat := time.NewTicker(time.Duration(w.set.CheckIntervalNs))
	defer beat.Stop()
	// wake fires early for a job due before the next tick, so lateness is
	// bounded by minWakeGap rather than by the tick period.
	wake := time.NewTimer(time.Hour)
	defer wake.Stop()
	w.sendStatus()
	for {
		w.armWake(wake)
		select {
		case b, ok := <-w.inbox:
			if !ok {
				return w.linkGone()
			}
			stop, err := w.handleFrames(b)
			if stop || err != nil {
				return err
			}
		case now := <-tick.C:
			w.tick(now)
		case now := <-wake.C:
			w.wakeAt = time.Time{}
			w.tick(now)
		case <-w.pipe.Results():
			w.applyResults()
		case f := <-w.commit.failures:
			w.failSynced(f)
		case <-beat.C:
			w.sendStatus()
			w.dispatch.Failures().Flush()
		case batch := <-w.stagedCh:
			var shards []int
			for _, st := range batch {
				w.staged[st.shard] = st
				shards = append(shards, st.shard)
			}
			w.send(ipc.TypePrepared, ipc.Prepared{Shards: shards})
		}
	}
}

// linkGone: the master died. Stop at once; what was acknowledged is on disk.
func (w *Worker) linkGone() error {
	err, _ := w.linkErr.Load().(error)
	w.log.Info("master link closed, exiting", "error", err)
	w.closeShards()
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	return fmt.Errorf("master link: %w", err)
}

// maxBatchFrames bounds the frames handled before one endBatch, so a
// flood of requests still gets its replies out and the loop its timers.
const maxBatchFrames = 4096

// handleFrames handles the frames of b and of every batch already queued
// behind it as one batch, then writes, commits and replies.
func (w *Worker) handleFrames(b *frameBatch) (stop bool, err error) {
	handled := w.handledBatches[:0]
	defer func() {
		w.endBatch()
		for i, hb := range handled {
			w.recycle(hb)
			handled[i] = nil
		}
		w.handledBatches = handled[:0]
	}()
	for n := 0; ; {
		handled = append(handled, b)
		w.decode(b)
		for i, f := range b.frames {
			if stop, err = w.handleFrame(f, &b.reqs[i]); stop || err != nil {
				return stop, err
			}
		}
		if n += len(b.frames); n >= maxBatchFrames {
			return false, nil
		}
		var ok bool
		select {
		case b, ok = <-w.inbox:
			if !ok {
				w.endBatch()
				return true, w.linkGone()
			}
			continue
		default:
		}
		return false, nil
	}
}

// handleFrame handles f; a request frame comes decoded in d (decode).
func (w *Worker) handleFrame(f ipc.Frame, d *decoded) (stop bool, err error) {
	switch f.Type {
	case ipc.TypeRequest:
		if d.err != nil {
			return false, fmt.Errorf("master sent a bad request: %w", d.err)
		}
		w.handleRequest(d.req)
	case ipc.TypeRules:
		var rs ipc.Rules
		if err := ipc.DecodeJSON(f.Payload, &rs); err != nil {
			return false, err
		}
		w.applyRules(rs)
		w.send(ipc.TypeRulesAck, ipc.RulesAck{Version: rs.Version})
	case ipc.TypeAcquire:
		var a ipc.Acquire
		if err := ipc.DecodeJSON(f.Payload, &a); err != nil {
			return false, err
		}
		w.endBatch()
		w.acquire(a)
	case ipc.TypePrepare:
		var p ipc.Prepare
		if err := ipc.DecodeJSON(f.Payload, &p); err != nil {
			return false, err
		}
		w.prepare(p)
	case ipc.TypeRelease:
		var r ipc.Release
		if err := ipc.DecodeJSON(f.Payload, &r); err != nil {
			return false, err
		}
		w.endBatch()
		w.release(r)
	case ipc.TypeOutcome:
		var o ipc.Outcome
		if err := ipc.DecodeJSON(f.Payload, &o); err != nil {
			return false, err
		}
		w.applyRemoteOutcome(o)
	case ipc.TypeCall:
		var c ipc.Call
		if err := ipc.DecodeJSON(f.Payload, &c); err != nil {
			return false, err
		}
		w.endBatch()
		w.handleCall(c)
	case ipc.TypeShutdown:
		var s ipc.Shutdown
		if err := ipc.DecodeJSON(f.Payload, &s); err != nil {
			return false, err
		}
		w.endBatch()
		w.shutdown(time.Duration(s.TimeoutNs))
		return true, nil
	default:
		return false, fmt.Errorf("unexpected frame %s from master", f.Type)
	}
	return false, nil
}

func (w *Worker) send(t ipc.Type, v any) {
	if err := w.link.SendJSON(t, v); err != nil {
		w.log.Debug("send to master", "type", t, "error", err)
	}
}

func (w *Worker) applyRules(rs ipc.Rules) {
	if rs.Version < w.rulesVersion {
		return
	}
	w.rules = store.NewRules()
	for _, r := range rs.Rules {
		w.rules.Set(r)
	}
	w.rulesVersion = rs.Version
}

// acquire opens shards and answers Ready.
func (w *Worker) acquire(a ipc.Acquire) {
	byShard := map[int]map[string]int64{}
	for _, r := range a.Running {
		if byShard[r.Shard] == nil {
			byShard[r.Shard] = map[string]int64{}
		}
		byShard[r.Shard][r.JobID] = r.Execution
	}
	ready := ipc.Ready{Seq: a.Seq}
	for _, n := range a.Shards {
		if sh, ok := w.shards[n]; ok && w.staleStreamShard(sh, a.Epoch) {
			// Another host owned it since we opened it: what we hold is
			// not the shard any more. Down as fenced, then opened afresh
			// below at the master's epoch, what still runs here awaited.
			w.failShard(sh, fmt.Errorf("acquire at epoch %d: %w: another host opened the shard after this worker's epoch %d", a.Epoch, store.ErrFenced, sh.epoch))
			if byShard[n] == nil {
				byShard[n] = map[string]int64{}
			}
			for id, exec := range w.running[n] {
				byShard[n][id] = exec
			}
			for id, exec := range w.awaiting[n] {
				byShard[n][id] = exec
			}
		}
		if sh, ok := w.shards[n]; ok {
			ready.Shards = append(ready.Shards, n)
			if w.jetStreamMode() {
				if ready.Epochs == nil {
					ready.Epochs = map[int]uint64{}
				}
				ready.Epochs[n] = sh.epoch
			}
			continue
		}
		sh, err := w.open(n, a.Epoch, byShard[n], w.takeStaged(n), nil)
		if err != nil {
			w.log.Error("cannot open shard", "shard", n, "error", err)
			w.shardErrors[n] = err.Error()
			if w.jetStreamMode() && errors.Is(err, store.ErrFenced) {
				w.fenced[n] = true // another host opened it meanwhile: the master releases it
			}
			if errors.Is(err, store.ErrLocked) {
				// Another process still has it open: tried again later
				// (fault.go), where a corrupt file stays down.
				w.failed[n] = &failedShard{at: time.Now(), epoch: a.Epoch}
				if len(byShard[n]) > 0 {
					w.awaiting[n] = byShard[n]
				}
			}
			// The shard stays down, the rest serve: its requests are
			// answered with the reason, and /healthz reports it.
			if ready.ShardErrors == nil {
				ready.ShardErrors = map[int]string{}
			}
			ready.ShardErrors[n] = err.Error()
			ready.Shards = append(ready.Shards, n)
			continue
		}
		delete(w.shardErrors, n)
		delete(w.fenced, n)
		w.shards[n] = sh
		if w.jetStreamMode() {
			if ready.Epochs == nil {
				ready.Epochs = map[int]uint64{}
			}
			ready.Epochs[n] = sh.epoch
		}
		if len(byShard[n]) > 0 {
			w.awaiting[n] = byShard[n]
		}
		w.awaitGrace(sh)
		ready.Shards = append(ready.Shards, n)
	}
	sort.Ints(ready.Shards)
	// A status first, so the master counts the shards' jobs here by the
	// time it hands them to us, not a heartbeat later (/varz, /metrics).
	w.sendStatus()
	w.send(ipc.TypeReady, ready)
}

// release flushes and closes shards and answers Released with what still
// runs for them.
func (w *Worker) release(r ipc.Release) {
	if w.deferRelease(r) {
		return // drain.go: answered once its executions ended
	}
	w.commit.wait()
	out := ipc.Released{Seq: r.Seq}
	var parked []runner.Result
	for _, n := range r.Shards {
		sh, ok := w.shards[n]
		if !ok {
			if _, down := w.shardErrors[n]; down {
				// Never opened (corrupt) or failed: nothing to flush; the
				// next owner opens it from its file, and waits for what
				// still runs here.
				delete(w.shardErrors, n)
				delete(w.fenced, n)
				if f := w.failed[n]; f != nil {
					parked = append(parked, f.parked...)
					for _, r := range f.parked {
						ex := r.Execution
						out.Running = append(out.Running, ipc.RunningJob{Shard: n, JobID: ex.JobID, Execution: ex.Execution})
					}
					delete(w.failed, n)
				}
				for id, exec := range w.running[n] {
					out.Running = append(out.Running, ipc.RunningJob{Shard: n, JobID: id, Execution: exec})
				}
				for id, exec := range w.awaiting[n] {
					out.Running = append(out.Running, ipc.RunningJob{Shard: n, JobID: id, Execution: exec})
				}
				delete(w.awaiting, n)
				out.Shards = append(out.Shards, n)
			}
			continue
		}
		w.reapCompaction(sh, true)
		if err := sh.log.Sync(); err != nil {
			out.Error = err.Error()
		}
		if err := sh.close(); err != nil {
			out.Error = err.Error()
		}
		delete(w.shards, n)
		delete(w.shardErrors, n)
		// Still running: here, and in an older worker this one inherited
		// them from. Either way the next owner must wait for the outcome.
		for id, exec := range w.running[n] {
			out.Running = append(out.Running, ipc.RunningJob{Shard: n, JobID: id, Execution: exec})
		}
		for id, exec := range w.awaiting[n] {
			if g, ok := sh.grace[id]; ok && g == exec {
				continue // not known to run anywhere (takeover.go): the next owner runs it
			}
			out.Running = append(out.Running, ipc.RunningJob{Shard: n, JobID: id, Execution: exec})
		}
		delete(w.awaiting, n)
		out.Shards = append(out.Shards, n)
	}
	w.sendStatus() // as in acquire: the released jobs are no longer counted here
	w.send(ipc.TypeReleased, out)
	for _, r := range parked { // after Released: the master tracks them from it
		w.send(ipc.TypeOutcome, outcomeOf(r))
	}
}

func (w *Worker) closeShards() {
	w.endBatch()
	w.commit.wait()
	w.reapCompactions(true)
	for n, sh := range w.shards {
		if err := sh.close(); err != nil {
			w.log.Error("close shard", "shard", n, "error", err)
		}
	}
	w.shards = map[int]*shard{}
	w.opts.journal.close()
}

// shutdown drains executions for up to timeout, records their outcomes and
// closes the shards.
func (w *Worker) shutdown(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	w.commit.wait() // executions waiting for their triggered records start first
	w.log.Info("worker draining", "inflight", w.pipe.Inflight(), "pending", w.pipe.Pending())
	for _, ex := range w.pipe.Shutdown(ctx) {
		// Never started: a released shard's new owner plans it again; an
		// owned shard keeps it triggered in its log, so it runs after the
		// next start (at-least-once).
		if _, owned := w.shards[ex.Shard]; !owned {
			w.send(ipc.TypeOutcome, ipc.Outcome{Shard: ex.Shard, JobID: ex.JobID, Execution: ex.Execution, Requeue: true})
		}
	}
	w.applyResults()
	w.closeShards()
	w.commit.close()
}

func (w *Worker) statusNow() ipc.Status {
	st := ipc.Status{
		UptimeNs: time.Since(w.started).Nanoseconds(), Persistence: w.set.Persistence,
		Compression: "idle", Framerate: w.set.Framerate, RequestsCount: w.requests.Load(),
		ExecutionsPending: int64(w.pipe.Pending()), ExecutionsInflight: int64(w.pipe.Inflight()),
		RSSBytes: ipc.RSSBytes(),
		TriggerLateness: ipc.Lateness{Count: w.lateness.count, P50Ns: w.lateness.quantile(0.5),
			P99Ns: w.lateness.quantile(0.99), MaxNs: w.lateness.max},
	}
	maxInflight := int64(w.set.MaxInflight)
	st.Backlog, st.Running, st.BusyThreads = st.ExecutionsPending, st.ExecutionsInflight, st.ExecutionsInflight
	st.MaxThreads, st.PoolCapacity = maxInflight, max(0, maxInflight-st.ExecutionsInflight)
	owned := make(map[int]int64, len(w.shards))
	for _, sh := range w.shards {
		owned[sh.id] = sh.log.Size()
		c := sh.jobs.Counts()
		st.JobsTotal += int64(c.Total)
		st.JobsPlanned += int64(c.Planned)
		st.JobsTriggered += int64(c.Triggered)
		st.JobsExecuted += int64(c.Executed)
		st.JobsFailed += int64(c.Failed)
		st.Compression = ipc.WorseCompression(st.Compression, sh.compaction)
	}
	st.Metrics = w.metrics.snapshot(owned)
	st.Fenced = w.fencedShards()
	if len(w.shardErrors) > 0 {
		st.ShardErrors = map[string]string{}
		for n, e := range w.shardErrors {
			st.ShardErrors[strconv.Itoa(n)] = e
		}
	}
	return st
}

func (w *Worker) sendStatus() { w.send(ipc.TypeStatus, w.statusNow()) }
