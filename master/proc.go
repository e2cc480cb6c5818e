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
	cmd     *exec.Cmd
	link    *ipc.Link
	log     hclog.Logger
	started time.Time

	mu          sync.Mutex
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

// spawn starts `tock worker` with its link on fd 3 and its stderr piped to
// the master's logger.
func spawn(spec spawnSpec, log hclog.Logger) (*proc, error) {
	masterEnd, workerEnd, err := ipc.Socketpair()
	if err != nil {
		return nil, err
	}
	defer workerEnd.Close()
	stderr, err := newLogRelay(log)
	if err != nil {
		masterEnd.Close()
		return nil, err
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
		return nil, fmt.Errorf("start worker %d: %w", spec.index, err)
	}
	stderr.started()
	link, err := ipc.FileLink(masterEnd)
	if err != nil {
		cmd.Process.Kill()
		return nil, err
	}
	p := &proc{
		index: spec.index, phase: spec.phase, cmd: cmd, link: link, started: time.Now(),
		pid: cmd.Process.Pid, inflight: map[uint64]*pending{}, calls: map[uint64]chan ipc.CallReply{},
		hello: make(chan ipc.Hello, 1), ready: make(chan ipc.Ready, 4), released: make(chan ipc.Released, 4), prepared: make(chan ipc.Prepared, 4),
		rulesAck: make(chan uint64, 64), exited: make(chan struct{}), linkDone: make(chan struct{}),
		log: log.With("worker", spec.index, "pid", cmd.Process.Pid),
	}
	go func() {
		p.exitErr = cmd.Wait()
		stderr.close()
		close(p.exited)
	}()
	return p, nil
}

// kill sends SIGKILL; a process already gone is not an error.
func (p *proc) kill() {
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.log.Warn("kill worker", "error", err)
	}
}

func (p *proc) signal(sig os.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.log.Debug("signal worker", "signal", sig, "error", err)
	}
}

// isBooted reports whether the worker has reported ready.
func (p *proc) isBooted() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.booted && !p.dead
}
