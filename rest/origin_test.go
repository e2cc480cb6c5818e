package rest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCrossOriginNeedsAuth: without an auth file, a request a browser
// sends from another origin (its Origin header names another host) is
// refused, so a web page the user visits cannot read the jobs and rules
// nor PUT a shell rule and a job due now on a tock at 127.0.0.1:5680.
// Same-origin and non-browser requests are served; with an auth file the
// bearer token decides, whatever the origin.
func TestCrossOriginNeedsAuth(t *testing.T) {
	rule := `{"pattern": "", "runner": {"type": "shell", "command": "touch /tmp/pwned"}}`
	for _, tc := range []struct {
		name, method, path, body, origin, token string
		auth                                    bool
		want                                    int
	}{
		{"put rule from another site", "PUT", "/rules/x", rule, "http://evil.example", "", false, 403},
		{"put job from another site", "PUT", "/jobs/x", `{"execution": 1}`, "https://evil.example:5680", "", false, 403},
		{"delete from a sandboxed frame", "DELETE", "/jobs/a.1", "", "null", "", false, 403},
		{"read rules from another site", "GET", "/rules", "", "http://evil.example", "", false, 403},
		{"read a job from another port", "GET", "/jobs/a.1", "", "http://HOST:1", "", false, 403},
		{"same origin", "GET", "/jobs/a.1", "", "http://HOST", "", false, 200},
		{"same origin, any case", "PUT", "/rules/x", rule, "HTTP://HOST", "", false, 200},
		{"no origin (curl, clients)", "PUT", "/rules/x", rule, "", "", false, 200},
		{"auth on: the token decides", "PUT", "/rules/x", rule, "http://evil.example", adminSecret, true, 200},
		{"auth on: no token", "GET", "/rules", "", "http://evil.example", "", true, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := fixture()
			if !tc.auth {
				b.tokens = nil
			}
			srv := httptest.NewServer(New(b, nil).Handler())
			defer srv.Close()
			host := strings.TrimPrefix(srv.URL, "http://")
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.origin != "" {
				origin := strings.ReplaceAll(tc.origin, "HOST:1", strings.Split(host, ":")[0]+":1")
				req.Header.Set("Origin", strings.ReplaceAll(origin, "HOST", host))
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("%s %s with Origin %q: %d, want %d", tc.method, tc.path, req.Header.Get("Origin"), resp.StatusCode, tc.want)
			}
		})
	}
}

// TestOneAuthorizationHeader: a request with two Authorization headers is
// 401 whichever comes first, rather than the server picking one (a proxy
// in front may have checked the other).
func TestOneAuthorizationHeader(t *testing.T) {
	srv := httptest.NewServer(New(fixture(), nil).Handler())
	defer srv.Close()
	for _, order := range [][2]string{{aSecret, adminSecret}, {adminSecret, aSecret}, {aSecret, aSecret}} {
		req, err := http.NewRequest("GET", srv.URL+"/jobs/a.1", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Add("Authorization", "Bearer "+order[0])
		req.Header.Add("Authorization", "Bearer "+order[1])
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("two Authorization headers %q: %d, want 401", order, resp.StatusCode)
		}
	}
}

// TestDNSRebindingNeedsAuth: without auth, a request that reached the
// loopback listener under another host name (a rebound evil.example) is
// refused, same-origin or not; 127.0.0.1, [::1] and localhost are served.
func TestDNSRebindingNeedsAuth(t *testing.T) {
	b := fixture()
	b.tokens = nil
	srv := httptest.NewServer(New(b, nil).Handler())
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	for host, want := range map[string]int{
		"evil.example" + port: 403, "evil.example": 403, "localhost.evil.example" + port: 403,
		"127.0.0.1" + port: 200, "localhost" + port: 200, "LOCALHOST." + port: 200, "app.localhost" + port: 200,
		"[::1]" + port: 200, "10.1.2.3" + port: 200,
	} {
		req, err := http.NewRequest("GET", srv.URL+"/jobs/a.1", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: %d, want %d", host, resp.StatusCode, want)
		}
	}
}
