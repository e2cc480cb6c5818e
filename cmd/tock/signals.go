package main

import (
	"os"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/master"
)

// servedSignals are the signals `tock serve` acts on, each documented in
// docs/operations.md (a test checks).
var servedSignals = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTTIN, syscall.SIGTTOU}

// handleSignal maps one signal to one master action (docs/operations.md).
func handleSignal(m *master.Master, sig os.Signal, out *reopenable, log hclog.Logger) {
	log.Info("signal received", "signal", sig.String())
	var err error
	switch sig {
	case syscall.SIGTERM, syscall.SIGINT:
		m.Stop()
	case syscall.SIGQUIT:
		m.Halt()
	case syscall.SIGUSR1:
		err = m.PhasedRestart()
	case syscall.SIGUSR2:
		err = m.Restart()
	case syscall.SIGTTIN:
		err = m.ScaleBy(1)
	case syscall.SIGTTOU:
		err = m.ScaleBy(-1)
	case syscall.SIGHUP:
		err = out.Reopen()
		if err == nil {
			log.Info("log file reopened")
			err = m.Reload()
		}
	}
	if err != nil {
		log.Error("signal not handled", "signal", sig.String(), "error", err)
	}
}
