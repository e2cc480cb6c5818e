package runner

import (
	"context"

	"github.com/tockd/tock/store"
)

// DirectRunner runs store.RunnerDirect executions (args: [executable,
// arg...]) with execve, no shell involved: arguments are passed verbatim. An
// executable without '/' is looked up in PATH.
type DirectRunner struct {
	// MaxOutputBytes of output tail kept; 0 means 4096, negative none.
	MaxOutputBytes int
}

var _ Runner = (*DirectRunner)(nil)

// Run executes the executable of ex.
func (r *DirectRunner) Run(ctx context.Context, ex Execution) store.Outcome {
	if len(ex.Runner.Args) < 1 || ex.Runner.Args[0] == "" {
		return failf("direct runner: missing executable")
	}
	return runProcess(ctx, ex, ex.Runner.Args[0], ex.Runner.Args[1:], outputLimit(r.MaxOutputBytes))
}
