package main

import (
	"fmt"
	"runtime"

	"github.com/urfave/cli/v2"
)

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, Go version and commit",
		Action: func(c *cli.Context) error {
			fmt.Fprintf(c.App.Writer, "tock %s (%s, commit %s)\n", version, runtime.Version(), commit)
			return nil
		},
	}
}
