// Command tock is a push-driven, time-based job scheduler run as a
// supervised cluster of processes. This package only wires the command line
// to the master, worker, control and tool packages.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// Set at build time for releases: -ldflags "-X main.version=...
// -X main.commit=... -X main.commitTime=...". Without them the commit and
// its time come from the VCS stamp Go puts in the binary (vcsInfo).
var (
	version    = "0.1.0"
	commit     = ""
	commitTime = ""
)

// Exit codes (docs/operations.md).
const (
	exitOK          = 0
	exitRefused     = 1
	exitUsage       = 2
	exitUnreachable = 3
)

func main() {
	app := &cli.App{
		Name:                 "tock",
		Usage:                "a push-driven, time-based job scheduler run as a supervised cluster",
		Version:              version,
		HideVersion:          true,
		EnableBashCompletion: false,
		Commands: []*cli.Command{
			serveCommand(),
			ctlCommand(),
			dumpCommand(),
			workerCommand(),
			versionCommand(),
			benchCommand(),
		},
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return cli.Exit("usage: "+err.Error(), exitUsage)
		},
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(os.Stderr, "tock: unknown command %q (see tock --help)\n", name)
			os.Exit(exitUsage)
		},
	}
	if err := app.Run(os.Args); err != nil {
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			if msg := err.Error(); msg != "" {
				fmt.Fprintln(os.Stderr, "tock:", msg)
			}
			os.Exit(ec.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "tock:", err)
		os.Exit(exitRefused)
	}
}
