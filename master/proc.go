package master

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/ipc"
)

// proc is one worker process as the master sees it. The fields under mu are
// written by the link reader and read by the router, stats and supervisor.
type proc struct {
	index   int
	phase   int
	process WorkerProcess
	link    *ipc.Link
	log     hclog.Logger
	started time.Time
	// control serializes control requests to the process (request in
	// handoff.go): the answers of one type share one channel, so two at
	// once would take each other's. JetStream mode opens and closes
	// shards of one worker from several goroutines.
	control sync.Mutex

	mu          sync.Mutex
	state       workerState // see states.go
	pid         int
	booted      bool
	welcomed    bool // has the rule set; receives every later change
	draining    bool
	retiring    bool // retire has been started
	lastCheckin time.Time
	lastStatus  ipc.Status
	shards      []int
	inflight    map[uint64]*pending
	calls       map[uint64]chan ipc.CallReply
	dead        bool
	// lastMetrics are the figures of the latest heartbeat (ipc.Status's
	// Metrics, kept out of lastStatus); metricsRetired once they moved
	// into the master's totals.
	lastMetrics    *ipc.WorkerMetrics
	metricsRetired bool
	hung           bool // killed for missing heartbeats
	// peer is set when this is not a worker but a link to another host's
	// master (peer.go): the router sends it a remote shard's requests.
	peer *Peer

	hello    chan ipc.Hello
	ready    chan ipc.Ready
	released chan ipc.Released
	prepared chan ipc.Prepared
	rulesAck chan uint64
	exited   chan struct{} // closed once the process has been reaped
	linkDone chan struct{} // closed when the link reader returns
	exitErr  error
}

// spawnSpec is what the master needs to start one worker.
type spawnSpec struct {
	exe   string
	index int
	phase int
	args  []string // extra args for `tock worker`
	env   []string
}

// Spawner starts worker processes: the seam between the supervisor and
// the OS. The master uses execSpawner; tests script fake workers that talk
// the IPC protocol over a socketpair, in-process.
type Spawner interface {
	// Spawn starts one worker and returns the master's end of its link.
	Spawn(spec spawnSpec, log hclog.Logger) (*ipc.Link, WorkerProcess, error)
}

// WorkerProcess is a started worker as the supervisor controls it.
type WorkerProcess interface {
	Pid() int
	// Kill ends the process at once; os.ErrProcessDone if it has exited.
	Kill() error
	Signal(os.Signal) error
	// Wait blocks until the process has exited and been reaped.
	Wait() error
}

// execSpawner starts `tock worker` processes.
type execSpawner struct{}

// Spawn starts `tock worker` with its link on fd 3 and its stderr piped to
// the master's logger.
func (execSpawner) Spawn(spec spawnSpec, log hclog.Logger) (*ipc.Link, WorkerProcess, error) {
	masterEnd, workerEnd, err := ipc.Socketpair()
	if err != nil {
		return nil, nil, err
	}
	defer workerEnd.Close()
	stderr, err := newLogRelay(log)
	if err != nil {
		masterEnd.Close()
		return nil, nil, err
	}
	args := append([]string{"worker", "--index", fmt.Sprint(spec.index), "--phase", fmt.Sprint(spec.phase)}, spec.args...)
	cmd := exec.Command(spec.exe, args...)
	cmd.Env = append(os.Environ(), spec.env...)
	cmd.Env = append(cmd.Env, ipc.EnvWorker+"=1")
	cmd.ExtraFiles = []*os.File{workerEnd}
	cmd.Stdout = nil
	cmd.Stderr = stderr.w
	// Own process group: a ^C at the terminal reaches the master only, which
	// then stops the workers in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		masterEnd.Close()
		stderr.close()
		return nil, nil, fmt.Errorf("start worker %d: %w", spec.index, err)
	}
	stderr.started()
	link, err := ipc.FileLink(masterEnd)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		stderr.close()
		return nil, nil, err
	}
	return link, &execProcess{cmd: cmd, relay: stderr}, nil
}

// execProcess is a worker started by execSpawner.
type execProcess struct {
	cmd   *exec.Cmd
	relay *logRelay
}

func (e *execProcess) Pid() int                   { return e.cmd.Process.Pid }
func (e *execProcess) Kill() error                { return e.cmd.Process.Kill() }
func (e *execProcess) Signal(sig os.Signal) error { return e.cmd.Process.Signal(sig) }

func (e *execProcess) Wait() error {
	err := e.cmd.Wait()
	e.relay.close()
	return err
}

// spawn starts a worker through sp and wraps it for the supervisor.
func spawn(sp Spawner, spec spawnSpec, log hclog.Logger) (*proc, error) {
	link, wp, err := sp.Spawn(spec, log)
	if err != nil {
		return nil, err
	}
	p := &proc{
		index: spec.index, phase: spec.phase, process: wp, link: link, started: time.Now(), state: workerBooting,
		pid: wp.Pid(), inflight: map[uint64]*pending{}, calls: map[uint64]chan ipc.CallReply{},
		hello: make(chan ipc.Hello, 1), ready: make(chan ipc.Ready, 4), released: make(chan ipc.Released, 4), prepared: make(chan ipc.Prepared, 4),
		rulesAck: make(chan uint64, 64), exited: make(chan struct{}), linkDone: make(chan struct{}),
		log: log.With("worker", spec.index, "pid", wp.Pid()),
	}
	go func() {
		p.exitErr = wp.Wait()
		close(p.exited)
	}()
	return p, nil
}

// kill sends SIGKILL; a process already gone is not an error.
func (p *proc) kill() {
	if err := p.process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.log.Warn("kill worker", "error", err)
	}
}

func (p *proc) signal(sig os.Signal) {
	if err := p.process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.log.Debug("signal worker", "signal", sig, "error", err)
	}
}

// isBooted reports whether the worker has reported ready.
func (p *proc) isBooted() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.booted && !p.dead
}

// canOwn reports whether p may be given shards: booted, and neither
// killed, exited nor retiring. nil cannot.
func (p *proc) canOwn() bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.booted && !p.dead && (p.state == workerServing || p.state == workerDraining)
}
