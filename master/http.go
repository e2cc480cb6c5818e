package master

import (
	"context"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/tockd/tock/httpapi"
)

// EnvHTTPListenFD names the inherited fd of the HTTP listener in a master
// started by a restart (SIGUSR2), next to EnvListenFD.
const EnvHTTPListenFD = "TOCK_HTTP_LISTEN_FD"

// httpShutdownTimeout bounds how long requests in flight may finish when
// the master stops.
const httpShutdownTimeout = 5 * time.Second

// HTTPRoutes adds a route group (the REST API) to the master's HTTP
// listener; it runs once, in New, after the monitoring routes.
type HTTPRoutes func(m *Master, mux *httpapi.Mux)

// newHTTPMux builds the HTTP listener's routes: monitoring, then every
// group of Options.HTTPRoutes.
func (m *Master) newHTTPMux() *httpapi.Mux {
	mux := httpapi.NewMux()
	m.registerMonitoring(mux)
	for _, add := range m.opts.HTTPRoutes {
		add(m, mux)
	}
	return mux
}

// HTTPMux is the HTTP listener's route table (it exists even when the
// listener is off, so tests can serve it in-process).
func (m *Master) HTTPMux() *httpapi.Mux { return m.httpMux }

// listenHTTP binds [http] listen, or takes the listener inherited across
// a restart. An empty address turns HTTP off (an inherited socket is then
// closed).
func (m *Master) listenHTTP() error {
	addr := m.cfg.HTTPListen()
	ln := m.opts.HTTPListener
	if addr == "" {
		if ln != nil {
			ln.Close()
		}
		return nil
	}
	if ln == nil {
		var err error
		if ln, err = httpapi.Listen(addr); err != nil {
			return err
		}
	}
	m.http = httpapi.NewServer(ln, m.httpMux, m.log.Named("http"))
	return nil
}

// startHTTP serves the HTTP listener (when on).
func (m *Master) startHTTP() {
	if m.http == nil {
		return
	}
	m.http.Serve()
	m.log.Info("http server listening", "addr", m.http.Addr().String())
}

// stopHTTP stops the HTTP server, letting requests in flight finish. On a
// restart the socket is duplicated first (HTTPListenerFile), so
// connections arriving meanwhile wait in its backlog for the next master.
func (m *Master) stopHTTP(keepListener bool) {
	if m.http == nil {
		return
	}
	if keepListener {
		f, err := m.http.File()
		if err != nil {
			m.log.Error("keep the http listener for the restart", "error", err)
		}
		m.httpFile = f
	}
	ctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
	defer cancel()
	m.http.Shutdown(ctx)
}

// HTTPAddr is the HTTP listener's address, nil when HTTP is off.
func (m *Master) HTTPAddr() net.Addr {
	if m.http == nil {
		return nil
	}
	return m.http.Addr()
}

// httpAddrString is HTTPAddr for logs: "off" when HTTP is off.
func (m *Master) httpAddrString() string {
	if a := m.HTTPAddr(); a != nil {
		return a.String()
	}
	return "off"
}

// HTTPListenerFile is the HTTP socket kept by a restart for the next
// master to inherit (EnvHTTPListenFD); nil when HTTP is off.
func (m *Master) HTTPListenerFile() *os.File { return m.httpFile }

// registerMonitoring adds the monitoring endpoints (docs/monitoring.md).
func (m *Master) registerMonitoring(mux *httpapi.Mux) {
	mux.Handle(http.MethodGet, "/stats", m.serveStats)
	mux.Handle(http.MethodGet, "/healthz", m.serveHealthz)
}
