// Package suite runs tock's side-by-side benchmark (the performance section
// of the README, docs/benchmarks.md): the echo ceiling, redis, beanstalkd
// and tock in several configurations, each started as a private server on
// loopback, driven by the same load generator (package bench) at several
// load shapes, several repetitions, with the CPU every server process used
// per request. Every process it starts, it stops, on errors and
// cancellation too.
package suite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/bench"
)

// Shape is a load shape: connections × requests in flight on each.
type Shape struct {
	Clients, Pipeline int
}

func (s Shape) String() string { return fmt.Sprintf("%d×%d", s.Clients, s.Pipeline) }

// ParseShape parses "16x64" (or "16×64").
func ParseShape(s string) (Shape, error) {
	a, b, ok := strings.Cut(strings.ReplaceAll(s, "×", "x"), "x")
	var sh Shape
	if !ok {
		return sh, fmt.Errorf("shape %q: want CLIENTSxPIPELINE, e.g. 16x64", s)
	}
	if _, err := fmt.Sscanf(a+" "+b, "%d %d", &sh.Clients, &sh.Pipeline); err != nil || sh.Clients < 1 || sh.Pipeline < 1 ||
		fmt.Sprintf("%dx%d", sh.Clients, sh.Pipeline) != a+"x"+b {
		return Shape{}, fmt.Errorf("shape %q: want two positive integers, e.g. 16x64", s)
	}
	return sh, nil
}

// DefaultShapes are the shapes of the performance goals: pipelined, one
// request in flight per connection, one request at a time.
var DefaultShapes = []Shape{{16, 64}, {16, 1}, {1, 1}}

// Options configure a suite run.
type Options struct {
	// TockBin is the tock binary; EchoArgv the command that serves the echo
	// server on the address appended to it (see ServeEcho).
	TockBin  string
	EchoArgv []string
	// RedisBin and BeanstalkdBin default to redis-server and beanstalkd on
	// PATH or in /usr/sbin, /usr/bin.
	RedisBin, BeanstalkdBin string
	// Targets are the names of the targets to run (default: all); echo is
	// always run, since every ratio is against it.
	Targets []string
	// RequireAll makes a target whose program is missing an error instead
	// of a skipped row.
	RequireAll bool
	// Shapes default to DefaultShapes.
	Shapes []Shape
	// Reps is the number of measured repetitions (default 3).
	Reps int
	// RunTime is the aimed duration of one measured run (default 2s): the
	// request count of each (target, shape) is its calibrated rate × RunTime.
	RunTime time.Duration
	// MinRequests bounds the request count of a measured run from below
	// (default 2000).
	MinRequests int
	// CalibrationTime is how long a calibration run must last before its
	// rate is trusted (default RunTime/10, at least 100 ms).
	CalibrationTime time.Duration
	// WorkDir holds the servers' data (default: a temporary directory,
	// removed at the end).
	WorkDir string
	// Log receives one line per server start and per measurement.
	Log hclog.Logger

	// onStarted, when set (by tests), is called with each server's PID once
	// it is ready.
	onStarted func(pid int)
}

func (o *Options) normalize() error {
	if len(o.Shapes) == 0 {
		o.Shapes = DefaultShapes
	}
	if o.Reps == 0 {
		o.Reps = 3
	}
	if o.RunTime == 0 {
		o.RunTime = 2 * time.Second
	}
	if o.MinRequests == 0 {
		o.MinRequests = 2000
	}
	if o.CalibrationTime == 0 {
		o.CalibrationTime = max(o.RunTime/10, 100*time.Millisecond)
	}
	if o.Reps < 1 || o.RunTime < 0 || o.MinRequests < 1 || o.CalibrationTime < 0 {
		return errors.New("repetitions, run time, minimum requests and calibration time must be positive")
	}
	if o.Log == nil {
		o.Log = hclog.NewNullLogger()
	}
	for _, n := range o.Targets {
		if _, ok := targetByName(n); !ok {
			return fmt.Errorf("unknown target %q (known: %s)", n, strings.Join(TargetNames(), ", "))
		}
	}
	return nil
}

// selected returns the targets to run, echo first.
func (o *Options) selected() []Target {
	var out []Target
	for _, t := range Targets {
		if t.Name == "echo" || len(o.Targets) == 0 || slices.Contains(o.Targets, t.Name) {
			out = append(out, t)
		}
	}
	return out
}

// Run runs the suite: it starts every selected server, calibrates each
// (target, shape), then runs Reps rounds in which every shape and target is
// measured once, so that each round measures echo and the others close
// together in time on a machine whose load varies. It stops every server
// before it returns, whatever happens; a cancelled ctx stops it at once with
// ctx's error.
func Run(ctx context.Context, opts Options) (rep *Report, err error) {
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	e := &env{tockBin: opts.TockBin, echoArgv: opts.EchoArgv,
		redisBin:      findProgram(opts.RedisBin, "redis-server"),
		beanstalkdBin: findProgram(opts.BeanstalkdBin, "beanstalkd")}
	if e.dir = opts.WorkDir; e.dir == "" {
		if e.dir, err = os.MkdirTemp("", "tock-benchkit-"); err != nil {
			return nil, fmt.Errorf("work directory: %w", err)
		}
		defer os.RemoveAll(e.dir)
	}
	rep = newReport(opts)

	var servers []*server
	defer func() {
		for i := len(servers) - 1; i >= 0; i-- {
			s := servers[i]
			opts.Log.Info("stopping", "target", s.target.Name, "pid", s.p.pid())
			if serr := s.p.stop(20 * time.Second); serr != nil {
				opts.Log.Warn("stop", "target", s.target.Name, "error", serr)
			}
		}
	}()
	for _, t := range opts.selected() {
		if t.binary(e) == "" {
			if t.Name == "echo" || opts.RequireAll {
				return nil, fmt.Errorf("target %s: its program is not installed", t.Name)
			}
			rep.skip(t, "not installed")
			opts.Log.Warn("skipped: not installed", "target", t.Name)
			continue
		}
		s, err := t.start(ctx, e, t)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", t.Name, err)
		}
		opts.Log.Info("started", "target", t.Name, "addr", s.addr, "pid", s.p.pid())
		servers = append(servers, s)
		if opts.onStarted != nil {
			opts.onStarted(s.p.pid())
		}
		rep.addTarget(t)
	}
	rep.Host = describeHost(ctx, e)

	// Calibration, which is also each server's warm-up at that shape.
	requests := map[string]int{}
	for _, sh := range opts.Shapes {
		for _, s := range servers {
			n, err := calibrate(ctx, s, sh, opts)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, fmt.Errorf("calibrate %s at %s: %w", s.target.Name, sh, err)
			}
			requests[s.target.Name+" "+sh.String()] = n
		}
	}
	for r := 1; r <= opts.Reps; r++ {
		for si, sh := range opts.Shapes {
			for _, s := range servers {
				key := s.target.Name + " " + sh.String()
				m := measure(ctx, s, sh, requests[key], fmt.Sprintf("r%ds%d.", r, si))
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				// The next round's count follows this run's rate: on a
				// shared machine an fsync can be ten times slower than
				// during calibration, and a run must stay near RunTime.
				if m.Error == "" && m.Throughput > 0 {
					requests[key] = requestsFor(m.Throughput, opts)
				}
				m.Rep = r
				opts.Log.Info("measured", "target", s.target.Name, "shape", sh.String(), "rep", r,
					"req/s", int64(m.Throughput), "core-µs/req", fmt.Sprintf("%.2f", m.CoreUSPerRequest),
					"p50", time.Duration(m.P50Ns), "p99", time.Duration(m.P99Ns), "error", m.Error)
				rep.add(m)
			}
		}
	}
	rep.Finished = time.Now().UTC()
	rep.aggregate()
	return rep, nil
}

// loadConfig is the load generator's configuration for s at sh.
func loadConfig(s *server, sh Shape, requests int, prefix string) bench.Config {
	return bench.Config{Addr: s.addr, Clients: sh.Clients, Pipeline: sh.Pipeline, Requests: requests,
		Op: "set", Prefix: prefix, Protocol: s.target.Protocol, Timeout: 30 * time.Second}
}

// calibrate finds the request count for a run of about opts.RunTime: it
// runs s at sh with growing counts until a run lasts CalibrationTime, then
// scales the count by the rate measured.
func calibrate(ctx context.Context, s *server, sh Shape, opts Options) (int, error) {
	n := max(256, sh.Clients*sh.Pipeline*4)
	want := opts.CalibrationTime
	for i := 0; ; i++ {
		res, err := bench.Run(ctx, loadConfig(s, sh, n, fmt.Sprintf("w%d.", i)))
		if err != nil {
			return 0, err
		}
		if res.Errors > 0 {
			return 0, fmt.Errorf("%d of %d requests failed: %q", res.Errors, res.Requests, res.ErrorSamples)
		}
		if res.Duration >= want || i == 8 {
			return requestsFor(res.Throughput, opts), nil
		}
		n *= 4
	}
}

// measure runs one measured run and the server CPU it cost. A failure is
// recorded in the measurement, not returned: one broken target must not
// hide the others' figures.
func measure(ctx context.Context, s *server, sh Shape, requests int, prefix string) Measurement {
	m := Measurement{Target: s.target.Name, Shape: sh.String()}
	if !s.p.alive() {
		m.Error = fmt.Sprintf("server exited: %v", s.p.waitErr)
		return m
	}
	cpu0, err := serverCPU(s.p.pid())
	if err != nil {
		m.Error = err.Error()
		return m
	}
	res, runErr := bench.Run(ctx, loadConfig(s, sh, requests, prefix))
	cpu1, err := serverCPU(s.p.pid())
	switch {
	case runErr != nil:
		m.Error = runErr.Error()
	case err != nil:
		m.Error = err.Error()
	case res.Errors > 0:
		m.Error = fmt.Sprintf("%d of %d requests failed: %q", res.Errors, res.Requests, res.ErrorSamples)
	}
	m.fill(res, cpu1-cpu0)
	return m
}

// requestsFor is the request count of a run of about opts.RunTime at rate
// (req/s), at least opts.MinRequests.
func requestsFor(rate float64, opts Options) int {
	return max(opts.MinRequests, int(rate*opts.RunTime.Seconds()))
}
