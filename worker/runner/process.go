package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/tockd/tock/store"
)

// processWaitDelay bounds how long Wait keeps reading output after the
// process exited (or was killed) when a descendant that escaped or outlived
// it still holds the output pipe open.
const processWaitDelay = time.Second

// Environment variables given to process runners.
const (
	EnvJobID        = "TOCK_JOB_ID"
	EnvJobExecution = "TOCK_JOB_EXECUTION"
	EnvRuleID       = "TOCK_RULE_ID"
)

// runProcess runs path with args for ex and maps the result to an outcome:
//
//   - environment: the worker's plus TOCK_JOB_ID, TOCK_JOB_EXECUTION (scheduled
//     ns, decimal) and TOCK_RULE_ID; stdin /dev/null; working directory
//     inherited;
//   - stdout and stderr go to one bounded tail buffer (last maxOut bytes);
//   - the child leads its own process group; when ctx is done the whole group
//     is SIGKILLed, so a timeout also kills what the command spawned;
//   - path without '/' is looked up in PATH (exec.Command semantics).
func runProcess(ctx context.Context, ex Execution, path string, args []string, maxOut int) store.Outcome {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(),
		EnvJobID+"="+ex.JobID,
		EnvJobExecution+"="+strconv.FormatInt(ex.Execution, 10),
		EnvRuleID+"="+ex.RuleID,
	)
	// cmd.Stdin nil: the child reads /dev/null.
	var tail *tailBuffer
	if maxOut > 0 {
		tail = newTailBuffer(maxOut)
		// The same comparable writer for both: exec uses one pipe and one
		// copying goroutine, so the interleaving is the process's own.
		cmd.Stdout = tail
		cmd.Stderr = tail
	}
	// Pdeathsig: a worker killed mid-execution takes its children with it,
	// so the re-run after recovery is the only run that completes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	cmd.WaitDelay = processWaitDelay

	err := cmd.Run()
	o := store.Outcome{ExitCode: -1}
	if tail != nil {
		o.Output = tail.String()
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		o.ExitCode = 0
	case errors.As(err, &exitErr):
		ws, _ := exitErr.Sys().(syscall.WaitStatus)
		switch {
		case ws.Signaled():
			sig := ws.Signal()
			name := unix.SignalName(sig)
			if name == "" {
				name = "signal " + strconv.Itoa(int(sig))
			}
			o.Error = fmt.Sprintf("killed by signal %s (%s)", name, sig)
		default:
			o.ExitCode = int32(exitErr.ExitCode())
			o.Error = fmt.Sprintf("exit status %d", o.ExitCode)
		}
	case errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success():
		// Exited 0 but left a descendant holding the output pipe; the
		// execution itself succeeded.
		o.ExitCode = 0
	default:
		// Spawn failure: missing executable, permission denied, ...
		o.Error = err.Error()
	}
	return withCause(ctx, o)
}

// tailBuffer is an io.Writer keeping only the last max bytes written. It
// lets its buffer grow to 2×max before compacting, so writes cost O(1)
// amortised per byte.
type tailBuffer struct {
	mu    sync.Mutex
	max   int
	buf   []byte
	total int64
}

func newTailBuffer(max int) *tailBuffer {
	return &tailBuffer{max: max, buf: make([]byte, 0, min(max, 512))}
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total += int64(n)
	if n >= t.max {
		t.buf = append(t.buf[:0], p[n-t.max:]...)
		return n, nil
	}
	if len(t.buf)+n > 2*t.max {
		keep := t.max - n
		t.buf = t.buf[:copy(t.buf, t.buf[len(t.buf)-keep:])]
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// String is the kept tail. When older output was dropped, a UTF-8 sequence
// cut at the front is dropped too.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if len(b) > t.max {
		b = b[len(b)-t.max:]
	}
	if t.total > int64(len(b)) {
		for k := 0; k < utf8.UTFMax-1 && len(b) > 0 && !utf8.RuneStart(b[0]); k++ {
			b = b[1:]
		}
	}
	return string(b)
}
