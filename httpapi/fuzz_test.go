package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// FuzzMux: any method, path and query reaches a handler or gets a JSON
// 404/405/400, never a panic; path values never hold a "/" for {id}.
func FuzzMux(f *testing.F) {
	for _, s := range [][3]string{
		{"GET", "/jobs/a.b", ""}, {"PUT", "/jobs/x", ""}, {"GET", "/debug/pprof/heap", "debug=1"},
		{"DELETE", "/", ""}, {"GET", "//jobs//", "n=%zz"}, {"OPTIONS", "/jobs", ""}, {"GET", "/fail", "n=1&b=true"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	m := testMux()
	m.Handle(http.MethodGet, "/q", func(w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		if _, err := QueryInt(q, "n", 0, -5, 5); err != nil {
			return err
		}
		if _, err := QueryBool(q, "b", false); err != nil {
			return err
		}
		if _, err := QueryUint64(q, "u", 0); err != nil {
			return err
		}
		if _, err := QueryEnum(q, "e", "a", []string{"a", "b"}); err != nil {
			return err
		}
		WriteJSON(w, 200, map[string]string{"id": r.PathValue("id")})
		return nil
	})
	f.Fuzz(func(t *testing.T, method, path, query string) {
		if !validMethod(method) {
			return
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Method = method
		r.URL = &url.URL{Path: path, RawQuery: query}
		rec := httptest.NewRecorder()
		m.ServeHTTP(rec, r)
		switch rec.Code {
		case 200, 204, 400, 404, 405:
		default:
			t.Fatalf("%s %q ?%q: status %d", method, path, query, rec.Code)
		}
	})
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range m {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
