package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/worker"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func workerCommand() *cli.Command {
	return &cli.Command{
		Name:   "worker",
		Hidden: true,
		Usage:  "run one worker (started by the master, not by hand)",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "index"},
			&cli.IntFlag{Name: "phase"},
			&cli.StringFlag{Name: "log-level", Value: "info"},
		},
		Action: runWorker,
	}
}

func runWorker(c *cli.Context) error {
	if os.Getenv(ipc.EnvWorker) == "" {
		return cli.Exit("tock worker is started by the master; run `tock serve` instead", exitUsage)
	}
	// Belt and braces with link EOF: die with the master.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return cli.Exit(fmt.Sprintf("prctl: %v", err), exitRefused)
	}
	index := c.Int("index")
	// Workers log hclog JSON on stderr; the master re-emits each record.
	log := hclog.New(&hclog.LoggerOptions{
		Name: "worker", Level: hclog.LevelFromString(c.String("log-level")),
		Output: os.Stderr, JSONFormat: true,
	}).With("worker", index)
	worker.Version = version
	link, err := ipc.FileLink(os.NewFile(ipc.WorkerFD, "ipc"))
	if err != nil {
		return cli.Exit(fmt.Sprintf("no ipc link on fd %d: %v", ipc.WorkerFD, err), exitUsage)
	}
	stopProfile := startProfile()
	defer stopProfile()
	if err := worker.Run(link, index, c.Int("phase"), log); err != nil {
		log.Error("worker stopped", "error", err)
		return cli.Exit("", exitRefused)
	}
	return nil
}
