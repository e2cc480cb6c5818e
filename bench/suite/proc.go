package suite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// proc is one server process the suite started. Its lifecycle is
// started → stopping → stopped, each transition logged once by stop's
// caller; stop is safe to call more than once and from a signal path.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *tailBuffer
	// exited is closed when the process has been waited for; waitErr is
	// its exit status then.
	exited  chan struct{}
	waitErr error
	once    sync.Once
}

// startProc starts argv in its own process group (so a stop can reach
// every process it forks) with the death signal SIGKILL (so it does not
// outlive the suite if the suite is killed outright), output kept in a tail
// buffer for error messages.
func startProc(name string, dir string, argv ...string) (*proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	out := &tailBuffer{max: 32 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, out: out, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// alive reports whether the process has not exited.
func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop ends the process and everything it started: SIGTERM to the process
// (a tock master then stops its workers, which live in process groups of
// their own), up to grace for it to exit, then SIGKILL to its process group
// and to every descendant seen before the SIGTERM that is still the same
// process (same start time), so that nothing is left behind.
func (p *proc) stop(grace time.Duration) error {
	var err error
	p.once.Do(func() {
		var tree []ProcStat
		if stats, serr := readStats("/proc"); serr == nil {
			tree = Tree(stats, p.pid())
		}
		if p.alive() {
			if serr := p.cmd.Process.Signal(syscall.SIGTERM); serr != nil && !errors.Is(serr, syscall.ESRCH) && !errors.Is(serr, os.ErrProcessDone) {
				err = fmt.Errorf("SIGTERM %s: %w", p.name, serr)
			}
		}
		select {
		case <-p.exited:
		case <-time.After(grace):
			err = fmt.Errorf("%s did not exit %s after SIGTERM: killed", p.name, grace)
		}
		syscall.Kill(-p.pid(), syscall.SIGKILL) // the group; ESRCH when it is empty
		killLeftovers(tree)
		<-p.exited
	})
	return err
}

// killLeftovers SIGKILLs the processes of tree that still run, checking the
// start time so that a reused PID is never hit.
func killLeftovers(tree []ProcStat) {
	if len(tree) == 0 {
		return
	}
	stats, err := readStats("/proc")
	if err != nil {
		return
	}
	now := map[int]uint64{}
	for _, s := range stats {
		now[s.PID] = s.StartTime
	}
	for _, s := range tree {
		if st, ok := now[s.PID]; ok && st == s.StartTime {
			syscall.Kill(s.PID, syscall.SIGKILL)
		}
	}
}

// freePort returns a loopback TCP port that was free a moment ago. The
// servers that cannot listen on port 0 and say which port they got are given
// one this way; the window in which another process could take it is the
// time the server takes to start.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls probe every 20 ms until it succeeds, the process exits,
// ctx ends or timeout passes.
func waitReady(ctx context.Context, p *proc, timeout time.Duration, probe func() error) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := probe()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %v\n%s", p.name, timeout, err, p.out)
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited at start: %v\n%s", p.name, p.waitErr, p.out)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// probeLine connects to addr, writes req and checks that the first reply
// line is want.
func probeLine(addr, req, want string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(c, req); err != nil {
			return err
		}
		buf := make([]byte, 0, 256)
		one := make([]byte, 1)
		for len(buf) < cap(buf) {
			if _, err := c.Read(one); err != nil {
				return fmt.Errorf("reply to %q: %w", req, err)
			}
			buf = append(buf, one[0])
			if one[0] == '\n' {
				break
			}
		}
		if string(buf) != want {
			return fmt.Errorf("reply to %q is %q, want %q", req, buf, want)
		}
		return nil
	}
}

// tailBuffer keeps the first and the last max bytes written to it.
type tailBuffer struct {
	mu   sync.Mutex
	max  int
	head bytes.Buffer
	tail []byte
	cut  bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if room := t.max - t.head.Len(); room > 0 {
		n := min(room, len(p))
		t.head.Write(p[:n])
		p2 := p[n:]
		if len(p2) == 0 {
			return len(p), nil
		}
		t.tail = append(t.tail, p2...)
	} else {
		t.tail = append(t.tail, p...)
	}
	if len(t.tail) > 2*t.max {
		t.tail = append(t.tail[:0], t.tail[len(t.tail)-t.max:]...)
		t.cut = true
	}
	return len(p), nil
}

// Head returns the first max bytes written.
func (t *tailBuffer) Head() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.head.String()
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	tail := t.tail
	if len(tail) > t.max {
		tail, t.cut = tail[len(tail)-t.max:], true
	}
	sep := ""
	if t.cut {
		sep = "\n...\n"
	}
	return t.head.String() + sep + string(tail)
}
