// Package runner executes triggered jobs: one Runner implementation per
// store.RunnerKind (shell, direct, awf, http, redis, amqp), a Dispatcher that
// picks the implementation, applies timeouts and turns every failure (even a
// panic) into a store.Outcome, and a Pipeline that runs executions
// concurrently, bounded by max_inflight, without ever blocking its caller.
//
// Credentials embedded in runner URLs/DSNs (http, redis, amqp) never reach
// logs or Outcome.Error: they are redacted to user:xxxxx@ and every error
// text is scrubbed of the password before it leaves this package.
package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tockd/tock/store"
)

// Defaults applied by New for zero Config fields.
const (
	DefaultShellPath      = "/bin/sh"
	DefaultProcessTimeout = 5 * time.Minute
	DefaultNetworkTimeout = 30 * time.Second
	DefaultMaxOutputBytes = 4096
)

// defaultShellArgs is used when Config.ShellArgs is nil.
func defaultShellArgs() []string { return []string{"-c"} }

// Execution is one triggered job to run.
type Execution struct {
	JobID string
	// Execution is the job's scheduled time, ns since the Unix epoch.
	Execution int64
	// RuleID is the rule whose runner is used.
	RuleID string
	Runner store.Runner
	// Gen is opaque to this package and carried back in Result.
	Gen uint64
	// Shard is opaque to this package and carried back in Result.
	Shard int
}

// Config configures a Dispatcher. Zero fields take the defaults above.
type Config struct {
	// ShellPath is the shell binary of the shell runner (default /bin/sh).
	ShellPath string
	// ShellArgs come between ShellPath and the command. nil means ["-c"]; an
	// empty non-nil slice means no arguments at all.
	ShellArgs []string
	// ProcessTimeout bounds shell, direct and awf executions (default 5m).
	ProcessTimeout time.Duration
	// NetworkTimeout bounds http, redis and amqp executions (default 30s).
	NetworkTimeout time.Duration
	// MaxOutputBytes is how much of the tail of a process's combined
	// stdout+stderr is kept in Outcome.Output (default 4096; negative: none).
	MaxOutputBytes int
}

func (c Config) withDefaults() Config {
	if c.ShellPath == "" {
		c.ShellPath = DefaultShellPath
	}
	if c.ShellArgs == nil {
		c.ShellArgs = defaultShellArgs()
	}
	if c.ProcessTimeout <= 0 {
		c.ProcessTimeout = DefaultProcessTimeout
	}
	if c.NetworkTimeout <= 0 {
		c.NetworkTimeout = DefaultNetworkTimeout
	}
	if c.MaxOutputBytes == 0 {
		c.MaxOutputBytes = DefaultMaxOutputBytes
	}
	return c
}

// Runner runs one execution and reports its outcome. Implementations honour
// ctx (cancellation and deadline) and report failures in Outcome.Error; they
// do not apply timeouts themselves: the Dispatcher does.
type Runner interface {
	Run(ctx context.Context, ex Execution) store.Outcome
}

// TimeoutError is the cancellation cause of an execution that ran out of
// time; its text ("timeout after 5m0s") becomes Outcome.Error.
type TimeoutError struct{ After time.Duration }

func (e *TimeoutError) Error() string { return "timeout after " + e.After.String() }

// Dispatcher implements Runner for every store.RunnerKind.
type Dispatcher struct {
	cfg     Config
	log     hclog.Logger
	runners [6]Runner // indexed by store.RunnerKind
	redis   *RedisRunner
	amqp    *AMQPRunner
	http    *HTTPRunner
	fails   *FailureLog
}

var _ Runner = (*Dispatcher)(nil)

// New returns a Dispatcher for cfg. log may be nil.
func New(cfg Config, log hclog.Logger) *Dispatcher {
	cfg = cfg.withDefaults()
	if log == nil {
		log = hclog.NewNullLogger()
	}
	d := &Dispatcher{cfg: cfg, log: log, fails: NewFailureLog(log)}
	d.http = NewHTTPRunner(cfg.NetworkTimeout)
	d.redis = NewRedisRunner(cfg.NetworkTimeout, log.Named("redis"))
	d.amqp = NewAMQPRunner(cfg.NetworkTimeout, log.Named("amqp"))
	d.runners[store.RunnerShell] = &ShellRunner{Path: cfg.ShellPath, Args: cfg.ShellArgs, MaxOutputBytes: cfg.MaxOutputBytes}
	d.runners[store.RunnerDirect] = &DirectRunner{MaxOutputBytes: cfg.MaxOutputBytes}
	d.runners[store.RunnerAWF] = &AWFRunner{MaxOutputBytes: cfg.MaxOutputBytes}
	d.runners[store.RunnerHTTP] = d.http
	d.runners[store.RunnerRedis] = d.redis
	d.runners[store.RunnerAMQP] = d.amqp
	return d
}

// Config returns the effective configuration (defaults applied).
func (d *Dispatcher) Config() Config { return d.cfg }

func isProcessKind(k store.RunnerKind) bool {
	return k == store.RunnerShell || k == store.RunnerDirect || k == store.RunnerAWF
}

// Run runs ex with the implementation of its runner kind under the kind's
// timeout. It never panics: a panic inside a runner becomes a failed outcome.
// StartedAt and Duration are always filled; ExitCode is -1 unless a process
// exited; Error and Output are scrubbed of URL credentials.
func (d *Dispatcher) Run(ctx context.Context, ex Execution) (o store.Outcome) {
	start := time.Now()
	kind := ex.Runner.Kind
	defer func() {
		if r := recover(); r != nil {
			o = store.Outcome{ExitCode: -1, Error: fmt.Sprintf("runner panic: %v", r)}
			d.log.Error("runner panicked", "job", ex.JobID, "rule", ex.RuleID, "runner", kind.String(), "panic", scrubRunner(fmt.Sprint(r), ex.Runner))
		}
		o.StartedAt = start.UnixNano()
		o.Duration = int64(time.Since(start))
		if !isProcessKind(kind) {
			o.ExitCode = -1
		}
		o.Error = scrubRunner(o.Error, ex.Runner)
		o.Output = scrubRunner(o.Output, ex.Runner)
		d.logOutcome(ex, o)
	}()

	var impl Runner
	if kind.Valid() {
		impl = d.runners[kind]
	}
	if impl == nil {
		return store.Outcome{ExitCode: -1, Error: fmt.Sprintf("unknown runner kind %s", kind)}
	}
	timeout := d.cfg.NetworkTimeout
	if isProcessKind(kind) {
		timeout = d.cfg.ProcessTimeout
	}
	rctx, cancel := context.WithTimeoutCause(ctx, timeout, &TimeoutError{After: timeout})
	defer cancel()
	o = impl.Run(rctx, ex)
	return withCause(rctx, o)
}

// logOutcome logs a failed execution at warn, so an operator sees why a
// job failed without reading its shard, and a successful one at debug. An
// execution cut short by the worker's shutdown is not a failure of the job
// (it runs again), so it is logged at debug too.
func (d *Dispatcher) logOutcome(ex Execution, o store.Outcome) {
	failed := !o.Succeeded() && o.Error != ErrShutdown.Error()
	if !failed && !d.log.IsDebug() {
		return
	}
	args := []any{"job", ex.JobID, "rule", ex.RuleID, "runner", ex.Runner.Kind.String(),
		"duration", time.Duration(o.Duration).String()}
	if t := targetOf(ex.Runner); t != "" {
		args = append(args, "target", t)
	}
	if o.ExitCode >= 0 {
		args = append(args, "exit_code", o.ExitCode)
	}
	if o.HTTPStatus != 0 {
		args = append(args, "http_status", o.HTTPStatus)
	}
	if !o.Succeeded() {
		args = append(args, "error", o.Error)
	}
	if failed {
		d.fails.Warn("execution failed", args...)
		return
	}
	d.log.Debug("execution succeeded", args...)
}

// Failures is the rate-limited warn log of failed executions, for failures
// that never reach a runner (a due job without a rule).
func (d *Dispatcher) Failures() *FailureLog { return d.fails }

// Close closes the cached network clients (redis clients, AMQP connections,
// idle HTTP connections). Executions still running finish first on their
// client, which is closed when they release it.
func (d *Dispatcher) Close() error {
	d.http.CloseIdleConnections()
	return errors.Join(d.redis.Close(), d.amqp.Close())
}

// withCause replaces the error of a failed outcome by the context's cause
// (timeout or cancellation) when the context is done: "signal: killed" or
// "context deadline exceeded" are effects, the cause is the useful text.
//
// A socket deadline derived from the context deadline can fire a moment
// before the context's own timer: once the deadline has passed, wait for the
// context to be done (imminent) so that the timeout is reported as such.
func withCause(ctx context.Context, o store.Outcome) store.Outcome {
	if o.Error == "" {
		return o
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		<-ctx.Done()
	}
	if ctx.Err() != nil {
		o.Error = context.Cause(ctx).Error()
	}
	return o
}

// failf builds a failed outcome that is not a process exit.
func failf(format string, args ...any) store.Outcome {
	return store.Outcome{ExitCode: -1, Error: fmt.Sprintf(format, args...)}
}

// targetOf is the redacted network target of r, for logs ("" for process
// runners, whose arguments are not logged).
func targetOf(r store.Runner) string {
	if u := urlArg(r); u != "" {
		return redact(u)
	}
	return ""
}

// urlArg is the argument of r that may carry credentials.
func urlArg(r store.Runner) string {
	switch r.Kind {
	case store.RunnerHTTP:
		if len(r.Args) > 1 {
			return r.Args[1]
		}
	case store.RunnerRedis, store.RunnerAMQP:
		if len(r.Args) > 0 {
			return r.Args[0]
		}
	}
	return ""
}

// scrubRunner removes r's URL credentials from text.
func scrubRunner(text string, r store.Runner) string {
	if u := urlArg(r); u != "" {
		return scrub(text, u)
	}
	return text
}
