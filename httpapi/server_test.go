package httpapi

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// TestServer_StuckReadersDoNotStarve: clients that ask for an endless
// reply and never read it hold every request slot; /healthz (an exempt
// path) still answers, and stuck requests give their slots back after the
// write timeout, so other requests are served again.
func TestServer_StuckReadersDoNotStarve(t *testing.T) {
	old := writeTimeout.Load()
	t.Cleanup(func() { writeTimeout.Store(old) })

	mux := NewMux()
	chunk := make([]byte, 64<<10)
	var entered atomic.Int64
	mux.Handle(http.MethodGet, "/endless", func(w http.ResponseWriter, r *http.Request) error {
		entered.Add(1)
		for {
			if _, err := w.Write(chunk); err != nil {
				return nil // the write deadline (or the client) ended it
			}
		}
	})
	ok := func(w http.ResponseWriter, r *http.Request) error {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return nil
	}
	mux.Handle(http.MethodGet, "/healthz", ok)
	mux.Handle(http.MethodGet, "/small", ok)
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(ln, mux, hclog.NewNullLogger(), "/healthz")
	srv.Serve()
	t.Cleanup(func() { srv.Shutdown(t.Context()) })
	addr := ln.Addr().String()

	// stick fills every slot with a request whose reply is never read.
	stick := func() []net.Conn {
		var conns []net.Conn
		for range MaxConcurrent {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			fmt.Fprintf(c, "GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
		}
		t.Cleanup(func() {
			for _, c := range conns {
				c.Close()
			}
		})
		return conns
	}
	waitEntered := func(n int64) {
		deadline := time.Now().Add(20 * time.Second)
		for entered.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d stuck requests reached the handler", entered.Load(), n)
			}
			time.Sleep(5 * time.Millisecond) // polling interval, not a wait for an event
		}
	}
	get := func(path string) int {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.0\r\n\r\n", path)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	// With a long write timeout every slot stays taken: plain requests
	// are refused, /healthz is still answered.
	writeTimeout.Store(int64(time.Hour))
	first := stick()
	waitEntered(MaxConcurrent)
	if code := get("/small"); code != http.StatusServiceUnavailable {
		t.Errorf("/small with every slot stuck: %d, want 503", code)
	}
	if code := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with every slot stuck: %d, want 200", code)
	}
	for _, c := range first {
		c.Close()
	}

	// With a short one, readers that never read nor close are cut off and
	// their slots come back.
	writeTimeout.Store(int64(200 * time.Millisecond))
	stick()
	waitEntered(2 * MaxConcurrent)
	deadline := time.Now().Add(20 * time.Second)
	for get("/small") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("stuck readers still hold the slots after the write timeout")
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for an event
	}
}
