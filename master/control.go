package master

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ControlSocket is the control socket's file name inside the data dir.
const ControlSocket = "control.sock"

// Control server limits.
const (
	controlMaxBody          = 1 << 20 // bytes of a request body
	controlReadHeaderTime   = 5 * time.Second
	controlReadTimeout      = 10 * time.Second
	controlWriteTimeout     = 30 * time.Second
	controlIdleTimeout      = 2 * time.Minute
	controlShutdownTimeout  = 5 * time.Second
	controlWorkerCallWait   = 5 * time.Second
	controlLiveCheckTimeout = time.Second
)

// ControlServer is the master's control endpoint (docs/operations.md): HTTP/1.1 on
// <data_dir>/control.sock, and on control.url when configured. Every
// request carries control.token when one is set.
type ControlServer struct {
	m      *Master
	log    hclog.Logger
	token  string
	path   string // the Unix socket file
	srv    *http.Server
	wg     sync.WaitGroup
	closed sync.Once

	listeners []net.Listener // control.sock, then control.url's
	// inheritedFile holds the inherited Unix listener's socket open for a
	// hot restart; nil when control.sock was made here.
	inheritedFile *os.File
}

// claimControl claims control.sock (refusing when another tock serves it)
// and opens control.url when configured, without serving yet. Run may call
// it before anything else touches the data dir; startControl claims too if
// it has not been done.
func (m *Master) claimControl() error {
	if m.control != nil {
		return nil
	}
	cs := &ControlServer{
		m: m, log: m.log.Named("control"), token: m.cfg.Control.Token,
		path: filepath.Join(m.cfg.Database.DataDir, ControlSocket),
	}
	cs.srv = &http.Server{
		Handler:           cs,
		ReadHeaderTimeout: controlReadHeaderTime,
		ReadTimeout:       controlReadTimeout,
		WriteTimeout:      controlWriteTimeout,
		IdleTimeout:       controlIdleTimeout,
		ErrorLog:          cs.log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	if err := cs.claimListeners(m.opts.ControlListener); err != nil {
		return err
	}
	if u := m.cfg.Control.URL; u != "" {
		hostport, ok := strings.CutPrefix(u, "tcp://")
		if !ok {
			cs.close(true)
			return fmt.Errorf("control.url %q must be tcp://host:port", u)
		}
		tcpLn, err := net.Listen("tcp", hostport)
		if err != nil {
			cs.close(true)
			return fmt.Errorf("listen on control.url %s: %w", u, err)
		}
		cs.listeners = append(cs.listeners, tcpLn)
	}
	m.control = cs
	return nil
}

// claimListeners sets up the Unix control listener: inherited (from
// systemd or a restarting master), or control.sock created here. An
// inherited TCP listener is served as well as the socket.
func (cs *ControlServer) claimListeners(inherited net.Listener) error {
	if ul, ok := inherited.(*net.UnixListener); ok {
		// The file is the service manager's: never removed here, and kept
		// open across a hot restart (ControlListenerFile).
		ul.SetUnlinkOnClose(false)
		f, err := ul.File()
		if err != nil {
			return fmt.Errorf("inherited control listener: %w", err)
		}
		cs.inheritedFile, cs.path = f, ""
		cs.listeners = []net.Listener{&peerCheckListener{UnixListener: ul, uid: os.Getuid(), log: cs.log}}
		return nil
	}
	unixLn, err := cs.listenUnix()
	if err != nil {
		return err
	}
	cs.listeners = []net.Listener{unixLn}
	if inherited != nil {
		cs.listeners = append(cs.listeners, inherited)
	}
	return nil
}

// ControlListenerFile returns the inherited Unix control listener's socket
// without close-on-exec, for a re-executed master to inherit, or nil when
// the master made control.sock itself.
func (m *Master) ControlListenerFile() (*os.File, error) {
	cs := m.control
	if cs == nil || cs.inheritedFile == nil {
		m.mu.Lock()
		f := m.controlFile
		m.mu.Unlock()
		if f == nil {
			return nil, nil
		}
		return clearCloexec(f)
	}
	return clearCloexec(cs.inheritedFile)
}

// startControl serves the control API on the claimed listeners until
// stopControl.
func (m *Master) startControl() error {
	if err := m.claimControl(); err != nil {
		return err
	}
	cs := m.control
	for _, ln := range cs.listeners {
		cs.wg.Add(1)
		go cs.serve(ln)
		cs.log.Info("control server listening", "addr", ln.Addr().String(), "token", cs.token != "")
	}
	return nil
}

// stopControl stops the control server, letting requests in flight finish.
// The socket file is removed on a real stop only: on a restart the next
// master claims it again.
func (m *Master) stopControl() {
	cs := m.control
	if cs == nil {
		return
	}
	m.control = nil
	m.mu.Lock()
	restarting := m.restarting
	if cs.inheritedFile != nil {
		m.controlFile = cs.inheritedFile // for ControlListenerFile
	}
	m.mu.Unlock()
	cs.close(!restarting && cs.path != "")
}

func (cs *ControlServer) serve(ln net.Listener) {
	defer cs.wg.Done()
	if err := cs.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		cs.log.Error("control server stopped", "addr", ln.Addr().String(), "error", err)
	}
}

func (cs *ControlServer) close(unlink bool) {
	cs.closed.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), controlShutdownTimeout)
		defer cancel()
		if err := cs.srv.Shutdown(ctx); err != nil {
			cs.log.Warn("control server shutdown", "error", err)
			cs.srv.Close()
		}
		// Listeners that were claimed but never served are closed here.
		for _, ln := range cs.listeners {
			if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				cs.log.Warn("close control listener", "addr", ln.Addr().String(), "error", err)
			}
		}
		cs.wg.Wait()
		if unlink {
			if err := os.Remove(cs.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				cs.log.Warn("remove control socket", "path", cs.path, "error", err)
			}
		}
	})
}

// listenUnix claims the socket file safely: a live server on it means
// another tock runs on this data dir; a stale file is removed. The socket
// is then made private (0600) and every connection's peer uid is checked.
func (cs *ControlServer) listenUnix() (net.Listener, error) {
	dir := filepath.Dir(cs.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir for the control socket: %w", err)
	}
	if err := claimSocket(cs.path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: cs.path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on control socket %s: %w", cs.path, err)
	}
	// Unlinked by stopControl on a real stop only, never by Close.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(cs.path, 0o600); err != nil {
		ln.Close()
		os.Remove(cs.path)
		return nil, fmt.Errorf("make control socket private: %w", err)
	}
	return &peerCheckListener{UnixListener: ln, uid: os.Getuid(), log: cs.log}, nil
}

// claimSocket makes path free for a new listener: it refuses when a server
// answers there and removes a stale socket file.
func claimSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check control socket: %w", err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket; remove it", path)
	}
	if c, err := net.DialTimeout("unix", path, controlLiveCheckTimeout); err == nil {
		c.Close()
		return fmt.Errorf("another tock is running on %s", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale control socket: %w", err)
	}
	return nil
}

// ServeHTTP checks the token, finds the route, checks the method and runs
// the handler; a handler's error becomes the JSON error reply.
func (cs *ControlServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := cs.authorize(r); err != nil {
		writeControlError(w, cs.log, err)
		return
	}
	rt, ok := controlRoutes[r.URL.Path]
	if !ok {
		writeControlError(w, cs.log, &controlError{status: http.StatusNotFound, msg: "no such endpoint " + r.URL.Path})
		return
	}
	if !slices.Contains(rt.methods, r.Method) {
		w.Header().Set("Allow", strings.Join(rt.methods, ", "))
		writeControlError(w, cs.log, &controlError{status: http.StatusMethodNotAllowed,
			msg: r.URL.Path + " takes " + strings.Join(rt.methods, " or ") + ", not " + r.Method})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, controlMaxBody)
	if err := rt.handle(cs, w, r); err != nil {
		writeControlError(w, cs.log, err)
	}
}

// authorize checks that r carries the token when one is set:
// "Authorization: Bearer T" or "?token=T", compared in constant time. No
// token is errUnauthorized (401), a wrong one errForbidden (403), as Puma
// answers. A request over TCP is refused when no token is configured
// (config validation already requires one with control.url; this holds
// for any TCP listener, inherited ones too).
func (cs *ControlServer) authorize(r *http.Request) error {
	if cs.token == "" {
		if overTCP(r) {
			return errNoTCPToken
		}
		return nil
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		got = r.URL.Query().Get("token")
	}
	if got == "" {
		return errUnauthorized
	}
	if subtle.ConstantTimeCompare(secretDigest(got), secretDigest(cs.token)) != 1 {
		return errForbidden
	}
	return nil
}

// overTCP reports whether r came in on a TCP listener.
func overTCP(r *http.Request) bool {
	addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return ok && strings.HasPrefix(addr.Network(), "tcp")
}
