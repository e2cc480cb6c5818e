package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/tockd/tock/master"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// ctlStats is the stats tree of docs/stats.md, decoded into the master's own
// types; the tests check the exact key sets separately on the raw JSON, so
// a wrong tag still fails them.
type ctlStats = master.Stats

type ctlWorker = master.WorkerStats

// controlConn is an HTTP client of one control listener.
type controlConn struct {
	t     *testing.T
	hc    *http.Client
	base  string
	token string
}

func controlSocket(dir string) string { return filepath.Join(dir, "data", "control.sock") }

// unixControl talks to the control socket of the cluster configured in dir.
func unixControl(t *testing.T, dir string) *controlConn {
	path := controlSocket(dir)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &controlConn{t: t, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}, base: "http://tock"}
}

// do sends a request and returns the status and the body.
func (cc *controlConn) do(method, path, body string) (int, []byte) {
	cc.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, cc.base+path, rd)
	if err != nil {
		cc.t.Fatal(err)
	}
	if cc.token != "" {
		req.Header.Set("Authorization", "Bearer "+cc.token)
	}
	resp, err := cc.hc.Do(req)
	if err != nil {
		cc.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		cc.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// expect sends a request, checks the status and decodes the reply into out.
func (cc *controlConn) expect(method, path, body string, status int, out any) {
	cc.t.Helper()
	got, b := cc.do(method, path, body)
	if got != status {
		cc.t.Fatalf("%s %s: status %d, want %d: %s", method, path, got, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			cc.t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
}

func (cc *controlConn) stats() ctlStats {
	cc.t.Helper()
	var st ctlStats
	cc.expect("GET", "/stats", "", 200, &st)
	return st
}

// expectOK checks an action's 200 {"status":"ok"}.
func (cc *controlConn) expectOK(path, body string) {
	cc.t.Helper()
	var r map[string]any
	cc.expect("POST", path, body, 200, &r)
	if r["status"] != "ok" {
		cc.t.Fatalf("POST %s: %v, want status ok", path, r)
	}
}

// expectError checks a {"error": ...} reply with status.
func (cc *controlConn) expectError(method, path, body string, status int) string {
	cc.t.Helper()
	var r map[string]string
	cc.expect(method, path, body, status, &r)
	if r["error"] == "" || len(r) != 1 {
		cc.t.Fatalf("%s %s: %v, want {\"error\": ...}", method, path, r)
	}
	return r["error"]
}

func keysOf(m map[string]json.RawMessage) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	sort.Strings(k)
	return k
}

// checkKeys fails unless raw (a JSON object) has every key of want.
func checkKeys(t *testing.T, what string, raw json.RawMessage, want ...string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for _, k := range want {
		if _, ok := m[k]; !ok {
			t.Fatalf("%s: no %q in %v", what, k, keysOf(m))
		}
	}
	return m
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !isZombie(string(b))
}

// childPIDs are the live worker processes of c's master, sorted.
func childPIDs(t *testing.T, c *cluster) []int {
	p := workerPIDs(t, c.cmd.Process.Pid)
	slices.Sort(p)
	return p
}

func statPIDs(st ctlStats) []int {
	var p []int
	for _, w := range st.WorkerStatus {
		p = append(p, w.PID)
	}
	slices.Sort(p)
	return p
}
