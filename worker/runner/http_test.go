package runner

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tockd/tock/store"
)

type seenRequest struct {
	Method, Path, ContentType, Body, User, Password string
	HasAuth                                         bool
}

// recordingServer answers status to every request and records them.
func recordingServer(t *testing.T, status int) (*httptest.Server, func() []seenRequest) {
	var mu sync.Mutex
	var seen []seenRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u, p, ok := r.BasicAuth()
		mu.Lock()
		seen = append(seen, seenRequest{r.Method, r.URL.Path, r.Header.Get("Content-Type"), string(b), u, p, ok})
		mu.Unlock()
		w.WriteHeader(status)
		fmt.Fprint(w, strings.Repeat("body ", 100))
	}))
	t.Cleanup(srv.Close)
	return srv, func() []seenRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]seenRequest(nil), seen...)
	}
}

func httpExec(method, url string) Execution {
	ex := exec1(store.RunnerHTTP, "job.http", method, url)
	ex.Execution = 1_712_345_678_900_000_000
	return ex
}

func TestHTTPMethods(t *testing.T) {
	t.Parallel()
	srv, seen := recordingServer(t, http.StatusOK)
	d := New(Config{}, nil)
	t.Cleanup(func() { d.Close() })
	wantBody := `{"job_id":"job.http","execution":1712345678900000000}`
	for i, m := range []string{"GET", "POST", "PUT", "DELETE", "post"} {
		before := time.Now()
		o := d.Run(context.Background(), httpExec(m, srv.URL+"/hook"))
		mustSucceed(t, o)
		checkTiming(t, o, before)
		if o.HTTPStatus != 200 || o.ExitCode != -1 {
			t.Errorf("%s: http %d exit %d", m, o.HTTPStatus, o.ExitCode)
		}
		r := seen()[i]
		if r.Method != strings.ToUpper(m) || r.Path != "/hook" {
			t.Errorf("%s: server saw %s %s", m, r.Method, r.Path)
		}
		switch r.Method {
		case "POST", "PUT":
			if r.Body != wantBody || r.ContentType != "application/json" {
				t.Errorf("%s: body %q content-type %q, want %q application/json", m, r.Body, r.ContentType, wantBody)
			}
		default:
			if r.Body != "" || r.ContentType != "" {
				t.Errorf("%s: unexpected body %q / content-type %q", m, r.Body, r.ContentType)
			}
		}
	}
	o := d.Run(context.Background(), httpExec("PATCH", srv.URL))
	mustFail(t, o, `unsupported method "PATCH"`)
	if n := len(seen()); n != 5 {
		t.Errorf("server saw %d requests, want 5", n)
	}
}

func TestHTTPStatuses(t *testing.T) {
	t.Parallel()
	d := New(Config{}, nil)
	t.Cleanup(func() { d.Close() })
	for _, st := range []int{200, 201, 202, 204, 299} {
		srv, _ := recordingServer(t, st)
		o := d.Run(context.Background(), httpExec("POST", srv.URL))
		mustSucceed(t, o)
		if o.HTTPStatus != int32(st) {
			t.Errorf("status %d recorded as %d", st, o.HTTPStatus)
		}
	}
	for _, st := range []int{500, 404, 400, 304} {
		srv, _ := recordingServer(t, st)
		o := d.Run(context.Background(), httpExec("GET", srv.URL))
		mustFail(t, o, fmt.Sprintf("unexpected status %d", st))
		if o.HTTPStatus != int32(st) || o.ExitCode != -1 {
			t.Errorf("status %d: http %d exit %d", st, o.HTTPStatus, o.ExitCode)
		}
	}
}

func TestHTTPRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	target, seen := recordingServer(t, 200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/elsewhere", http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	d := New(Config{}, nil)
	o := d.Run(context.Background(), httpExec("GET", srv.URL))
	mustFail(t, o, "unexpected status 302 Found")
	mustFail(t, o, "not followed")
	if o.HTTPStatus != 302 {
		t.Errorf("http status %d", o.HTTPStatus)
	}
	if len(seen()) != 0 {
		t.Error("redirect was followed")
	}
}

func TestHTTPTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)                 // runs second
	t.Cleanup(func() { close(release) }) // runs first: unblock the handler
	d := New(Config{NetworkTimeout: 250 * time.Millisecond}, nil)
	before := time.Now()
	o := d.Run(context.Background(), httpExec("POST", srv.URL))
	if o.Error != "timeout after 250ms" {
		t.Fatalf("error %q, want \"timeout after 250ms\"", o.Error)
	}
	if el := time.Since(before); el > 5*time.Second {
		t.Errorf("took %v", el)
	}
	if o.HTTPStatus != 0 || o.ExitCode != -1 {
		t.Errorf("http %d exit %d", o.HTTPStatus, o.ExitCode)
	}
}

func TestHTTPConnectionRefused(t *testing.T) {
	t.Parallel()
	d := New(Config{}, nil)
	o := d.Run(context.Background(), httpExec("GET", fmt.Sprintf("http://127.0.0.1:%d/x", closedPort(t))))
	mustFail(t, o, "connection refused")
	if o.HTTPStatus != 0 {
		t.Errorf("http status %d", o.HTTPStatus)
	}
	o = d.Run(context.Background(), httpExec("GET", "ftp://example.invalid/"))
	mustFail(t, o, "invalid URL")
}

func TestHTTPCredentialsRedacted(t *testing.T) {
	t.Parallel()
	srv, seen := recordingServer(t, 500)
	log, logs := traceLogger()
	d := New(Config{}, log)
	url := strings.Replace(srv.URL, "http://", "http://alice:s3cr%3At-pw@", 1) + "/x"
	o := d.Run(context.Background(), httpExec("GET", url))
	mustFail(t, o, "unexpected status 500")
	if r := seen()[0]; !r.HasAuth || r.User != "alice" || r.Password != "s3cr:t-pw" {
		t.Errorf("basic auth not sent from URL userinfo: %+v", r)
	}
	port := closedPort(t)
	for _, u := range []string{
		fmt.Sprintf("http://alice:s3cr%%3At-pw@127.0.0.1:%d/x", port), // refused: *url.Error quotes the URL
		"http://alice:s3cr:t-pw@[::1/x",                               // unparsable
	} {
		o = d.Run(context.Background(), httpExec("GET", u))
		if o.Succeeded() {
			t.Fatalf("%s succeeded", u)
		}
		for _, secret := range []string{"s3cr%3At-pw", "s3cr:t-pw", "t-pw"} {
			if strings.Contains(o.Error, secret) || strings.Contains(logs.String(), secret) {
				t.Errorf("password leaked: error %q logs %q", o.Error, logs.String())
			}
		}
	}
	if !strings.Contains(logs.String(), "alice:xxxxx@") {
		t.Errorf("logs lack the redacted target: %s", logs.String())
	}
}
