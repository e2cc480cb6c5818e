package master

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/tockd/tock/httpapi"
	"golang.org/x/sys/unix"
)

// EnvListenFD names the inherited fd of the client listener in a master
// started by a restart (SIGUSR2).
const EnvListenFD = "TOCK_LISTEN_FD"

// ErrRestart is returned by Run after a graceful stop asked for by Restart:
// the caller re-executes the binary with ListenerFile's fd inherited.
var ErrRestart = errors.New("restart requested")

// ErrHalted is returned by Run after Halt.
var ErrHalted = errors.New("halted")

// Halt stops at once: workers are killed, nothing is drained. Acknowledged
// writes are already durable, so nothing acknowledged is lost.
func (m *Master) Halt() {
	m.mu.Lock()
	m.stopping = true
	m.halted = true
	var all []*proc
	for _, s := range m.slots {
		if s.cur != nil {
			all = append(all, s.cur)
		}
		all = append(all, s.old...)
	}
	all = append(all, m.booting...)
	m.mu.Unlock()
	for _, p := range all {
		p.kill()
	}
	m.Stop()
}

// Restart stops the cluster gracefully but keeps the listening socket
// open, so Run's caller can re-execute the master on it: no connection is
// refused meanwhile; open ones are closed after their in-flight replies.
func (m *Master) Restart() error {
	m.mu.Lock()
	if m.stopping {
		m.mu.Unlock()
		return errors.New("stopping")
	}
	m.restarting = true
	m.mu.Unlock()
	m.Stop()
	return nil
}

// Reload re-reads what SIGHUP reloads besides the log file: the auth file.
// Open connections keep the identity they authenticated with; a bad file
// leaves the old tokens in force.
func (m *Master) Reload() error {
	path := m.cfg.Controller.AuthFile
	if path == "" {
		return nil
	}
	ts, err := loadAuthFile(path)
	if err != nil {
		return fmt.Errorf("reload auth file (old tokens stay in force): %w", err)
	}
	m.auth.Store(ts)
	m.log.Info("auth file reloaded", "tokens", len(ts.tokens))
	return nil
}

// ListenerFile returns a duplicate of the client listener's socket without
// close-on-exec, for a re-executed master to inherit.
func (m *Master) ListenerFile() (*os.File, error) { return httpapi.ListenerFile(m.listener) }

// clearCloexec makes f inherited by an exec.
func clearCloexec(f *os.File) (*os.File, error) {
	if _, err := unix.FcntlInt(f.Fd(), unix.F_SETFD, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("clear close-on-exec: %w", err)
	}
	return f, nil
}

// EnvControlFD passes the inherited control listener across a restart,
// as EnvListenFD passes the client listener.
const EnvControlFD = "TOCK_CONTROL_FD"

// InheritedControlListener returns the control listener passed by a
// restarting master, or nil when there is none.
func InheritedControlListener() (net.Listener, error) {
	return inheritedFD(EnvControlFD, "control listener")
}

// InheritedListener returns the listener passed by a restarting master, or
// nil when there is none.
func InheritedListener() (net.Listener, error) { return inheritedFD(EnvListenFD, "listener") }

// inheritedFD opens the listener whose fd the environment variable env
// names, and removes the variable (the same plumbing as the HTTP
// listener's).
func inheritedFD(env, what string) (net.Listener, error) {
	ln, err := httpapi.InheritedListener(env)
	if err != nil {
		return nil, fmt.Errorf("inherited %s: %w", what, err)
	}
	return ln, nil
}
