package runner

import (
	"context"

	"github.com/tockd/tock/store"
)

// ShellRunner runs store.RunnerShell executions (args: [command]) as
// [Path, Args..., command], by default /bin/sh -c <command>.
type ShellRunner struct {
	// Path of the shell; empty means /bin/sh.
	Path string
	// Args between Path and the command; nil means ["-c"].
	Args []string
	// MaxOutputBytes of output tail kept; 0 means 4096, negative none.
	MaxOutputBytes int
}

var _ Runner = (*ShellRunner)(nil)

// Run runs the shell command of ex.
func (r *ShellRunner) Run(ctx context.Context, ex Execution) store.Outcome {
	if len(ex.Runner.Args) != 1 {
		return failf("shell runner: want 1 argument (command), got %d", len(ex.Runner.Args))
	}
	path, args := r.Path, r.Args
	if path == "" {
		path = DefaultShellPath
	}
	if args == nil {
		args = defaultShellArgs()
	}
	argv := make([]string, 0, len(args)+1)
	argv = append(append(argv, args...), ex.Runner.Args[0])
	return runProcess(ctx, ex, path, argv, outputLimit(r.MaxOutputBytes))
}

func outputLimit(n int) int {
	if n == 0 {
		return DefaultMaxOutputBytes
	}
	return n
}
