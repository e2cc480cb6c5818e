package runner

import (
	"context"

	"github.com/tockd/tock/store"
)

// DefaultAWFPath is the awf executable, looked up in PATH.
const DefaultAWFPath = "awf"

// AWFRunner runs store.RunnerAWF executions (args: [workflow, input...],
// each input "key=value") as `awf run <workflow> --input <kv>...`.
type AWFRunner struct {
	// Path of the awf executable; empty means "awf" looked up in PATH.
	Path string
	// MaxOutputBytes of output tail kept; 0 means 4096, negative none.
	MaxOutputBytes int
}

var _ Runner = (*AWFRunner)(nil)

// Run runs the workflow of ex.
func (r *AWFRunner) Run(ctx context.Context, ex Execution) store.Outcome {
	if len(ex.Runner.Args) < 1 || ex.Runner.Args[0] == "" {
		return failf("awf runner: missing workflow")
	}
	path := r.Path
	if path == "" {
		path = DefaultAWFPath
	}
	inputs := ex.Runner.Args[1:]
	argv := make([]string, 0, 2+2*len(inputs))
	argv = append(argv, "run", ex.Runner.Args[0])
	for _, kv := range inputs {
		argv = append(argv, "--input", kv)
	}
	return runProcess(ctx, ex, path, argv, outputLimit(r.MaxOutputBytes))
}
