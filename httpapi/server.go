package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// Limits of the HTTP listener. The write timeout is per request and
// generous (a 10 MB /connz needs under 200 kB/s): without one, clients
// that ask for large replies and never read them would hold every request
// slot for good.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 30 * time.Second
	IdleTimeout       = 2 * time.Minute
	MaxHeaderBytes    = 1 << 20
	// MaxConcurrent bounds requests being served at once; beyond it a
	// request is answered 503 at once instead of queueing without bound.
	MaxConcurrent = 128
	// MaxConns bounds open HTTP connections (idle keep-alive ones
	// included); more wait in the backlog. It keeps the master's file
	// descriptors for clients of the line protocol and for its workers.
	MaxConns     = 1024
	WriteTimeout = time.Minute
)

// writeTimeout is WriteTimeout in ns; tests shorten it.
var writeTimeout atomic.Int64

func init() { writeTimeout.Store(int64(WriteTimeout)) }

// Server is the HTTP listener: a net/http server with tock's limits over a
// listener that may be inherited across a master restart.
type Server struct {
	ln     net.Listener
	srv    *http.Server
	log    hclog.Logger
	served bool // Serve was called
	done   chan struct{}
}

// Listen binds addr; a busy port is an error naming the address.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http listen on %s: %w", addr, err)
	}
	return ln, nil
}

// NewServer prepares h on ln; Serve starts it. Requests for the paths in
// unbounded (probes with tiny replies, such as /healthz) are served even
// when MaxConcurrent requests are in progress: a liveness probe must not
// fail because other clients are slow.
func NewServer(ln net.Listener, h http.Handler, log hclog.Logger, unbounded ...string) *Server {
	s := &Server{ln: ln, log: log, done: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           limit(h, MaxConcurrent, unbounded),
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	return s
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves until Shutdown, in its own goroutine. Serve and Shutdown
// are called from one goroutine (the master's Run).
func (s *Server) Serve() {
	s.served = true
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(newLimitListener(s.ln, MaxConns)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "addr", s.ln.Addr().String(), "error", err)
		}
	}()
}

// Shutdown stops accepting, lets requests in flight finish until ctx is
// done, then closes what is left. The listening socket is closed: take
// File first to keep it for a restarted master.
func (s *Server) Shutdown(ctx context.Context) {
	if err := s.srv.Shutdown(ctx); err != nil {
		s.log.Warn("http server shutdown", "error", err)
		s.srv.Close()
	}
	if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		s.log.Warn("close http listener", "error", err)
	}
	if !s.served {
		return
	}
	select {
	case <-s.done:
	case <-ctx.Done():
	}
}

// File returns a duplicate of the listening socket without close-on-exec,
// for a re-executed master to inherit. Connections that arrive meanwhile
// wait in the socket's backlog.
func (s *Server) File() (*os.File, error) { return ListenerFile(s.ln) }

// ListenerFile duplicates a TCP listener's socket for exec.
func ListenerFile(ln net.Listener) (*os.File, error) {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil, errors.New("listener is not TCP")
	}
	f, err := tl.File()
	if err != nil {
		return nil, fmt.Errorf("dup listener: %w", err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_SETFD, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("clear close-on-exec: %w", err)
	}
	return f, nil
}

// InheritedListener rebuilds a listener from the fd named by the
// environment variable env (set by a restarting master), or returns nil
// when env is unset. The variable is cleared so workers do not see it.
func InheritedListener(env string) (net.Listener, error) {
	v := os.Getenv(env)
	if v == "" {
		return nil, nil
	}
	os.Unsetenv(env)
	var fd int
	if _, err := fmt.Sscanf(v, "%d", &fd); err != nil || fd < 3 {
		return nil, fmt.Errorf("bad %s=%q", env, v)
	}
	f := os.NewFile(uintptr(fd), env)
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("inherited listener %s: %w", env, err)
	}
	return ln, nil
}

// limit answers 503 when n requests are already being served (except on
// the unbounded paths), and gives each request writeTimeout to write its
// reply, so a client that stops reading frees its slot.
func limit(h http.Handler, n int, unbounded []string) http.Handler {
	sem := make(chan struct{}, n)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Not every ResponseWriter has a deadline (httptest's has not);
		// then there is no connection to hold either.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Duration(writeTimeout.Load())))
		if slices.Contains(unbounded, r.URL.Path) {
			h.ServeHTTP(w, r)
			return
		}
		select {
		case sem <- struct{}{}:
		default:
			w.Header().Set("Retry-After", "1")
			WriteError(w, Errorf(http.StatusServiceUnavailable, "busy: %d requests in progress", n))
			return
		}
		defer func() { <-sem }()
		h.ServeHTTP(w, r)
	})
}
