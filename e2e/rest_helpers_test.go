package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/tockd/tock/rest"
)

var (
	restDocOnce sync.Once
	restDoc     *openapi3.T
	restDocErr  error
)

// openAPIDoc is the served document, loaded once per run.
func openAPIDoc(t testing.TB, base string) *openapi3.T {
	restDocOnce.Do(func() {
		resp, err := http.Get(base + "/openapi.json")
		if err != nil {
			restDocErr = err
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			restDocErr = err
			return
		}
		if !bytes.Equal(b, rest.OpenAPI) {
			restDocErr = errorString("the served /openapi.json is not the embedded document")
			return
		}
		restDoc, restDocErr = openapi3.NewLoader().LoadFromData(b)
	})
	if restDocErr != nil {
		t.Fatalf("openapi.json: %v", restDocErr)
	}
	return restDoc
}

type errorString string

func (e errorString) Error() string { return string(e) }

// restClient talks to the REST API with keep-alive, and checks every
// response of a documented operation against /openapi.json: its status
// must be documented and its body must have the documented shape.
type restClient struct {
	t     testing.TB
	hc    *http.Client
	base  string
	token string
	doc   *openapi3.T
}

func newRESTClient(t testing.TB, c *cluster, token string) *restClient {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	base := "http://" + c.httpAddr()
	return &restClient{t: t, hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}, base: base, token: token, doc: openAPIDoc(t, base)}
}

// withToken is a client on the same connection pool with another token.
func (rc *restClient) withToken(token string) *restClient {
	c := *rc
	c.token = token
	return &c
}

// do sends one request (path already escaped) and returns the status and
// body.
func (rc *restClient) do(method, path, body string) (int, []byte) {
	rc.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, rc.base+path, rd)
	if err != nil {
		rc.t.Fatal(err)
	}
	if rc.token != "" {
		req.Header.Set("Authorization", "Bearer "+rc.token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := rc.hc.Do(req)
	if err != nil {
		rc.t.Fatalf("%s %s: %v", method, path, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		rc.t.Fatal(err)
	}
	rc.check(req, resp, b)
	return resp.StatusCode, b
}

// check validates a response against the document.
func (rc *restClient) check(req *http.Request, resp *http.Response, body []byte) {
	rc.t.Helper()
	path := req.URL.EscapedPath()
	tmpl := path
	params := map[string]string{}
	for _, coll := range []string{"/jobs/", "/rules/"} {
		if strings.HasPrefix(path, coll) {
			tmpl = coll + "{id}"
			params["id"] = strings.TrimPrefix(path, coll)
		}
	}
	item := rc.doc.Paths.Value(tmpl)
	if item == nil {
		return // not an API path (a 404 probe)
	}
	op := item.GetOperation(req.Method)
	if op == nil {
		if resp.StatusCode != http.StatusMethodNotAllowed {
			rc.t.Errorf("%s %s: undocumented method answered %d", req.Method, path, resp.StatusCode)
		}
		return
	}
	if op.Responses.Status(resp.StatusCode) == nil {
		rc.t.Errorf("%s %s: status %d is not documented: %s", req.Method, path, resp.StatusCode, body)
		return
	}
	route := &routers.Route{Spec: rc.doc, Path: tmpl, PathItem: item, Method: req.Method, Operation: op}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode,
		Header: resp.Header, Body: io.NopCloser(bytes.NewReader(body)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		rc.t.Errorf("%s %s: response does not match /openapi.json: %v\n%s", req.Method, path, err, body)
	}
}

// expect sends a request and fails unless the status is want; it decodes
// the body into v when v is not nil.
func (rc *restClient) expect(method, path, body string, want int, v any) []byte {
	rc.t.Helper()
	got, b := rc.do(method, path, body)
	if got != want {
		rc.t.Fatalf("%s %s %s: status %d, want %d: %s", method, path, body, got, want, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			rc.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return b
}

// expectError checks an error status and that the message holds want.
func (rc *restClient) expectError(method, path, body string, status int, want string) {
	rc.t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	rc.expect(method, path, body, status, &e)
	if e.Error == "" || !strings.Contains(e.Error, want) {
		rc.t.Fatalf("%s %s %s: error %q, want it to hold %q", method, path, body, e.Error, want)
	}
}

// restJob is GET /jobs/{id}'s body.
type restJob struct {
	ID          string  `json:"id"`
	Execution   string  `json:"execution"`
	ExecutionNs int64   `json:"execution_ns"`
	Status      string  `json:"status"`
	Shard       int     `json:"shard"`
	Rule        *string `json:"rule"`
	LastOutcome *struct {
		StartedAt  string `json:"started_at"`
		DurationNs int64  `json:"duration_ns"`
		Succeeded  bool   `json:"succeeded"`
		ExitCode   *int   `json:"exit_code"`
		HTTPStatus *int   `json:"http_status"`
		Error      string `json:"error"`
		OutputTail string `json:"output_tail"`
		Attempt    int    `json:"attempt"`
	} `json:"last_outcome"`
}

type restJobList struct {
	Jobs []struct {
		ID          string `json:"id"`
		ExecutionNs int64  `json:"execution_ns"`
		Status      string `json:"status"`
	} `json:"jobs"`
	NextCursor *string `json:"next_cursor"`
}
