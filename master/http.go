package master

import (
	"context"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
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
	m.http = httpapi.NewServer(ln, m.httpMux, m.log.Named("http"), "/healthz")
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
// /healthz stays open for probes; the others ask for a token when
// http.monitoring_auth says so.
func (m *Master) registerMonitoring(mux *httpapi.Mux) {
	guard := m.monitoringGuard()
	mux.Handle(http.MethodGet, "/healthz", m.serveHealthz)
	mux.Handle(http.MethodGet, "/stats", guard(m.serveStats))
	mux.Handle(http.MethodGet, "/varz", guard(m.serveVarz))
	mux.Handle(http.MethodGet, "/connz", guard(m.serveConnz))
	m.metricsHandler = m.newMetricsHandler()
	mux.Handle(http.MethodGet, "/metrics", guard(m.serveMetrics))
	mux.Handle(http.MethodGet, "/", guard(m.servePage))
	mux.Handle(http.MethodGet, "/ui/{file}", guard(m.servePageFile))
	if m.cfg.HTTP.Pprof {
		mux.Handle(http.MethodGet, "/debug/pprof/{name...}", guard(servePprof))
		mux.Handle(http.MethodGet, "/debug/pprof/symbol", guard(servePprof))
		mux.Handle(http.MethodPost, "/debug/pprof/symbol", guard(servePprof))
	}
}

// monitoringGuard wraps a monitoring handler with the token check when
// http.monitoring_auth asks for one: "Authorization: Bearer <secret>" of
// any token of the auth file (secrets compared in constant time).
func (m *Master) monitoringGuard() func(httpapi.HandlerFunc) httpapi.HandlerFunc {
	if !m.cfg.MonitoringNeedsToken() {
		return func(h httpapi.HandlerFunc) httpapi.HandlerFunc { return h }
	}
	return func(h httpapi.HandlerFunc) httpapi.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) error {
			secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || secret == "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="tock"`)
				return httpapi.Errorf(http.StatusUnauthorized, "monitoring needs a token: Authorization: Bearer <secret>")
			}
			if !m.AuthEnabled() {
				return httpapi.Errorf(http.StatusForbidden, "no auth file loaded")
			}
			if _, _, ok := m.Authenticate(secret); !ok {
				return httpapi.Errorf(http.StatusForbidden, "invalid token")
			}
			return h(w, r)
		}
	}
}

// servePprof serves net/http/pprof under /debug/pprof/ ([http] pprof).
func servePprof(w http.ResponseWriter, r *http.Request) error {
	switch strings.TrimPrefix(r.URL.Path, "/debug/pprof/") {
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		pprof.Index(w, r)
	}
	return nil
}

// Authenticate checks an HTTP bearer secret against the auth file's tokens
// (constant time): the token's name and namespace, ok false for an unknown
// secret. With auth off it reports ok with namespace "*". For route groups
// on the HTTP listener (the REST API).
func (m *Master) Authenticate(secret string) (name, namespace string, ok bool) {
	ts := m.auth.Load()
	if ts == nil {
		return "", "*", true
	}
	id, err := ts.authenticate(secret)
	if err != nil {
		return "", "", false
	}
	return id.name, id.namespace, true
}

// AuthEnabled reports whether an auth file is loaded.
func (m *Master) AuthEnabled() bool { return m.auth.Load() != nil }
