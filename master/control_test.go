package master

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func listenTestSocket(t *testing.T) (*net.UnixListener, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), ControlSocket)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, path
}

// TestControl_PeerCheck: a connection from another uid is closed at accept,
// one from the same uid gets through (docs/operations.md, SO_PEERCRED).
func TestControl_PeerCheck(t *testing.T) {
	cases := []struct {
		name   string
		uid    int
		accept bool
	}{
		{"same uid", os.Getuid(), true},
		{"other uid", os.Getuid() + 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ln, path := listenTestSocket(t)
			pl := &peerCheckListener{UnixListener: ln, uid: tc.uid, log: hclog.NewNullLogger()}
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := pl.Accept()
				if err == nil {
					accepted <- c
				}
				close(accepted)
			}()
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tc.accept {
				select {
				case sc := <-accepted:
					if sc == nil {
						t.Fatal("accept failed")
					}
					sc.Close()
				case <-time.After(5 * time.Second):
					t.Fatal("connection from the same uid was not accepted")
				}
				return
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Fatalf("read on a refused connection: %v, want EOF", err)
			}
			ln.Close()
			if sc, ok := <-accepted; ok && sc != nil {
				t.Fatal("connection from another uid was accepted")
			}
		})
	}
}

// TestControl_ClaimSocket: a live socket is refused, a stale one removed, a
// file that is not a socket left alone.
func TestControl_ClaimSocket(t *testing.T) {
	ln, path := listenTestSocket(t)
	if err := claimSocket(path); err == nil || !strings.Contains(err.Error(), "another tock is running") {
		t.Fatalf("live socket: %v", err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if err := claimSocket(path); err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale socket not removed: %v", err)
	}
	if err := claimSocket(path); err != nil {
		t.Fatalf("no socket: %v", err)
	}
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := claimSocket(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("regular file: %v", err)
	}
}

// TestControl_Routing: unknown paths 404, wrong methods 405 with Allow, a
// missing token 401 and a wrong one 403 (Puma's codes), all as
// {"error": ...}.
func TestControl_Routing(t *testing.T) {
	cs := &ControlServer{log: hclog.NewNullLogger(), token: "s3cret"}
	cases := []struct {
		name, method, target, auth string
		status                     int
		allow                      string
	}{
		{"no token", "GET", "/stats", "", 401, ""},
		{"empty query token", "GET", "/stats?token=", "", 401, ""},
		{"wrong token", "GET", "/stats?token=nope", "", 403, ""},
		{"wrong bearer", "GET", "/stats", "Bearer nope", 403, ""},
		{"no token on a GET action", "GET", "/stop", "", 401, ""},
		{"wrong token on a GET action", "GET", "/halt?token=nope", "", 403, ""},
		{"unknown path", "GET", "/nope", "Bearer s3cret", 404, ""},
		{"unknown path by query token", "GET", "/nope?token=s3cret", "", 404, ""},
		{"PUT on an action", "PUT", "/stop", "Bearer s3cret", 405, "POST, GET"},
		{"GET on /workers", "GET", "/workers", "Bearer s3cret", 405, "POST"},
		{"GET on /compact", "GET", "/compact", "Bearer s3cret", 405, "POST"},
		{"POST on a query", "POST", "/stats", "Bearer s3cret", 405, "GET"},
		{"POST on the backtraces alias", "POST", "/thread-backtraces", "Bearer s3cret", 405, "GET"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.target, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			cs.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.status, rec.Body)
			}
			if got := rec.Header().Get("Allow"); got != tc.allow {
				t.Fatalf("Allow %q, want %q", got, tc.allow)
			}
			var e struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("body %q is not {\"error\": ...}: %v", rec.Body, err)
			}
		})
	}
}

// TestControl_TCPNeedsToken: without a configured token, a request that
// came in over TCP is refused and one over the Unix socket is not.
func TestControl_TCPNeedsToken(t *testing.T) {
	cs := &ControlServer{log: hclog.NewNullLogger()}
	for _, tc := range []struct {
		addr   net.Addr
		status int
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}, 403},
		{&net.UnixAddr{Name: "/x/control.sock", Net: "unix"}, 404},
	} {
		req := httptest.NewRequest("GET", "/nope", nil)
		req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, tc.addr))
		rec := httptest.NewRecorder()
		cs.ServeHTTP(rec, req)
		if rec.Code != tc.status {
			t.Errorf("%s: status %d, want %d (%s)", tc.addr.Network(), rec.Code, tc.status, rec.Body)
		}
	}
}

// TestControl_WorkersBody: bad POST /workers bodies are 400 before anything
// is scaled.
func TestControl_WorkersBody(t *testing.T) {
	cs := &ControlServer{log: hclog.NewNullLogger()}
	for _, body := range []string{``, `{}`, `{"delta":0}`, `{"count":0}`, `{"count":-2}`,
		`{"delta":1,"count":2}`, `{"delta":"x"}`, `{"workers":3}`, `{"delta":1} {"delta":1}`, `[1]`} {
		req := httptest.NewRequest(http.MethodPost, "/workers", strings.NewReader(body))
		rec := httptest.NewRecorder()
		cs.ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("body %q: status %d, want 400 (%s)", body, rec.Code, rec.Body)
		}
	}
	big := `{"delta":1,` + strings.Repeat(" ", controlMaxBody) + `}`
	rec := httptest.NewRecorder()
	cs.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/workers", strings.NewReader(big)))
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: status %d, want 413", rec.Code)
	}
}
