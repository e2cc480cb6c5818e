package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
)

// HandlerFunc serves one route; a returned error is answered by
// WriteError (nothing must have been written then).
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Mux is a route table: exact method and path matching, JSON 404 and 405
// (with Allow), and a request count per route for /varz's http_req_stats.
//
// A pattern is a path whose segments are literals or wildcards: "{id}"
// matches one non-empty segment and "{rest...}" (last only) the remainder,
// empty included; handlers read them with r.PathValue. When several
// patterns match, the one with the most literal segments wins, so
// "/jobs/stats" beats "/jobs/{id}". A GET route also answers HEAD; OPTIONS
// on a known path answers 204 with Allow and the CORS preflight headers.
// Patterns are registered before serving and never change after.
type Mux struct {
	patterns []*pattern
}

type pattern struct {
	path     string
	segs     []string
	literals int
	methods  map[string]HandlerFunc
	requests atomic.Uint64
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{} }

// Handle adds a route. It panics on a malformed pattern or a duplicate
// route: both are programming errors found at startup.
func (m *Mux) Handle(method, path string, h HandlerFunc) {
	p := m.find(path)
	if p == nil {
		p = newPattern(path)
		m.patterns = append(m.patterns, p)
		// Most literal segments first: the first match is the best one.
		sort.SliceStable(m.patterns, func(i, j int) bool { return m.patterns[i].literals > m.patterns[j].literals })
	}
	if _, dup := p.methods[method]; dup {
		panic(fmt.Sprintf("httpapi: duplicate route %s %s", method, path))
	}
	p.methods[method] = h
}

func (m *Mux) find(path string) *pattern {
	for _, p := range m.patterns {
		if p.path == path {
			return p
		}
	}
	return nil
}

func newPattern(path string) *pattern {
	if !strings.HasPrefix(path, "/") {
		panic("httpapi: pattern must start with /: " + path)
	}
	p := &pattern{path: path, segs: strings.Split(path[1:], "/"), methods: map[string]HandlerFunc{}}
	for i, s := range p.segs {
		switch {
		case !strings.HasPrefix(s, "{"):
			p.literals++
		case !strings.HasSuffix(s, "}") || len(s) < 3:
			panic("httpapi: malformed wildcard in " + path)
		case strings.HasSuffix(s, "...}") && i != len(p.segs)-1:
			panic("httpapi: {name...} must be last in " + path)
		}
	}
	return p
}

// match reports whether path matches p, setting the wildcards' values on r.
func (p *pattern) match(path string, r *http.Request) bool {
	rest := path[1:]
	for i, s := range p.segs {
		if name, ok := strings.CutSuffix(s, "...}"); ok {
			if r != nil {
				r.SetPathValue(name[1:], rest)
			}
			return true
		}
		seg, tail, more := strings.Cut(rest, "/")
		last := i == len(p.segs)-1
		if more == last { // path has more (or fewer) segments than p
			return false
		}
		if strings.HasPrefix(s, "{") {
			if seg == "" {
				return false
			}
			if r != nil {
				r.SetPathValue(s[1:len(s)-1], seg)
			}
		} else if seg != s {
			return false
		}
		rest = tail
	}
	return true
}

// allow lists p's methods for the Allow header.
func (p *pattern) allow() string {
	ms := make([]string, 0, len(p.methods)+2)
	for m := range p.methods {
		ms = append(ms, m)
	}
	if _, ok := p.methods[http.MethodGet]; ok {
		if _, ok := p.methods[http.MethodHead]; !ok {
			ms = append(ms, http.MethodHead)
		}
	}
	ms = append(ms, http.MethodOptions)
	slices.Sort(ms)
	return strings.Join(ms, ", ")
}

// ServeHTTP routes r.
func (m *Mux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if path == "" || path[0] != '/' {
		path = "/" + path
	}
	var p *pattern
	for _, c := range m.patterns {
		if c.match(path, nil) {
			p = c
			break
		}
	}
	if p == nil {
		WriteError(w, Errorf(http.StatusNotFound, "no such endpoint %s", path))
		return
	}
	h, ok := p.methods[r.Method]
	if !ok && r.Method == http.MethodHead {
		h, ok = p.methods[http.MethodGet]
	}
	if !ok {
		allow := p.allow()
		w.Header().Set("Allow", allow)
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Origin", "*")
			w.Header().Set("Access-Control-Allow-Methods", allow)
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		WriteError(w, Errorf(http.StatusMethodNotAllowed, "%s takes %s, not %s", path, allow, r.Method))
		return
	}
	p.match(path, r)
	p.requests.Add(1)
	if err := h(w, r); err != nil {
		WriteError(w, err)
	}
}

// RequestCounts is the number of requests served per route pattern (those
// that reached a handler), for /varz's http_req_stats.
func (m *Mux) RequestCounts() map[string]uint64 {
	out := make(map[string]uint64, len(m.patterns))
	for _, p := range m.patterns {
		out[p.path] = p.requests.Load()
	}
	return out
}

// Routes lists the registered routes as "METHOD /path", sorted.
func (m *Mux) Routes() []string {
	var out []string
	for _, p := range m.patterns {
		for meth := range p.methods {
			out = append(out, meth+" "+p.path)
		}
	}
	slices.Sort(out)
	return out
}
