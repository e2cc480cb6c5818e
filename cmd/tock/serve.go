package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/hashicorp/go-hclog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/tockd/tock/config"
	"github.com/tockd/tock/httpapi"
	"github.com/tockd/tock/internal/systemd"
	"github.com/tockd/tock/master"
	"github.com/urfave/cli/v2"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:      "serve",
		Usage:     "run the master and its workers in the foreground",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "TOML config file"},
			&cli.IntFlag{Name: "workers", Usage: "worker processes (default: CPUs, at least 2)"},
			&cli.StringFlag{Name: "listen", Usage: "client listener address (default 127.0.0.1:5678)"},
			&cli.StringFlag{Name: "http", Usage: "HTTP REST/monitoring address; empty turns it off (default 127.0.0.1:5680)"},
			&cli.StringFlag{Name: "data-dir", Usage: "data directory (default ./tock-data)"},
			&cli.BoolFlag{Name: "memory", Usage: "keep nothing on disk (persistence = memory)"},
		},
		Action: runServe,
	}
}

// loadConfig reads the file (if any), applies the flags over it and
// validates the result.
func loadConfig(c *cli.Context) (config.Config, error) {
	cfg := config.Default()
	if path := c.String("config"); path != "" {
		var err error
		if cfg, err = config.Load(path); err != nil {
			return cfg, err
		}
		if err := cfg.CheckShellPath(); err != nil {
			return cfg, err
		}
	}
	if c.IsSet("workers") {
		cfg.Cluster.Workers = c.Int("workers")
	}
	if c.IsSet("listen") {
		cfg.Controller.Listen = c.String("listen")
	}
	if c.IsSet("http") {
		v := c.String("http")
		cfg.HTTP.Listen = &v
	}
	if c.IsSet("data-dir") {
		cfg.Database.DataDir = c.String("data-dir")
	}
	if c.Bool("memory") {
		cfg.Database.Persistence = config.PersistenceMemory
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func runServe(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return cli.Exit(fmt.Sprintf("serve takes no arguments, got %q", c.Args().First()), exitUsage)
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return cli.Exit("config: "+err.Error(), exitUsage)
	}
	out := &reopenable{path: cfg.Log.File}
	if err := out.Reopen(); err != nil {
		return cli.Exit(err.Error(), exitRefused)
	}
	log := newLogger("tock", cfg.Log.Level, cfg.Log.Format, out)
	exe, err := os.Executable()
	if err != nil {
		return cli.Exit(fmt.Sprintf("find own binary: %v", err), exitRefused)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return cli.Exit(fmt.Sprintf("find own binary: %v", err), exitRefused)
	}
	master.Version = version
	opts, err := serveOptions(log)
	if err != nil {
		return cli.Exit(err.Error(), exitRefused)
	}
	opts.Exe, opts.WorkerArgs = exe, []string{"--log-level", cfg.Log.Level}
	opts.HTTPRoutes = []master.HTTPRoutes{master.RESTRoutes}
	m, err := master.New(cfg, opts, log)
	if err != nil {
		return cli.Exit(err.Error(), exitRefused)
	}
	stopProfile := startProfile()
	defer stopProfile()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, servedSignals...)
	// A log pipe whose reader is gone (`tock serve 2>&1 | tee tock.log`,
	// where Ctrl-C ends tee too) must not kill the master halfway through
	// its stop: with SIGPIPE caught, a write to it fails instead and the
	// stop goes on. Caught rather than ignored, so that the processes the
	// runners start get the default disposition.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	go func() {
		for {
			select {
			case sig := <-sigs:
				handleSignal(m, sig, out, log)
			case <-m.Done():
				return
			}
		}
	}()
	switch err := m.Run(ctx); {
	case errors.Is(err, master.ErrRestart):
		return reexec(m, exe, log)
	case errors.Is(err, master.ErrHalted):
		return nil
	case err != nil:
		log.Error("tock failed", "error", err)
		return cli.Exit("", exitRefused)
	}
	return nil
}

// reexec replaces this process with a new master from the binary on disk
// that inherits the listening sockets (client, and HTTP when on).
func reexec(m *master.Master, exe string, log hclog.Logger) error {
	f, err := m.ListenerFile()
	if err != nil {
		log.Error("restart failed", "error", err)
		return cli.Exit("", exitRefused)
	}
	env := append(os.Environ(), fmt.Sprintf("%s=%d", master.EnvListenFD, f.Fd()))
	if hf := m.HTTPListenerFile(); hf != nil {
		env = append(env, fmt.Sprintf("%s=%d", master.EnvHTTPListenFD, hf.Fd()))
	}
	cf, err := m.ControlListenerFile()
	if err != nil {
		log.Error("restart failed", "error", err)
		return cli.Exit("", exitRefused)
	}
	if cf != nil {
		env = append(env, fmt.Sprintf("%s=%d", master.EnvControlFD, cf.Fd()))
	}
	log.Info("re-executing the master", "binary", exe)
	err = syscall.Exec(exe, os.Args, env)
	log.Error("restart failed", "error", err)
	return cli.Exit("", exitRefused)
}

// serveOptions collects what the master inherits: listeners from a
// restarting master (which win) or from systemd's socket activation, and
// systemd's notify socket and watchdog (docs/operations.md, "systemd").
func serveOptions(log hclog.Logger) (master.Options, error) {
	var opts master.Options
	sd, err := systemd.Listeners()
	if err != nil {
		return opts, err
	}
	one := func(name string) (net.Listener, error) {
		switch lns := sd[name]; len(lns) {
		case 0:
			return nil, nil
		case 1:
			log.Info("using a listener from systemd", "name", name, "addr", lns[0].Addr().String())
			return lns[0], nil
		default:
			return nil, fmt.Errorf("socket activation: %d listeners named %q, tock takes one", len(lns), name)
		}
	}
	if opts.Listener, err = master.InheritedListener(); err != nil {
		return opts, err
	}
	if opts.Listener == nil {
		if opts.Listener, err = one(systemd.NameClient); err != nil {
			return opts, err
		}
	}
	if opts.ControlListener, err = master.InheritedControlListener(); err != nil {
		return opts, err
	}
	if opts.ControlListener == nil {
		if opts.ControlListener, err = one(systemd.NameControl); err != nil {
			return opts, err
		}
	}
	if opts.HTTPListener, err = httpapi.InheritedListener(master.EnvHTTPListenFD); err != nil {
		return opts, err
	}
	if opts.HTTPListener == nil {
		if opts.HTTPListener, err = one(systemd.NameHTTP); err != nil {
			return opts, err
		}
	}
	if opts.Notifier, err = systemd.NewNotifier(); err != nil {
		return opts, err
	}
	if opts.WatchdogInterval, err = systemd.WatchdogInterval(); err != nil {
		return opts, err
	}
	return opts, nil
}
