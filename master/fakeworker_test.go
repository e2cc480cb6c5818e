package master

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/config"
	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
)

// A scripted fake worker for in-process tests of the supervisor and the
// handoff: the master spawns it through fakeSpawner, and it speaks the IPC
// protocol over a real socketpair like `tock worker` does. Its behaviour
// on each control message can be replaced by a test (hang, die, answer
// twice, answer wrong). A shared registry checks the one invariant that
// matters: no two live fake workers ever have one shard open.

// fakeScript changes a fake worker's behaviour. Each hook returns true
// when it handled the message (the default behaviour is skipped).
type fakeScript struct {
	onAcquire func(fw *fakeWorker, a ipc.Acquire) bool
	onRelease func(fw *fakeWorker, r ipc.Release) bool
	// onShutdown runs before the worker exits on Shutdown.
	onShutdown func(fw *fakeWorker)
	// running are executions the worker has under way, by shard: listed in
	// its Released, their outcomes sent when the test says.
	running map[int][]ipc.RunningJob
}

type fakeSpawner struct {
	t  testing.TB
	mu sync.Mutex
	// scripts[k] is the script of the first worker spawned with index and
	// phase k (default: none); later ones (replacements) get none.
	scripts  map[wp]*fakeScript
	spawned  []*fakeWorker
	open     map[int]*fakeWorker // shard → the live fake that has it open
	violated []string
	changed  chan struct{} // pinged on every spawn and state change
	// tag, when set, names the fakes' host in "served by" answers, and
	// makes them keep the jobs SET to them (peer_test.go): a GET of a job
	// set is answered with it, QUERY and STAT count them.
	tag    string
	shards int // the cluster's shard count, with a tag
}

func newFakeSpawner(t testing.TB) *fakeSpawner {
	return &fakeSpawner{t: t, scripts: map[wp]*fakeScript{}, open: map[int]*fakeWorker{}, changed: make(chan struct{}, 1)}
}

func (fs *fakeSpawner) ping() {
	select {
	case fs.changed <- struct{}{}:
	default:
	}
}

// Spawn starts a fake worker goroutine on one end of a socketpair.
func (fs *fakeSpawner) Spawn(spec spawnSpec, log hclog.Logger) (*ipc.Link, WorkerProcess, error) {
	mf, wf, err := ipc.Socketpair()
	if err != nil {
		return nil, nil, err
	}
	ml, err := ipc.FileLink(mf)
	if err != nil {
		return nil, nil, err
	}
	wl, err := ipc.FileLink(wf)
	if err != nil {
		return nil, nil, err
	}
	fs.mu.Lock()
	n := len(fs.spawned)
	k := wp{spec.index, spec.phase}
	fw := &fakeWorker{fs: fs, n: n, index: spec.index, phase: spec.phase, link: wl, script: fs.scripts[k],
		killed: make(chan struct{}), exited: make(chan struct{}), outcomes: make(chan ipc.Outcome, 64), epochs: map[int]uint64{}}
	delete(fs.scripts, k)
	if fw.script == nil {
		fw.script = &fakeScript{}
	}
	fs.spawned = append(fs.spawned, fw)
	fs.mu.Unlock()
	go fw.run()
	fs.ping()
	return ml, fw, nil
}

// wp names a worker by index and phase.
type wp struct{ index, phase int }

// worker returns the first worker spawned with index i and phase ph,
// waiting for it.
func (fs *fakeSpawner) worker(i, ph int) *fakeWorker {
	fs.t.Helper()
	var fw *fakeWorker
	waitUntil(fs.t, fmt.Sprintf("worker %d of phase %d spawned", i, ph), func() bool {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		for _, w := range fs.spawned {
			if w.index == i && w.phase == ph {
				fw = w
				return true
			}
		}
		return false
	})
	return fw
}

// openShards marks shards open by fw, recording a violation when another
// live worker has one open.
func (fs *fakeSpawner) openShards(fw *fakeWorker, shards []int) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, s := range shards {
		if other := fs.open[s]; other != nil && other != fw {
			fs.violated = append(fs.violated, fmt.Sprintf("shard %d opened by worker #%d while worker #%d has it open", s, fw.n, other.n))
		}
		fs.open[s] = fw
	}
	fs.ping()
}

func (fs *fakeSpawner) closeShards(fw *fakeWorker, shards []int) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, s := range shards {
		if fs.open[s] == fw {
			delete(fs.open, s)
		}
	}
	fs.ping()
}

// closeAll drops every shard fw has open: it died.
func (fs *fakeSpawner) closeAll(fw *fakeWorker) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for s, o := range fs.open {
		if o == fw {
			delete(fs.open, s)
		}
	}
	fs.ping()
}

func (fs *fakeSpawner) ownerOf(shard int) *fakeWorker {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.open[shard]
}

func (fs *fakeSpawner) check() {
	fs.t.Helper()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, v := range fs.violated {
		fs.t.Error(v)
	}
}

// fakeWorker is one scripted worker; it implements WorkerProcess.
type fakeWorker struct {
	fs           *fakeSpawner
	n            int // spawn order
	index, phase int
	link         *ipc.Link
	script       *fakeScript

	killOnce sync.Once
	killed   chan struct{}
	exited   chan struct{}
	outcomes chan ipc.Outcome // received from the master

	mu     sync.Mutex
	epochs map[int]uint64 // shard → epoch it was opened at
	got    []ipc.Type
	jobs   map[string]int64 // with a tag: job id → execution
	reqs   []ipc.Request    // with a tag: every request received
}

func (fw *fakeWorker) Pid() int               { return 900000 + fw.n }
func (fw *fakeWorker) Signal(os.Signal) error { return nil }
func (fw *fakeWorker) Wait() error            { <-fw.exited; return errors.New("signal: killed") }
func (fw *fakeWorker) Kill() error            { fw.die(); return nil }
func (fw *fakeWorker) isDead() bool           { return chanClosed(fw.exited) }
func (fw *fakeWorker) send(t ipc.Type, v any) { _ = fw.link.SendJSON(t, v) } // a dead link is the test's point
func (fw *fakeWorker) epochOf(shard int) uint64 {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return fw.epochs[shard]
}

// die ends the process: its link breaks and its shards close.
func (fw *fakeWorker) die() {
	fw.killOnce.Do(func() {
		close(fw.killed)
		fw.link.Abort()
		go func() {
			fw.fs.closeAll(fw)
			close(fw.exited)
			fw.fs.ping()
		}()
	})
}

func chanClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (fw *fakeWorker) open(shards []int, epoch uint64) {
	fw.mu.Lock()
	for _, s := range shards {
		fw.epochs[s] = epoch
	}
	fw.mu.Unlock()
	fw.fs.openShards(fw, shards)
}

func (fw *fakeWorker) run() {
	fw.send(ipc.TypeHello, ipc.Hello{Proto: ipc.ProtoVersion, PID: fw.Pid(), Index: fw.index, Phase: fw.phase})
	for {
		f, err := fw.link.Recv()
		if err != nil {
			fw.die()
			return
		}
		fw.mu.Lock()
		fw.got = append(fw.got, f.Type)
		fw.mu.Unlock()
		if fw.handle(f) {
			// Shutdown: write what is queued, close, exit.
			fw.fs.closeAll(fw)
			_ = fw.link.Close()
			fw.die()
			return
		}
	}
}

func (fw *fakeWorker) handle(f ipc.Frame) (exit bool) {
	s := fw.script
	switch f.Type {
	case ipc.TypeWelcome:
		var w ipc.Welcome
		mustDecode(f, &w)
		fw.open(w.Shards, w.Epoch)
		fw.send(ipc.TypeReady, ipc.Ready{Shards: w.Shards})
	case ipc.TypeAcquire:
		var a ipc.Acquire
		mustDecode(f, &a)
		if s.onAcquire != nil && s.onAcquire(fw, a) {
			return false
		}
		fw.open(a.Shards, a.Epoch)
		fw.send(ipc.TypeReady, ipc.Ready{Seq: a.Seq, Shards: a.Shards})
	case ipc.TypeRelease:
		var r ipc.Release
		mustDecode(f, &r)
		if s.onRelease != nil && s.onRelease(fw, r) {
			return false
		}
		fw.release(r, "")
	case ipc.TypePrepare:
		var p ipc.Prepare
		mustDecode(f, &p)
		fw.send(ipc.TypePrepared, ipc.Prepared{Shards: p.Shards})
	case ipc.TypeRules:
		var rs ipc.Rules
		mustDecode(f, &rs)
		fw.send(ipc.TypeRulesAck, ipc.RulesAck{Version: rs.Version})
	case ipc.TypeRequest:
		req, err := ipc.DecodeRequest(f.Payload)
		if err != nil {
			panic(err)
		}
		if fw.fs.tag != "" {
			_ = fw.link.SendReply(fw.serveTagged(req))
			break
		}
		r := ipc.Reply{Seq: req.Seq, Kind: ipc.KindOK}
		if req.Op == ipc.OpGet {
			r = ipc.Reply{Seq: req.Seq, Kind: ipc.KindError, Err: fmt.Sprintf("served by #%d", fw.n)}
		}
		_ = fw.link.SendReply(r)
	case ipc.TypeOutcome:
		var o ipc.Outcome
		mustDecode(f, &o)
		fw.outcomes <- o
	case ipc.TypeShutdown:
		if s.onShutdown != nil {
			s.onShutdown(fw)
		}
		return true
	}
	return false
}

// release closes shards and answers Released with errText as its Error.
func (fw *fakeWorker) release(r ipc.Release, errText string) {
	fw.fs.closeShards(fw, r.Shards)
	out := ipc.Released{Seq: r.Seq, Shards: r.Shards, Error: errText}
	for _, s := range r.Shards {
		out.Running = append(out.Running, fw.script.running[s]...)
	}
	fw.send(ipc.TypeReleased, out)
}

func mustDecode(f ipc.Frame, v any) {
	if err := ipc.DecodeJSON(f.Payload, v); err != nil {
		panic(err)
	}
}

// waitUntil polls cond with a deadline.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not a wait for an event
	}
}

// fakeCluster is a master in-process over fake workers: 2 workers, 4
// shards, a short boot timeout so a hang is found quickly.
type fakeCluster struct {
	t  *testing.T
	m  *Master
	fs *fakeSpawner
}

func startFakeCluster(t *testing.T, scripts map[wp]*fakeScript) *fakeCluster {
	t.Helper()
	cfg := config.Default()
	cfg.Database.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Cluster.Workers, cfg.Cluster.Shards = 2, 4
	cfg.Cluster.WorkerBootTimeout = config.Duration{Duration: 300 * time.Millisecond}
	cfg.Cluster.WorkerShutdownTimeout = config.Duration{Duration: 200 * time.Millisecond}
	log := hclog.New(&hclog.LoggerOptions{Name: "tock", Level: hclog.Debug, Output: fakeLogWriter{t}})
	m, err := New(cfg, Options{Exe: "/nonexistent"}, log)
	if err != nil {
		t.Fatal(err)
	}
	fs := newFakeSpawner(t)
	for i, s := range scripts {
		fs.scripts[i] = s
	}
	m.spawner = fs
	if err := m.bootWorkers(); err != nil {
		t.Fatal(err)
	}
	fc := &fakeCluster{t: t, m: m, fs: fs}
	t.Cleanup(func() {
		m.Stop()
		m.stopWorkers(0)
		m.unlockDataDir()
		fs.check()
	})
	return fc
}

type fakeLogWriter struct{ t testing.TB }

func (w fakeLogWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// rollOut runs one phased restart to its end and returns its error.
func (fc *fakeCluster) rollOut() error {
	fc.m.mu.Lock()
	fc.m.phase++
	phase := fc.m.phase
	fc.m.mu.Unlock()
	return fc.m.rollOut(phase)
}

// servedBy sends a GET for shard and returns which fake answered it.
func (fc *fakeCluster) servedBy(shard int) string {
	fc.t.Helper()
	got := make(chan ipc.Reply, 1)
	fc.m.router.Route(&pending{req: ipc.Request{Op: ipc.OpGet, Shard: shard, Key: "k"}, deliver: func(r ipc.Reply) { got <- r }})
	select {
	case r := <-got:
		return r.Err
	case <-time.After(20 * time.Second):
		fc.t.Fatalf("no reply for shard %d", shard)
		return ""
	}
}

// settled waits until every shard is open in exactly one live fake worker
// and the router sends its requests there.
func (fc *fakeCluster) settled() {
	fc.t.Helper()
	waitUntil(fc.t, "every shard owned", func() bool {
		for s := 0; s < fc.m.cfg.Cluster.Shards; s++ {
			fw := fc.fs.ownerOf(s)
			if fw == nil || fw.isDead() || fc.m.router.Owner(s) == nil || fc.m.router.Owner(s).pid != fw.Pid() {
				return false
			}
		}
		return true
	})
	for s := 0; s < fc.m.cfg.Cluster.Shards; s++ {
		want := fmt.Sprintf("served by #%d", fc.fs.ownerOf(s).n)
		if got := fc.servedBy(s); got != want {
			fc.t.Errorf("shard %d: %q, want %q", s, got, want)
		}
		if st := fc.m.shardStateOf(s); st != shardOwned {
			fc.t.Errorf("shard %d is %s, want owned", s, st)
		}
	}
	fc.fs.check()
}

// serveTagged answers a request from the jobs the fake keeps (a tagged
// spawner's): SET stores, GET reads (a missing job says who served it),
// QUERY lists a shard's jobs, STAT counts them.
func (fw *fakeWorker) serveTagged(req ipc.Request) ipc.Reply {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if len(fw.reqs) < 100000 { // a benchmark's millions are not kept
		fw.reqs = append(fw.reqs, req)
	}
	if fw.jobs == nil {
		fw.jobs = map[string]int64{}
	}
	r := ipc.Reply{Seq: req.Seq, Kind: ipc.KindOK}
	switch req.Op {
	case ipc.OpSet:
		fw.jobs[req.Key] = req.Execution
	case ipc.OpGet:
		e, ok := fw.jobs[req.Key]
		if !ok {
			return ipc.Reply{Seq: req.Seq, Kind: ipc.KindError, Err: fmt.Sprintf("served by %s#%d", fw.fs.tag, fw.n)}
		}
		r.Kind, r.Status, r.Execution = ipc.KindJob, store.Planned, e
	case ipc.OpRemove:
		delete(fw.jobs, req.Key)
	case ipc.OpQuery:
		r.Kind = ipc.KindJobs
		for id, e := range fw.jobs {
			if ShardOf(id, fw.fs.shards) == req.Shard && strings.HasPrefix(id, req.Key) {
				r.Jobs = append(r.Jobs, ipc.JobLine{ID: id, Status: store.Planned, Execution: e})
			}
		}
	case ipc.OpList:
		r.Kind = ipc.KindPage
		var ids []string
		for id := range fw.jobs {
			if ShardOf(id, fw.fs.shards) == req.Shard && strings.HasPrefix(id, req.Key) && id > req.After {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		if len(ids) > int(req.Limit) {
			ids, r.More = ids[:req.Limit], true
		}
		for _, id := range ids {
			r.Jobs = append(r.Jobs, ipc.JobLine{ID: id, Status: store.Planned, Execution: fw.jobs[id]})
		}
	case ipc.OpStat:
		r.Kind, r.Stat = ipc.KindStat, ipc.Stat{JobsTotal: int64(len(fw.jobs)), JobsPlanned: int64(len(fw.jobs))}
	}
	return r
}

// requests returns what a tagged fake has received.
func (fw *fakeWorker) requests() []ipc.Request {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return slices.Clone(fw.reqs)
}
