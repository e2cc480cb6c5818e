package store

import "fmt"

// Status is where a job is in its one-shot life.
//
//	SET ──► Planned ──(due, rule found)──► Triggered ──(runner ok)──► Executed
//	           │                                └──(runner failed)──► Failed
//	           └──(due, no rule matches)──────────────────────────────► Failed
//
// The numeric values are ztick's on-disk status bytes and must not change.
type Status uint8

const (
	// Planned: waiting for its execution time.
	Planned Status = 0
	// Triggered: handed to the execution pipeline, no outcome yet.
	Triggered Status = 1
	// Executed: the runner reported success.
	Executed Status = 2
	// Failed: the runner reported failure, or no rule matched.
	Failed Status = 3
)

func (s Status) String() string {
	switch s {
	case Planned:
		return "planned"
	case Triggered:
		return "triggered"
	case Executed:
		return "executed"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Valid reports whether s is one of the four statuses.
func (s Status) Valid() bool { return s <= Failed }

// RunnerKind says how a rule runs a job. The numeric values are ztick's
// on-disk runner kind bytes and must not change.
type RunnerKind uint8

const (
	RunnerShell  RunnerKind = 0
	RunnerAMQP   RunnerKind = 1
	RunnerDirect RunnerKind = 2
	RunnerAWF    RunnerKind = 3
	RunnerHTTP   RunnerKind = 4
	RunnerRedis  RunnerKind = 5
)

var runnerNames = [...]string{"shell", "amqp", "direct", "awf", "http", "redis"}

func (k RunnerKind) String() string {
	if int(k) < len(runnerNames) {
		return runnerNames[k]
	}
	return fmt.Sprintf("runner(%d)", uint8(k))
}

// Valid reports whether k is a known runner kind.
func (k RunnerKind) Valid() bool { return int(k) < len(runnerNames) }

// ParseRunnerKind maps a runner name ("shell", "http", ...) to its kind.
func ParseRunnerKind(name string) (RunnerKind, bool) {
	for i, n := range runnerNames {
		if n == name {
			return RunnerKind(i), true
		}
	}
	return 0, false
}

// Runner is a rule's runner: its kind and its positional arguments, in the
// order of ztick's encoding:
//
//	shell:  [command]
//	amqp:   [dsn, exchange, routing_key]
//	direct: [executable, arg...]
//	awf:    [workflow, input...]        (each input "key=value")
//	http:   [method, url]
//	redis:  [url, command, key]
type Runner struct {
	Kind RunnerKind
	Args []string
}

// Rule maps every job whose id starts with Pattern to Runner.
type Rule struct {
	ID      string
	Pattern string
	Runner  Runner
}

// Outcome is what the last execution of a job produced.
type Outcome struct {
	// StartedAt is the wall-clock start of the execution, ns since the epoch.
	StartedAt int64
	// Duration of the execution in ns.
	Duration int64
	// ExitCode of a process runner; -1 when not a process or it did not exit.
	ExitCode int32
	// HTTPStatus of the http runner's response; 0 otherwise.
	HTTPStatus int32
	// Error is empty on success, otherwise why the execution failed.
	Error string
	// Output is a bounded tail of a process runner's combined output.
	Output string
	// Attempt is which run of the job's current schedule this was: 1 for
	// the first, more when the job ran again after a crash (delivery is
	// at-least-once). 0 when unknown (an outcome logged by an older tock).
	Attempt uint32
}

// Succeeded reports whether the execution succeeded.
func (o Outcome) Succeeded() bool { return o.Error == "" }

// Job is one scheduled one-shot job.
type Job struct {
	ID string
	// Execution is the scheduled time, ns since the Unix epoch (UTC).
	Execution int64
	Status    Status
	// Outcome of the last execution, nil before the first one.
	Outcome *Outcome
}
