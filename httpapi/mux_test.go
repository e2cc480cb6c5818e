package httpapi

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func testMux() *Mux {
	m := NewMux()
	echo := func(name string) HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) error {
			WriteJSON(w, http.StatusOK, map[string]string{"route": name, "id": r.PathValue("id"), "rest": r.PathValue("rest")})
			return nil
		}
	}
	m.Handle(http.MethodGet, "/", echo("root"))
	m.Handle(http.MethodGet, "/jobs", echo("jobs"))
	m.Handle(http.MethodGet, "/jobs/{id}", echo("job"))
	m.Handle(http.MethodPut, "/jobs/{id}", echo("putjob"))
	m.Handle(http.MethodGet, "/jobs/stats", echo("jobstats"))
	m.Handle(http.MethodGet, "/debug/pprof/{rest...}", echo("pprof"))
	m.Handle(http.MethodGet, "/fail", func(w http.ResponseWriter, r *http.Request) error {
		return BadRequest("bad thing %q", "x")
	})
	return m
}

func do(t *testing.T, h http.Handler, method, target string) (*httptest.ResponseRecorder, map[string]string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	var body map[string]string
	if method != http.MethodHead && rec.Code != http.StatusNoContent {
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s %s: body %q is not JSON: %v", method, target, rec.Body.String(), err)
		}
		if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "*" {
			t.Fatalf("%s %s: Access-Control-Allow-Origin %q", method, target, got)
		}
		if got := rec.Header().Get("Content-Type"); got != "application/json" {
			t.Fatalf("%s %s: Content-Type %q", method, target, got)
		}
	}
	return rec, body
}

func TestMuxRouting(t *testing.T) {
	m := testMux()
	for _, tt := range []struct {
		method, target string
		code           int
		route, id      string
		rest           string
	}{
		{"GET", "/", 200, "root", "", ""},
		{"GET", "/jobs", 200, "jobs", "", ""},
		{"GET", "/jobs/a.b", 200, "job", "a.b", ""},
		{"GET", "/jobs/a%20b", 200, "job", "a b", ""},
		{"PUT", "/jobs/x", 200, "putjob", "x", ""},
		{"GET", "/jobs/stats", 200, "jobstats", "", ""},
		{"GET", "/debug/pprof/", 200, "pprof", "", ""},
		{"GET", "/debug/pprof/heap", 200, "pprof", "", "heap"},
		{"GET", "/debug/pprof/a/b", 200, "pprof", "", "a/b"},
		{"GET", "/jobs/", 404, "", "", ""},
		{"GET", "/jobs/a/b", 404, "", "", ""},
		{"GET", "/nope", 404, "", "", ""},
		{"GET", "/jobs/stats/", 404, "", "", ""},
		{"GET", "/fail", 400, "", "", ""},
	} {
		rec, body := do(t, m, tt.method, tt.target)
		if rec.Code != tt.code {
			t.Fatalf("%s %s: %d %s, want %d", tt.method, tt.target, rec.Code, rec.Body, tt.code)
		}
		if tt.code != 200 {
			if body["error"] == "" {
				t.Fatalf("%s %s: no error message: %v", tt.method, tt.target, body)
			}
			continue
		}
		if body["route"] != tt.route || body["id"] != tt.id || body["rest"] != tt.rest {
			t.Fatalf("%s %s: %v", tt.method, tt.target, body)
		}
	}
}

func TestMuxMethods(t *testing.T) {
	m := testMux()
	rec, body := do(t, m, "DELETE", "/jobs/x")
	if rec.Code != 405 || rec.Header().Get("Allow") != "GET, HEAD, OPTIONS, PUT" || !strings.Contains(body["error"], "not DELETE") {
		t.Fatalf("DELETE: %d Allow=%q %v", rec.Code, rec.Header().Get("Allow"), body)
	}
	rec, _ = do(t, m, "HEAD", "/jobs")
	if rec.Code != 200 {
		t.Fatalf("HEAD: %d", rec.Code)
	}
	rec, _ = do(t, m, "OPTIONS", "/jobs/x")
	if rec.Code != 204 || rec.Header().Get("Access-Control-Allow-Methods") != "GET, HEAD, OPTIONS, PUT" {
		t.Fatalf("OPTIONS: %d %v", rec.Code, rec.Header())
	}
	if n := m.RequestCounts()["/jobs"]; n != 1 {
		t.Fatalf("requests of /jobs = %d, want 1 (HEAD)", n)
	}
}

func TestMuxBadPatterns(t *testing.T) {
	for _, p := range []string{"jobs", "/{x", "/{}/a", "/{r...}/a"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Fatalf("pattern %q accepted", p)
				}
			}()
			NewMux().Handle("GET", p, nil)
		}()
	}
	m := testMux()
	defer func() {
		if recover() == nil {
			t.Fatal("duplicate route accepted")
		}
	}()
	m.Handle("GET", "/jobs", nil)
}

func TestQueryParsers(t *testing.T) {
	q := map[string][]string{"n": {"12"}, "b": {"yes"}, "e": {"x"}, "u": {"-1"}}
	if n, err := QueryInt(q, "n", 0, 0, 10); err == nil || StatusOf(err) != 400 || !strings.Contains(err.Error(), `bad n "12": want an integer from 0 to 10`) {
		t.Fatalf("QueryInt: %d %v", n, err)
	}
	// Any int: the message says so, not the int's range.
	if _, err := QueryInt(q, "n", 0, math.MinInt, math.MaxInt); err != nil {
		t.Fatalf("QueryInt any int: %v", err)
	}
	q["w"] = []string{"1.5"}
	if _, err := QueryInt(q, "w", 0, math.MinInt, math.MaxInt); err == nil || err.Error() != `bad w "1.5": want an integer` {
		t.Fatalf("QueryInt any int: %v", err)
	}
	if n, err := QueryInt(q, "missing", 7, 0, 10); n != 7 || err != nil {
		t.Fatalf("QueryInt default: %d %v", n, err)
	}
	if _, err := QueryBool(q, "b", false); err == nil || !strings.Contains(err.Error(), "want 1, 0, true or false") {
		t.Fatalf("QueryBool: %v", err)
	}
	if _, err := QueryEnum(q, "e", "a", []string{"a", "b"}); err == nil || !strings.Contains(err.Error(), "want one of a, b") {
		t.Fatalf("QueryEnum: %v", err)
	}
	if _, err := QueryUint64(q, "u", 0); err == nil {
		t.Fatal("QueryUint64 took -1")
	}
}

// TestLimit: beyond the bound a request is answered 503 at once.
func TestLimit(t *testing.T) {
	release := make(chan struct{})
	var entered sync.WaitGroup
	entered.Add(2)
	h := limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered.Done()
		<-release
		w.WriteHeader(200)
	}), 2, nil)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		}()
	}
	entered.Wait()
	rec, body := do(t, h, "GET", "/")
	close(release)
	wg.Wait()
	if rec.Code != 503 || !strings.Contains(body["error"], "busy") || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("third request: %d %v", rec.Code, body)
	}
}
