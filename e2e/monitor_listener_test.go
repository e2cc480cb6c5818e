package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMonitor_Listener: the HTTP listener answers JSON readable from any
// origin, 404s unknown paths and 405s wrong methods with Allow.
func TestMonitor_Listener(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, monitorConfig(dir, ""))
	hm := httpMonitor(t, c)
	resp, err := hm.hc.Get(hm.base + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /stats: %d %v", resp.StatusCode, resp.Header)
	}
	if msg := hm.expectError("GET", "/nope", "", 404); !strings.Contains(msg, "/nope") {
		t.Fatalf("404 message %q", msg)
	}
	hm.expectError("GET", "/stats/", "", 404)
	req, _ := http.NewRequest("POST", hm.base+"/stats", nil)
	resp, err = hm.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || !strings.Contains(resp.Header.Get("Allow"), "GET") {
		t.Fatalf("POST /stats: %d Allow=%q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// TestMonitor_BusyPort: a second tock asking for a bound HTTP address
// fails at startup with an error naming the address.
func TestMonitor_BusyPort(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, monitorConfig(dir, ""))
	addr := c.httpAddr()
	dir2 := t.TempDir()
	cfg := strings.Replace(clusterConfig(dir2, ""), "[http]\nlisten = \"\"", "[http]\nlisten = \""+addr+"\"", 1)
	path := filepath.Join(dir2, "tock.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tockBin, "serve", "-c", path).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "http listen on "+addr) || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("second tock on a busy http port: %v\n%s", err, out)
	}
}

// TestMonitor_ListenerSurvivesRestart: SIGUSR2 hands the HTTP socket to
// the new master: same address, and it answers.
func TestMonitor_ListenerSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, monitorConfig(dir, ""))
	addr := c.httpAddr()
	hm := httpMonitor(t, c)
	pid := c.cmd.Process.Pid
	before := hm.stats()
	c.cmd.Process.Signal(syscall.SIGUSR2)
	waitFor(t, 60*time.Second, "second master ready", func() bool { return len(c.httpAddrs()) >= 2 })
	if got := c.httpAddr(); got != addr {
		t.Fatalf("http address after restart %s, want %s", got, addr)
	}
	hm.hc.Transport.(*http.Transport).CloseIdleConnections()
	after := hm.stats()
	if after.PID != pid || !after.StartedAt.After(before.StartedAt) {
		t.Fatalf("stats after restart: pid %d (want %d, the same process re-executed), started %s (before %s)",
			after.PID, pid, after.StartedAt, before.StartedAt)
	}
}
