package rest

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/httpapi"
)

// Server is the REST API over a Backend.
type Server struct {
	b   Backend
	log hclog.Logger
}

// New returns the API over b. log may be nil.
func New(b Backend, log hclog.Logger) *Server {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Server{b: b, log: log}
}

// handler is an API handler: the request's identity is checked first.
type handler func(w http.ResponseWriter, r *http.Request, who Identity)

// Register adds the API's routes to the HTTP listener's route table. An
// item route takes the whole remainder of the path ({id...}) and the
// handler re-reads the id from the escaped path, so an id holding "/" (as
// %2F) is one id. The table answers 405 (with Allow) and 404 itself.
func (s *Server) Register(mux *httpapi.Mux) {
	mux.Handle(http.MethodGet, "/health", s.health)
	mux.Handle(http.MethodGet, "/openapi.json", s.openapi)
	mux.Handle(http.MethodGet, "/jobs", s.authed(s.listJobs))
	mux.Handle(http.MethodGet, "/jobs/{id...}", s.authed(s.item("/jobs", s.getJob)))
	mux.Handle(http.MethodPut, "/jobs/{id...}", s.authed(s.item("/jobs", s.putJob)))
	mux.Handle(http.MethodDelete, "/jobs/{id...}", s.authed(s.item("/jobs", s.deleteJob)))
	mux.Handle(http.MethodGet, "/rules", s.authed(s.listRules))
	mux.Handle(http.MethodGet, "/rules/{id...}", s.authed(s.item("/rules", s.getRule)))
	mux.Handle(http.MethodPut, "/rules/{id...}", s.authed(s.item("/rules", s.putRule)))
	mux.Handle(http.MethodDelete, "/rules/{id...}", s.authed(s.item("/rules", s.deleteRule)))
}

// Handler serves the API's routes alone (tests, and embedding).
func (s *Server) Handler() http.Handler {
	mux := httpapi.NewMux()
	s.Register(mux)
	return mux
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) error {
	httpapi.WriteBody(w, http.StatusOK, "application/json", OpenAPI)
	return nil
}

// authed checks the bearer token, then serves h with the token's identity.
func (s *Server) authed(h handler) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		who, err := s.authenticate(r)
		if err != nil {
			writeError(w, err)
			return nil
		}
		h(w, r, who)
		return nil
	}
}

// itemHandler serves one resource of a collection, by id.
type itemHandler func(w http.ResponseWriter, r *http.Request, who Identity, id string)

// item decodes the id of /jobs/{id} or /rules/{id} and checks it is in the
// namespace (403 otherwise) before h runs.
func (s *Server) item(collection string, h itemHandler) handler {
	return func(w http.ResponseWriter, r *http.Request, who Identity) {
		raw, ok := strings.CutPrefix(r.URL.EscapedPath(), collection+"/")
		if !ok {
			writeError(w, ErrNotFound)
			return
		}
		id, err := DecodeID(raw)
		if err != nil {
			writeError(w, err)
			return
		}
		if !who.Allows(id) {
			writeError(w, errForbidden)
			return
		}
		h(w, r, who, id)
	}
}

var (
	errUnauthorized = errorf(http.StatusUnauthorized, "unauthorized")
	errForbidden    = errorf(http.StatusForbidden, "forbidden")
	errCrossOrigin  = errorf(http.StatusForbidden, "forbidden: a cross-origin request needs auth ([controller] auth_file)")
)

// authenticate checks the bearer token when auth is on. The secret is
// compared by the backend in constant time, as AUTH is.
//
// Without auth, a request from a browser page of another origin is
// refused, and on a loopback listener one for a host name other than
// localhost (DNS rebinding: a page of evil.example whose name now points
// at 127.0.0.1 is same-origin to the browser): the listener answers CORS preflights for any origin (the
// monitoring endpoints are read by dashboards elsewhere), so otherwise any
// web page the user visits could read the jobs and rules of a tock on
// 127.0.0.1 and PUT a shell rule and a job due now (docs/rest.md,
// Authentication).
func (s *Server) authenticate(r *http.Request) (Identity, error) {
	if !s.b.AuthEnabled() {
		if crossOrigin(r) || rebound(r) {
			return Identity{}, errCrossOrigin
		}
		return all, nil
	}
	// Exactly one Authorization header: with two, a proxy in front and
	// this server might each pick a different one.
	if len(r.Header.Values("Authorization")) > 1 {
		return Identity{}, errUnauthorized
	}
	scheme, secret, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return Identity{}, errUnauthorized
	}
	id, err := s.b.Authenticate(secret)
	if err != nil {
		if !errors.Is(err, ErrBadSecret) {
			return Identity{}, err
		}
		s.log.Warn("authentication failed", "remote", r.RemoteAddr)
		return Identity{}, errUnauthorized
	}
	return id, nil
}

// crossOrigin reports whether r comes from a browser page of another
// origin: browsers send Origin on every cross-origin fetch and on
// same-origin ones but GET and HEAD; "null" (sandboxed frames, file:) and
// an unparsable Origin count as another origin. The page's host:port must
// be the one r was sent to.
func crossOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return false
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return true
	}
	return !strings.EqualFold(u.Host, r.Host)
}

// rebound reports whether r reached a loopback listener under a host name
// other than localhost or an IP address: what a browser sends after DNS
// rebinding, which no client of 127.0.0.1 needs.
func rebound(r *http.Request) bool {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	ap, err := netip.ParseAddrPort(local.String())
	if err != nil || !ap.Addr().Unmap().IsLoopback() {
		return false
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if _, err := netip.ParseAddr(host); err == nil {
		return false
	}
	return host != "localhost" && !strings.HasSuffix(host, ".localhost")
}
