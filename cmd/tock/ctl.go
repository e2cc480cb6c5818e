package main

import (
	"fmt"
	"github.com/tockd/tock/ipc"
	"net/http"
	"strconv"
	"strings"

	"github.com/tockd/tock/master"
	"github.com/urfave/cli/v2"
)

// ctlCommand is `tock ctl` (docs/operations.md): a client of the control socket.
func ctlCommand() *cli.Command {
	return &cli.Command{
		Name:      "ctl",
		Usage:     "control a running tock through its control socket",
		ArgsUsage: "CMD",
		Description: "Finds the control socket from --control, else $TOCK_CONTROL, else " + defaultControl + ".\n" +
			"Exit codes: 0 ok, 1 the server said no, 2 usage error, 3 cannot reach the server.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "control", EnvVars: []string{"TOCK_CONTROL"},
				Usage: "control socket: unix:///path/control.sock or tcp://host:port (default " + defaultControl + ")"},
			&cli.StringFlag{Name: "token", EnvVars: []string{"TOCK_CONTROL_TOKEN"}, Usage: "control token (control.token)"},
			jsonFlag(),
		},
		OnUsageError: ctlUsageError,
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return cli.Exit(fmt.Sprintf("usage: unknown ctl command %q (see tock ctl --help)", c.Args().First()), exitUsage)
			}
			return cli.Exit("usage: tock ctl [--control ADDR] [--token T] [--json] CMD (see tock ctl --help)", exitUsage)
		},
		Subcommands: []*cli.Command{
			ctlSub("stats", "print the stats tree (a summary, or the JSON with --json)", nil, ctlStats),
			ctlSub("status", "print one line per worker", nil, ctlStatus),
			ctlSub("hosts", "list the cluster's hosts and their shards (persistence = \"jetstream\")", nil, ctlHosts),
			ctlSub("phased-restart", "replace the workers one by one with the binary on disk",
				[]cli.Flag{
					&cli.BoolFlag{Name: "wait", Usage: "show progress and return when the rollout is done (non-zero if it aborted)"},
					&cli.DurationFlag{Name: "timeout", Value: defaultWaitTimeout, Usage: "give up waiting after this long (with --wait)"},
				}, ctlPhasedRestart),
			ctlSub("restart", "re-execute the master, keeping its listening socket", nil, ctlAction(http.MethodPost, "/restart")),
			ctlSub("stop", "stop gracefully: answer in-flight requests, drain executions, exit", nil, ctlAction(http.MethodPost, "/stop")),
			ctlSub("halt", "exit at once", nil, ctlAction(http.MethodPost, "/halt")),
			ctlWorkersCommand(),
			ctlSub("compact", "compact every shard now", nil, ctlAction(http.MethodPost, "/compact")),
			ctlSub("gc-stats", "print Go memory and GC figures of every process", nil, ctlGet("/gc-stats")),
			ctlSub("backtraces", "print goroutine dumps of every process", nil, ctlBacktraces),
			ctlSub("top", "live view of the cluster (q or Ctrl-C quits)",
				[]cli.Flag{&cli.DurationFlag{Name: "interval", Value: defaultTopInterval, Usage: "refresh period"}}, ctlTop),
		},
	}
}

func jsonFlag() cli.Flag { return &cli.BoolFlag{Name: "json", Usage: "print JSON"} }

// wantJSON reports --json given to the subcommand or to ctl: each context
// in the lineage answers from its own flag set first.
func wantJSON(c *cli.Context) bool {
	for _, cc := range c.Lineage() {
		if cc.Command != nil && cc.Bool("json") {
			return true
		}
	}
	return false
}

func ctlUsageError(_ *cli.Context, err error, _ bool) error {
	return cli.Exit("usage: "+err.Error(), exitUsage)
}

// ctlSub is a subcommand taking no arguments; run gets a ready client.
func ctlSub(name, usage string, flags []cli.Flag, run func(c *cli.Context, cl *ctlClient) error) *cli.Command {
	return &cli.Command{
		Name: name, Usage: usage, ArgsUsage: " ",
		Flags:        append([]cli.Flag{jsonFlag()}, flags...),
		OnUsageError: ctlUsageError,
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return cli.Exit(fmt.Sprintf("usage: ctl %s takes no arguments, got %q", name, c.Args().First()), exitUsage)
			}
			cl, err := newCtlClient(c)
			if err != nil {
				return err
			}
			return ctlExit(run(c, cl))
		},
	}
}

// ctlAction posts to path and prints "ok" (or the reply with --json).
func ctlAction(method, path string) func(c *cli.Context, cl *ctlClient) error {
	return func(c *cli.Context, cl *ctlClient) error {
		b, err := cl.send(method, path, nil)
		if err != nil {
			return err
		}
		if wantJSON(c) {
			return printJSON(b)
		}
		fmt.Println("ok")
		return nil
	}
}

func ctlGet(path string) func(c *cli.Context, cl *ctlClient) error {
	return func(_ *cli.Context, cl *ctlClient) error {
		b, err := cl.get(path, nil)
		if err != nil {
			return err
		}
		return printJSON(b)
	}
}

func ctlBacktraces(c *cli.Context, cl *ctlClient) error {
	var bt struct {
		Master  ipc.Backtraces            `json:"master"`
		Workers []master.WorkerCallResult `json:"workers"`
	}
	b, err := cl.get("/backtraces", &bt)
	if err != nil {
		return err
	}
	if wantJSON(c) {
		return printJSON(b)
	}
	fmt.Printf("=== master (pid %d)\n%s\n", bt.Master.PID, bt.Master.Goroutines)
	for _, w := range bt.Workers {
		var r ipc.Backtraces
		if w.Error != "" {
			fmt.Printf("=== worker %d (pid %d): %s\n\n", w.Index, w.PID, w.Error)
			continue
		}
		if err := jsonUnmarshal(w.Result, &r); err != nil {
			return err
		}
		fmt.Printf("=== worker %d (pid %d)\n%s\n", w.Index, w.PID, r.Goroutines)
	}
	return nil
}

// ctlWorkersCommand is `ctl workers +1|-1|N`. Flag parsing is off so that
// "-1" is an argument, not a flag; --json is picked out by hand.
func ctlWorkersCommand() *cli.Command {
	return &cli.Command{
		Name: "workers", Usage: "add (+N), remove (-N) or set (N) worker processes", ArgsUsage: "+1|-1|N",
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			var pos []string
			asJSON := wantJSON(c)
			for _, a := range c.Args().Slice() {
				switch a {
				case "--json", "-json":
					asJSON = true
				case "--":
				case "-h", "--help", "-help":
					return cli.ShowSubcommandHelp(c)
				default:
					pos = append(pos, a)
				}
			}
			if len(pos) != 1 {
				return cli.Exit("usage: tock ctl workers +1|-1|N", exitUsage)
			}
			body, err := parseWorkersArg(pos[0])
			if err != nil {
				return err
			}
			cl, err := newCtlClient(c)
			if err != nil {
				return err
			}
			b, err := cl.send(http.MethodPost, "/workers", body)
			if err != nil {
				return ctlExit(err)
			}
			if asJSON {
				return printJSON(b)
			}
			fmt.Println("ok")
			return nil
		},
	}
}

// parseWorkersArg reads "+N"/"-N" as a delta and "N" as a count.
func parseWorkersArg(a string) (map[string]int, error) {
	n, err := strconv.Atoi(a)
	switch {
	case err != nil:
		return nil, cli.Exit(fmt.Sprintf("usage: ctl workers: %q is not +N, -N or N", a), exitUsage)
	case strings.HasPrefix(a, "+") || strings.HasPrefix(a, "-"):
		if n == 0 {
			return nil, cli.Exit("usage: ctl workers: a delta must not be 0", exitUsage)
		}
		return map[string]int{"delta": n}, nil
	case n < 1:
		return nil, cli.Exit("usage: ctl workers: a cluster needs at least one worker", exitUsage)
	default:
		return map[string]int{"count": n}, nil
	}
}
