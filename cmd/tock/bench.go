package main

// The progress bar is the dozen lines of bench.progress rather than
// github.com/schollz/progressbar: one carriage-return-updated line is all
// `tock bench` needs, and it is not worth a dependency.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/tockd/tock/bench"
	"github.com/urfave/cli/v2"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "load generator for the line protocol: throughput and latency percentiles",
		Description: "Opens --clients connections to --addr, keeps --pipeline requests in flight on each\n" +
			"and sends --requests requests in all. SETs plan jobs in 2100 (nothing fires); GETs\n" +
			"count \"not found\" as a valid reply. Progress goes to stderr, the result to stdout.\n" +
			"Job ids start with a prefix of this run's own (tock-bench.<run>.), and the jobs are\n" +
			"removed afterwards; --keep keeps them (to GET them later: --prefix P --keep, then\n" +
			"--op get --prefix P).\n" +
			"--echo benchmarks a built-in echo server on loopback instead: the ceiling.",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:5678", Usage: "server address"},
			&cli.IntFlag{Name: "clients", Value: 16, Usage: "connections"},
			&cli.IntFlag{Name: "pipeline", Value: 64, Usage: "requests in flight per connection (1 = no pipelining)"},
			&cli.IntFlag{Name: "requests", Value: 1_000_000, Usage: "requests in all"},
			&cli.StringFlag{Name: "op", Value: "set", Usage: "set, get or mixed (50/50)"},
			&cli.IntFlag{Name: "keyspace", Usage: "distinct job ids, request n uses n mod keyspace (default: --requests)"},
			&cli.StringFlag{Name: "prefix", Usage: "job id prefix (default: tock-bench.<run>., new for every run)"},
			&cli.BoolFlag{Name: "keep", Usage: "keep the jobs the run wrote instead of removing them"},
			&cli.StringFlag{Name: "protocol", Value: "line", Usage: "line (tock), resp (redis ZADD/ZSCORE) or beanstalk (beanstalkd delayed put, set only)"},
			&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "give up when no reply comes for this long"},
			&cli.BoolFlag{Name: "echo", Usage: "benchmark a built-in echo server on loopback (the ceiling) instead of --addr"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar"},
		},
		Action: runBench,
	}
}

func runBench(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return cli.Exit(fmt.Sprintf("bench takes no arguments, got %q", c.Args().First()), exitUsage)
	}
	for _, name := range []string{"clients", "pipeline", "requests"} {
		if c.Int(name) < 1 {
			return cli.Exit(fmt.Sprintf("--%s must be at least 1", name), exitUsage)
		}
	}
	switch op := c.String("op"); op {
	case "set", "get", "mixed":
	default:
		return cli.Exit(fmt.Sprintf("--op %q: want set, get or mixed", op), exitUsage)
	}
	switch p := c.String("protocol"); {
	case p != "line" && p != "resp" && p != "beanstalk":
		return cli.Exit(fmt.Sprintf("--protocol %q: want line, resp or beanstalk", p), exitUsage)
	case p == "beanstalk" && c.String("op") != "set":
		return cli.Exit("--protocol beanstalk supports only --op set", exitUsage)
	case p != "line" && c.Bool("echo"):
		return cli.Exit("--echo speaks the line protocol only", exitUsage)
	}
	if c.Int("keyspace") < 0 {
		return cli.Exit("--keyspace must not be negative", exitUsage)
	}
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	cfg := bench.Config{
		Addr:     c.String("addr"),
		Clients:  c.Int("clients"),
		Pipeline: c.Int("pipeline"),
		Requests: c.Int("requests"),
		Op:       c.String("op"),
		KeySpace: c.Int("keyspace"),
		Prefix:   benchPrefix(c),
		Protocol: c.String("protocol"),
		Timeout:  c.Duration("timeout"),
	}
	if !c.Bool("quiet") {
		cfg.Progress = c.App.ErrWriter
	}
	if c.Bool("echo") {
		if c.IsSet("addr") {
			return cli.Exit("--echo and --addr exclude each other", exitUsage)
		}
		addr, stop, err := bench.ServeEcho(ctx)
		if err != nil {
			return cli.Exit("echo server: "+err.Error(), exitRefused)
		}
		defer stop()
		cfg.Addr = addr
		fmt.Fprintf(c.App.ErrWriter, "echo server on %s\n", addr)
	}
	res, err := bench.Run(ctx, cfg)
	if errors.Is(err, bench.ErrConnect) {
		return cli.Exit(err.Error(), exitUnreachable)
	}
	if res.Hist == nil { // a configuration error: nothing was run
		if err != nil {
			return cli.Exit(err.Error(), exitUsage)
		}
	}
	fmt.Fprint(c.App.Writer, res.String())
	// Only a tock (the line protocol) keeps what a run wrote; redis and
	// beanstalkd targets are someone else's to clean.
	if !c.Bool("keep") && !c.Bool("echo") && cfg.Op != "get" && cfg.Protocol == "line" {
		if cerr := benchCleanup(c, cfg); err == nil {
			err = cerr
		}
	}
	switch {
	case err != nil:
		return cli.Exit(err.Error(), exitRefused)
	case res.Errors > 0:
		return cli.Exit(fmt.Sprintf("%d of %d requests failed", res.Errors, res.Requests), exitRefused)
	}
	return nil
}

// benchPrefix is --prefix, or one of this run's own, so that a run never
// touches jobs it did not write.
func benchPrefix(c *cli.Context) string {
	if p := c.String("prefix"); p != "" {
		return p
	}
	return "tock-bench." + strconv.FormatInt(time.Now().UnixNano(), 36) + "."
}

// benchCleanup removes what the run wrote, even after an interrupt, within
// a bound of its own.
func benchCleanup(c *cli.Context, cfg bench.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), benchCleanupTimeout)
	defer cancel()
	n, err := bench.Cleanup(ctx, cfg)
	fmt.Fprintf(c.App.ErrWriter, "removed %d jobs under %s (--keep keeps them)\n", n, cfg.Prefix)
	if err != nil {
		return fmt.Errorf("removing the benchmark's jobs: %w", err)
	}
	return nil
}

// benchCleanupTimeout bounds the removal of a run's jobs.
const benchCleanupTimeout = 5 * time.Minute
