package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/hashicorp/go-hclog"

	"github.com/tockd/tock/httpapi"
	"github.com/tockd/tock/store"
)

// loadDoc loads and validates openapi.json as an OpenAPI 3.1 document.
func loadDoc(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi.json is %s, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI 3.1 document: %v", err)
	}
	return doc
}

const (
	adminSecret = "admin-secret"
	aSecret     = "a-secret"
)

// fixture is a backend with auth on: an admin token and one scoped to a.,
// jobs and rules on both sides of the namespace.
func fixture() *memBackend {
	b := newMemBackend(map[string]Identity{adminSecret: {Name: "admin", Namespace: "*"}, aSecret: {Name: "a", Namespace: "a."}})
	b.SetJob(context.Background(), "a.1", 1_700_000_000_000_000_000)
	b.SetJob(context.Background(), "a.done", 1)
	b.complete("a.done", store.Failed, &store.Outcome{StartedAt: 5, Duration: 7, ExitCode: 2, Error: "exit status 2", Output: "oops\n"})
	b.SetJob(context.Background(), "a.web", 1)
	b.complete("a.web", store.Executed, &store.Outcome{StartedAt: 5, Duration: 7, ExitCode: -1, HTTPStatus: 204})
	b.SetJob(context.Background(), "b.1", 1)
	b.SetRule(context.Background(), store.Rule{ID: "a.r", Pattern: "a.", Runner: store.Runner{Kind: store.RunnerShell, Args: []string{"echo hi"}}})
	b.SetRule(context.Background(), store.Rule{ID: "a.redis", Pattern: "a.q", Runner: store.Runner{Kind: store.RunnerRedis, Args: []string{"redis://u:pw@h:6379/0", "RPUSH", "k"}}})
	b.SetRule(context.Background(), store.Rule{ID: "b.r", Pattern: "b.", Runner: store.Runner{Kind: store.RunnerShell, Args: []string{"echo b"}}})
	return b
}

// probe is one request expected to get one documented response.
type probe struct {
	op     string // operationId
	method string
	path   string // as sent (escaped)
	token  string
	body   string
	down   bool   // the backend is unavailable
	noAuth bool   // the server has no auth file
	origin string // the Origin header a browser sends
	status int
}

func probes() []probe {
	big := `{"execution": 1, "id": "` + strings.Repeat("x", MaxBody) + `"}`
	job := `{"execution": "2026-03-30T16:00:00+02:00"}`
	rule := `{"pattern": "a.", "runner": {"type": "shell", "command": "echo hi"}}`
	return []probe{
		{op: "health", method: "GET", path: "/health", status: 200},
		{op: "openapi", method: "GET", path: "/openapi.json", status: 200},

		{op: "listJobs", method: "GET", path: "/jobs?limit=2", token: aSecret, status: 200},
		{op: "listJobs", method: "GET", path: "/jobs?limit=0", token: aSecret, status: 400},
		{op: "listJobs", method: "GET", path: "/jobs", status: 401},
		{op: "listJobs", method: "GET", path: "/jobs", token: adminSecret, down: true, status: 503},
		{op: "listJobs", method: "GET", path: "/jobs", noAuth: true, origin: "http://evil.example", status: 403},

		{op: "getJob", method: "GET", path: "/jobs/a.done", token: aSecret, status: 200},
		{op: "getJob", method: "GET", path: "/jobs/a.web", token: aSecret, status: 200},
		{op: "getJob", method: "GET", path: "/jobs/a.1", token: aSecret, status: 200},
		{op: "getJob", method: "GET", path: "/jobs/a.%0Ab", token: aSecret, status: 400},
		{op: "getJob", method: "GET", path: "/jobs/a.1", token: "wrong", status: 401},
		{op: "getJob", method: "GET", path: "/jobs/b.1", token: aSecret, status: 403},
		{op: "getJob", method: "GET", path: "/jobs/a.none", token: aSecret, status: 404},
		{op: "getJob", method: "GET", path: "/jobs/a.1", token: aSecret, down: true, status: 503},

		{op: "putJob", method: "PUT", path: "/jobs/a.new", token: aSecret, body: job, status: 200},
		{op: "putJob", method: "PUT", path: "/jobs/a.new", token: aSecret, body: `{"execution": "tomorrow"}`, status: 400},
		{op: "putJob", method: "PUT", path: "/jobs/a.new", body: job, status: 401},
		{op: "putJob", method: "PUT", path: "/jobs/b.new", token: aSecret, body: job, status: 403},
		{op: "putJob", method: "PUT", path: "/jobs/a.new", token: aSecret, body: `{"id": "a.other", "execution": 5}`, status: 409},
		{op: "putJob", method: "PUT", path: "/jobs/a.new", token: aSecret, body: big, status: 413},
		{op: "putJob", method: "PUT", path: "/jobs/a.new", token: aSecret, body: job, down: true, status: 503},

		{op: "deleteJob", method: "DELETE", path: "/jobs/a.1", token: aSecret, status: 204},
		{op: "deleteJob", method: "DELETE", path: "/jobs/%0A", token: aSecret, status: 400},
		{op: "deleteJob", method: "DELETE", path: "/jobs/a.1", status: 401},
		{op: "deleteJob", method: "DELETE", path: "/jobs/b.1", token: aSecret, status: 403},
		{op: "deleteJob", method: "DELETE", path: "/jobs/a.none", token: aSecret, status: 404},
		{op: "deleteJob", method: "DELETE", path: "/jobs/a.1", token: aSecret, down: true, status: 503},

		{op: "listRules", method: "GET", path: "/rules", token: aSecret, status: 200},
		{op: "listRules", method: "GET", path: "/rules?colour=red", token: aSecret, status: 400},
		{op: "listRules", method: "GET", path: "/rules", status: 401},
		{op: "listRules", method: "GET", path: "/rules", noAuth: true, origin: "null", status: 403},

		{op: "getRule", method: "GET", path: "/rules/a.redis", token: aSecret, status: 200},
		{op: "getRule", method: "GET", path: "/rules/a%0A", token: aSecret, status: 400},
		{op: "getRule", method: "GET", path: "/rules/a.r", status: 401},
		{op: "getRule", method: "GET", path: "/rules/b.r", token: aSecret, status: 403},
		{op: "getRule", method: "GET", path: "/rules/a.none", token: aSecret, status: 404},

		{op: "putRule", method: "PUT", path: "/rules/a.x", token: aSecret, body: rule, status: 200},
		{op: "putRule", method: "PUT", path: "/rules/a.x", token: aSecret, body: `{"pattern": "a.", "runner": {"type": "shell"}}`, status: 400},
		{op: "putRule", method: "PUT", path: "/rules/a.x", body: rule, status: 401},
		{op: "putRule", method: "PUT", path: "/rules/a.x", token: aSecret, body: `{"pattern": "b.", "runner": {"type": "shell", "command": "x"}}`, status: 403},
		{op: "putRule", method: "PUT", path: "/rules/a.x", token: aSecret, body: `{"id": "a.y", "pattern": "a.", "runner": {"type": "shell", "command": "x"}}`, status: 409},
		{op: "putRule", method: "PUT", path: "/rules/a.x", token: aSecret, body: big, status: 413},
		{op: "putRule", method: "PUT", path: "/rules/a.x", token: aSecret, body: rule, down: true, status: 503},

		{op: "deleteRule", method: "DELETE", path: "/rules/a.r", token: aSecret, status: 204},
		{op: "deleteRule", method: "DELETE", path: "/rules/%0A", token: aSecret, status: 400},
		{op: "deleteRule", method: "DELETE", path: "/rules/a.r", status: 401},
		{op: "deleteRule", method: "DELETE", path: "/rules/b.r", token: aSecret, status: 403},
		{op: "deleteRule", method: "DELETE", path: "/rules/a.none", token: aSecret, status: 404},
		{op: "deleteRule", method: "DELETE", path: "/rules/a.r", token: aSecret, down: true, status: 503},
	}
}

// operation finds the documented operation by id.
func operation(doc *openapi3.T, id string) (path, method string, op *openapi3.Operation) {
	for p, item := range doc.Paths.Map() {
		for m, o := range item.Operations() {
			if o.OperationID == id {
				return p, m, o
			}
		}
	}
	return "", "", nil
}

// TestOpenAPIDescribesTheServer calls every documented operation with a
// request for each of its documented responses, over real HTTP, and checks
// the server answers that status with a body of the documented shape
// (kin-openapi's openapi3filter, which validates OpenAPI 3.1 schemas with
// JSON Schema 2020-12). Requests meant to succeed are validated against
// the document too, so it accepts what the server accepts.
func TestOpenAPIDescribesTheServer(t *testing.T) {
	doc := loadDoc(t)
	seen := map[string]bool{}
	for _, p := range probes() {
		t.Run(fmt.Sprintf("%s_%d_%s", p.op, p.status, p.path), func(t *testing.T) {
			b := fixture()
			b.unavailable = p.down
			if p.noAuth {
				b.tokens = nil
			}
			srv := httptest.NewServer(New(b, nil).Handler())
			defer srv.Close()
			path, method, op := operation(doc, p.op)
			if op == nil || method != p.method {
				t.Fatalf("operation %s %s is not documented", p.method, p.op)
			}
			req, err := http.NewRequest(p.method, srv.URL+p.path, strings.NewReader(p.body))
			if err != nil {
				t.Fatal(err)
			}
			if p.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if p.token != "" {
				req.Header.Set("Authorization", "Bearer "+p.token)
			}
			if p.origin != "" {
				req.Header.Set("Origin", p.origin)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != p.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, p.status, body)
			}
			if op.Responses.Status(p.status) == nil {
				t.Fatalf("%s does not document status %d", p.op, p.status)
			}
			seen[p.op+" "+strconv.Itoa(p.status)] = true
			in := requestInput(t, doc, path, method, op, req, p)
			if p.status < 300 {
				if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
					t.Fatalf("the document rejects a request the server accepts: %v", err)
				}
			}
			out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode,
				Header: resp.Header, Body: io.NopCloser(bytes.NewReader(body)),
				Options: &openapi3filter.Options{IncludeResponseStatus: true}}
			if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
				t.Fatalf("response does not match the document: %v\n%s", err, body)
			}
			if p.status >= 400 {
				var e struct{ Error string }
				if json.Unmarshal(body, &e) != nil || e.Error == "" {
					t.Fatalf("error body %q is not {\"error\": ...}", body)
				}
			}
		})
	}
	busyProbes(t, doc, seen)
	for p, item := range doc.Paths.Map() {
		for m, op := range item.Operations() {
			for code := range op.Responses.Map() {
				if !seen[op.OperationID+" "+code] {
					t.Errorf("%s %s: documented status %s is never produced by a probe", m, p, code)
				}
			}
		}
	}
}

func requestInput(t *testing.T, doc *openapi3.T, path, method string, op *openapi3.Operation, req *http.Request, p probe) *openapi3filter.RequestValidationInput {
	t.Helper()
	// Rebuild the request for the validator (the sent one's body is spent);
	// the route is the documented one, found by operation id, so ids
	// holding %2F need no router.
	vreq, err := http.NewRequest(req.Method, req.URL.String(), strings.NewReader(p.body))
	if err != nil {
		t.Fatal(err)
	}
	vreq.Header = req.Header.Clone()
	params := map[string]string{}
	if strings.Contains(path, "{id}") {
		prefix := strings.TrimSuffix(path, "{id}")
		raw := strings.SplitN(strings.TrimPrefix(req.URL.EscapedPath(), prefix), "?", 2)[0]
		params["id"] = raw
	}
	route := &routers.Route{Spec: doc, Path: path, PathItem: doc.Paths.Value(path), Method: method, Operation: op}
	return &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
}

// TestEveryRouteIsDocumented: each route the server mounts is a documented
// path, a method a documented path does not have is 405 with Allow, and a
// path outside the document is 404.
func TestEveryRouteIsDocumented(t *testing.T) {
	doc := loadDoc(t)
	routes := New(fixture(), nil).Handler().(*httpapi.Mux).Routes()
	served := map[string]bool{}
	for _, r := range routes {
		method, path, _ := strings.Cut(r, " ")
		path = strings.ReplaceAll(path, "{id...}", "{id}")
		served[method+" "+path] = true
		item := doc.Paths.Value(path)
		if item == nil || item.GetOperation(method) == nil {
			t.Errorf("route %s is not documented", r)
		}
	}
	for p, item := range doc.Paths.Map() {
		for m := range item.Operations() {
			if !served[m+" "+p] {
				t.Errorf("documented %s %s is not served", m, p)
			}
		}
	}
	srv := httptest.NewServer(New(fixture(), nil).Handler())
	defer srv.Close()
	methods := []string{"GET", "PUT", "DELETE", "POST", "PATCH"}
	for p, item := range doc.Paths.Map() {
		url := srv.URL + strings.ReplaceAll(p, "{id}", "a.1")
		var allowed []string
		for m := range item.Operations() {
			allowed = append(allowed, m)
		}
		for _, m := range methods {
			if slices.Contains(allowed, m) {
				continue
			}
			req, _ := http.NewRequest(m, url, nil)
			req.Header.Set("Authorization", "Bearer "+adminSecret)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 405 || resp.Header.Get("Allow") == "" || !bytes.Contains(body, []byte(`"error"`)) {
				t.Errorf("%s %s: %d allow=%q %s, want 405 with Allow and an error body", m, p, resp.StatusCode, resp.Header.Get("Allow"), body)
			}
		}
	}
	for _, p := range []string{"/", "/jobsx", "/rulesx/1", "/job"} {
		resp, err := srv.Client().Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
}

// busyProbes fills the HTTP listener's concurrency limit with requests held
// by a slow backend, then calls every operation: each is answered 503 with
// the documented error shape, but /health, which is served whatever the
// load (and documents no 503).
func busyProbes(t *testing.T, doc *openapi3.T, seen map[string]bool) {
	b := fixture()
	b.block, b.held = make(chan struct{}), make(chan struct{}, httpapi.MaxConcurrent)
	ln, err := httpapi.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpapi.NewServer(ln, New(b, nil).Handler(), hclog.NewNullLogger(), "/health")
	srv.Serve()
	defer srv.Shutdown(context.Background())
	base := "http://" + ln.Addr().String()
	hc := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0}}
	var wg sync.WaitGroup
	for range httpapi.MaxConcurrent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", base+"/jobs/a.1", nil)
			req.Header.Set("Authorization", "Bearer "+adminSecret)
			if resp, err := hc.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	for range httpapi.MaxConcurrent {
		<-b.held // every slot is taken
	}
	defer wg.Wait()
	defer close(b.block)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			url := base + strings.ReplaceAll(path, "{id}", "a.1")
			req, err := http.NewRequest(method, url, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if op.Responses.Status(503) == nil { // a probe: served whatever the load
				if resp.StatusCode != 200 {
					t.Errorf("%s %s while busy: %d %s, want 200", method, path, resp.StatusCode, body)
				}
				continue
			}
			if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
				t.Errorf("%s %s while busy: %d %s", method, path, resp.StatusCode, body)
				continue
			}
			params := map[string]string{}
			if strings.Contains(path, "{id}") {
				params["id"] = "a.1"
			}
			route := &routers.Route{Spec: doc, Path: path, PathItem: item, Method: method, Operation: op}
			in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
			out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: 503, Header: resp.Header,
				Body: io.NopCloser(bytes.NewReader(body)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
			if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
				t.Errorf("%s %s while busy: %v", method, path, err)
			}
			seen[op.OperationID+" 503"] = true
		}
	}
}
