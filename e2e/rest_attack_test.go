package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tockd/tock/httpapi"
)

// Regression tests from attacking the REST API over real HTTP against the
// binary: each names the guarantee it defends.

// rawDo sends one request with the given headers (repeated keys allowed)
// and returns the status and body, without the document check (some of
// these requests are meant to be odd).
func rawDo(t *testing.T, rc *restClient, method, path, body string, headers ...[2]string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, rc.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		req.Header.Add(h[0], h[1])
	}
	resp, err := rc.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestREST_CrossOriginWithoutAuth: tock listens on 127.0.0.1:5680 by
// default without an auth file, and the listener answers CORS preflights
// for any origin. A web page the user visits must still not be able to
// PUT a shell rule and a job due now (running a command on the user's
// machine), delete jobs, or read the rules: a request whose Origin is
// another site is 403. curl and clients (no Origin) are served.
func TestREST_CrossOriginWithoutAuth(t *testing.T) {
	_, rc := restCluster(t, "")
	evil := [2]string{"Origin", "http://evil.example"}
	rule := `{"pattern": "", "runner": {"type": "shell", "command": "touch pwned"}}`
	if st, b := rawDo(t, rc, "PUT", "/rules/x", rule, evil, [2]string{"Content-Type", "application/json"}); st != 403 {
		t.Fatalf("cross-origin PUT /rules/x: %d %s, want 403", st, b)
	}
	if st, b := rawDo(t, rc, "PUT", "/jobs/x", `{"execution": 1}`, evil); st != 403 {
		t.Fatalf("cross-origin PUT /jobs/x: %d %s, want 403", st, b)
	}
	rc.expect("GET", "/rules/x", "", 404, nil)
	rc.expect("GET", "/jobs/x", "", 404, nil)

	rc.expect("PUT", "/jobs/keep", `{"execution": 4102444800000000000}`, 200, nil)
	if st, b := rawDo(t, rc, "DELETE", "/jobs/keep", "", [2]string{"Origin", "null"}); st != 403 {
		t.Fatalf("DELETE from a sandboxed frame: %d %s, want 403", st, b)
	}
	rc.expect("GET", "/jobs/keep", "", 200, nil)
	if st, b := rawDo(t, rc, "GET", "/rules", "", evil); st != 403 {
		t.Fatalf("cross-origin GET /rules: %d %s, want 403", st, b)
	}
	same := [2]string{"Origin", rc.base}
	if st, b := rawDo(t, rc, "GET", "/jobs/keep", "", same); st != 200 {
		t.Fatalf("same-origin GET: %d %s, want 200", st, b)
	}
	// DNS rebinding: the page of evil.example, its name now resolving to
	// 127.0.0.1, is same-origin to the browser; the Host header tells.
	req, err := http.NewRequest("GET", rc.base+"/rules", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "evil.example:5680"
	resp, err := rc.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("GET /rules for Host evil.example: %d, want 403", resp.StatusCode)
	}
	// The monitoring endpoints stay readable from any origin.
	if st, b := rawDo(t, rc, "GET", "/varz", "", evil); st != 200 {
		t.Fatalf("cross-origin GET /varz: %d %s, want 200", st, b)
	}
}

// TestREST_NoPasswordInRules: a URL whose user holds an @ before the
// password's colon (redis://u@x:secret@host, which url.Parse and so every
// runner client reads as user "u@x", password "secret") never shows its
// password: not in PUT's reply, GET /rules/{id}, GET /rules nor LISTRULES.
func TestREST_NoPasswordInRules(t *testing.T) {
	c, rc := restCluster(t, "")
	for id, runner := range map[string]string{
		"r.redis": `{"type": "redis", "url": "redis://u@x:hunter2@127.0.0.1:1/0", "command": "SET", "key": "k"}`,
		"r.amqp":  `{"type": "amqp", "url": "amqp://g@x:hunter2@127.0.0.1:1/", "exchange": "e", "routing_key": "k"}`,
		"r.http":  `{"type": "http", "method": "GET", "url": "http://u@x:hunter2@127.0.0.1:1/p"}`,
	} {
		b := rc.expect("PUT", "/rules/"+id, `{"pattern": "`+id+`", "runner": `+runner+`}`, 200, nil)
		if strings.Contains(string(b), "hunter2") {
			t.Errorf("PUT /rules/%s echoes the password: %s", id, b)
		}
		if b := rc.expect("GET", "/rules/"+id, "", 200, nil); strings.Contains(string(b), "hunter2") {
			t.Errorf("GET /rules/%s shows the password: %s", id, b)
		}
	}
	if b := rc.expect("GET", "/rules", "", 200, nil); strings.Contains(string(b), "hunter2") {
		t.Errorf("GET /rules shows a password: %s", b)
	}
	lines, ok := dial(t, c.addr).list("r1", "r1 LISTRULES")
	if ok != "r1 OK" || len(lines) != 3 {
		t.Fatalf("LISTRULES: %q %q", lines, ok)
	}
	for _, l := range lines {
		if strings.Contains(l, "hunter2") {
			t.Errorf("LISTRULES shows a password: %s", l)
		}
	}
}

// TestREST_ExecutionIsStrictRFC3339: times RFC 3339 does not allow are 400
// naming "execution" (docs/rest.md), not silently read: an offset of 24
// hours (Go's time.Parse takes it: the job would run a day early), more
// than nine fraction digits (a fraction of a ns, dropped), a comma.
func TestREST_ExecutionIsStrictRFC3339(t *testing.T) {
	_, rc := restCluster(t, "")
	for _, v := range []string{"2026-03-30T14:00:00+24:00", "2026-03-30T14:00:00.1234567891Z", "2026-03-30T14:00:00,5Z"} {
		rc.expectError("PUT", "/jobs/t.1", `{"execution": "`+v+`"}`, 400, `invalid "execution"`)
	}
	rc.expect("GET", "/jobs/t.1", "", 404, nil)
	var j struct {
		ExecutionNs int64 `json:"execution_ns"`
	}
	rc.expect("PUT", "/jobs/t.1", `{"execution": "2026-03-30T14:00:00.123456789+23:59"}`, 200, &j)
	if j.ExecutionNs != 1774792860123456789 {
		t.Fatalf("+23:59: execution_ns %d, want 1774792860123456789", j.ExecutionNs)
	}
}

// TestREST_TwoAuthorizationHeaders: a request with two Authorization
// headers is 401, whichever token is first: a proxy in front that checks
// one of them cannot be played against the server reading the other.
func TestREST_TwoAuthorizationHeaders(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.toml")
	copyAuthFixture(t, path)
	cfg := strings.Replace(monitorConfig(dir, ""), "[controller]\n", fmt.Sprintf("[controller]\nauth_file = %q\n", path), 1)
	c := startCluster(t, dir, cfg)
	rc := newRESTClient(t, c, "")
	admin, deploy := [2]string{"Authorization", "Bearer sk_admin_d4e5f6"}, [2]string{"Authorization", "Bearer sk_deploy_a1b2c3"}
	if st, b := rawDo(t, rc, "GET", "/jobs/other.1", "", admin); st != 404 {
		t.Fatalf("one admin header: %d %s, want 404", st, b)
	}
	for _, hs := range [][2][2]string{{admin, deploy}, {deploy, admin}, {admin, admin}} {
		if st, b := rawDo(t, rc, "GET", "/jobs/other.1", "", hs[0], hs[1]); st != 401 {
			t.Errorf("headers %q: %d %s, want 401", hs, st, b)
		}
	}
}

// TestREST_ProbesServedWhenBusy: clients holding every one of the
// listener's slots (each has sent a PUT's headers and drips its body) get
// other requests 503 busy, but /health and /healthz are still answered,
// so a liveness probe does not get a working tock restarted; the line
// protocol is served meanwhile.
func TestREST_ProbesServedWhenBusy(t *testing.T) {
	c, rc := restCluster(t, "")
	addr := strings.TrimPrefix(rc.base, "http://")
	// A few more than the bound: on a loaded machine the last dialled ones
	// may reach a handler late; any beyond the bound are answered 503.
	for i := range httpapi.MaxConcurrent + 16 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "PUT /jobs/drip.%d HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n\r\n{", i, addr)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) int {
		resp, err := hc.Get(rc.base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor(t, 20*time.Second, "every slot held", func() bool { return get("/openapi.json") == 503 })
	for _, path := range []string{"/health", "/healthz?live=1", "/healthz"} {
		if st := get(path); st != 200 {
			t.Errorf("GET %s while busy: %d, want 200", path, st)
		}
	}
	if st := get("/jobs/x"); st != 503 {
		t.Errorf("GET /jobs/x while busy: %d, want 503", st)
	}
	dial(t, c.addr).expect("r1 GET nope", "r1 ERROR not found")
}

// TestREST_BodyKeysAreExact: a repeated key or one spelled in another case
// is 400, not read by Go's lenient rules (last wins, case folded), so no
// other reader of the body (a proxy, an audit log) sees other values.
func TestREST_BodyKeysAreExact(t *testing.T) {
	_, rc := restCluster(t, "")
	rc.expectError("PUT", "/jobs/k.1", `{"execution": 1, "execution": 2}`, 400, `"execution" given more than once`)
	rc.expectError("PUT", "/jobs/k.1", `{"Execution": 1}`, 400, `unknown field "Execution"`)
	rc.expectError("PUT", "/rules/k.r", `{"pattern": "k.", "PATTERN": "x.", "runner": {"type": "shell", "command": "x"}}`, 400, `unknown field "PATTERN"`)
	rc.expectError("PUT", "/rules/k.r", `{"pattern": "k.", "runner": {"type": "shell", "command": "x", "command": "y"}}`, 400, `"command" given more than once`)
	rc.expect("GET", "/jobs/k.1", "", 404, nil)
	rc.expect("GET", "/rules/k.r", "", 404, nil)
}
