package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tockd/tock/store"
)

// maxHTTPBodyDrain is how much of a response body is read (and discarded)
// so that the connection can be reused; a longer body closes it.
const maxHTTPBodyDrain = 64 << 10

// HTTPRunner runs store.RunnerHTTP executions (args: [method, url]). GET and
// DELETE send no body; POST and PUT send Content-Type: application/json and
// {"job_id":"<id>","execution":<ns>}. A 2xx status is success; anything else
// (redirects are not followed) fails with the status in Outcome.HTTPStatus.
// Credentials in the URL (user:password@) are sent as basic auth.
type HTTPRunner struct {
	// Client is shared by all executions. nil means a client built by
	// NewHTTPClient(DefaultNetworkTimeout) on first use.
	Client *http.Client

	once sync.Once
}

var _ Runner = (*HTTPRunner)(nil)

// NewHTTPRunner returns an HTTPRunner with a client from NewHTTPClient.
func NewHTTPRunner(timeout time.Duration) *HTTPRunner {
	return &HTTPRunner{Client: NewHTTPClient(timeout)}
}

// NewHTTPClient returns the client used by the http runner: keep-alive with
// bounded idle pools sized for max_inflight (64), connect and TLS handshake
// bounded by timeout, no redirect following, no overall client timeout (the
// request context carries the execution's deadline).
func NewHTTPClient(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = DefaultNetworkTimeout
	}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   timeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    64,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    min(timeout, 10*time.Second),
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

func (r *HTTPRunner) client() *http.Client {
	r.once.Do(func() {
		if r.Client == nil {
			r.Client = NewHTTPClient(DefaultNetworkTimeout)
		}
	})
	return r.Client
}

// CloseIdleConnections closes the client's idle keep-alive connections.
func (r *HTTPRunner) CloseIdleConnections() { r.client().CloseIdleConnections() }

type httpBody struct {
	JobID     string `json:"job_id"`
	Execution int64  `json:"execution"`
}

// Run sends the request of ex.
func (r *HTTPRunner) Run(ctx context.Context, ex Execution) store.Outcome {
	if len(ex.Runner.Args) != 2 {
		return failf("http runner: want 2 arguments (method, url), got %d", len(ex.Runner.Args))
	}
	method, rawURL := strings.ToUpper(ex.Runner.Args[0]), ex.Runner.Args[1]
	var body io.Reader
	switch method {
	case http.MethodGet, http.MethodDelete:
	case http.MethodPost, http.MethodPut:
		b, err := json.Marshal(httpBody{JobID: ex.JobID, Execution: ex.Execution})
		if err != nil {
			return failf("http runner: encoding body: %v", err)
		}
		body = bytes.NewReader(b)
	default:
		return failf("http runner: unsupported method %q (GET, POST, PUT, DELETE)", ex.Runner.Args[0])
	}
	// Parse first so that a parse error never quotes the raw URL.
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return failf("http runner: invalid URL %s", redact(rawURL))
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return withCause(ctx, failf("http runner: %s", scrub(err.Error(), rawURL)))
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "tock")
	resp, err := r.client().Do(req)
	if err != nil {
		// *url.Error quotes the URL (net/http already masks the password;
		// scrub covers every other form).
		return withCause(ctx, failf("http runner: %s", scrub(err.Error(), rawURL)))
	}
	_, _ = io.CopyN(io.Discard, resp.Body, maxHTTPBodyDrain)
	_ = resp.Body.Close()

	o := store.Outcome{ExitCode: -1, HTTPStatus: int32(resp.StatusCode)}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		o.Error = "http runner: unexpected status " + resp.Status
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			if loc := resp.Header.Get("Location"); loc != "" {
				o.Error += " (redirect to " + scrub(redact(loc), rawURL) + " not followed)"
			} else {
				o.Error += " (redirects are not followed)"
			}
		}
	}
	return o
}
