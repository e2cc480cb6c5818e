package rest

import (
	"errors"
	"net/http"
	"strings"

	"github.com/hashicorp/go-hclog"
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

// Routes are the patterns the API answers, for Mount and for the test that
// checks every route is documented.
var Routes = []string{"/health", "/openapi.json", "/jobs", "/jobs/", "/rules", "/rules/"}

// Mount registers the API's routes on mux.
func (s *Server) Mount(mux *http.ServeMux) {
	h := s.Handler()
	for _, p := range Routes {
		mux.Handle(p, h)
	}
}

// Handler serves the API's routes (anything else is 404).
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	switch p {
	case "/health":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, "GET")
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	case "/openapi.json":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, "GET")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(OpenAPI)
		return
	}
	collection := ""
	switch {
	case p == "/jobs" || strings.HasPrefix(p, "/jobs/"):
		collection = "jobs"
	case p == "/rules" || strings.HasPrefix(p, "/rules/"):
		collection = "rules"
	default:
		writeError(w, ErrNotFound)
		return
	}
	who, err := s.authenticate(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if collection == "jobs" {
		s.jobs(w, r, who)
	} else {
		s.rules(w, r, who)
	}
}

var errUnauthorized = errorf(http.StatusUnauthorized, "unauthorized")

// authenticate checks the bearer token when auth is on. The secret is
// compared by the backend in constant time, as AUTH is.
func (s *Server) authenticate(r *http.Request) (Identity, error) {
	if !s.b.AuthEnabled() {
		return all, nil
	}
	h := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(h, " ")
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
