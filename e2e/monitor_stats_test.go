package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tockd/tock/master"
)

// TestMonitor_HealthzCorruptShard: /healthz turns 503 naming the shard, the
// file and the offset when a shard cannot be opened, on both transports,
// and 200 again once the file is repaired and a phased restart reopens it.
// ?live=1 answers 200 throughout.
func TestMonitor_HealthzCorruptShard(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, monitorConfig(dir, ""))
	hm := httpMonitor(t, c)
	hm.expect("GET", "/healthz", "", 200, nil)
	cl := dial(t, c.addr)
	writeJobs(t, cl, "hz", 50)
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	path := shardFile(dir, "hz.0")
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(good)
	bad[12+8+3] ^= 0xff
	os.WriteFile(path, bad, 0o600)
	c.start()
	hm = httpMonitor(t, c)
	shard := master.ShardOf("hz.0", 8)
	want := fmt.Sprintf("shard %d: ", shard)
	var h map[string]string
	waitFor(t, 10*time.Second, "healthz 503", func() bool {
		status, b := hm.do("GET", "/healthz", "")
		h = nil
		json.Unmarshal(b, &h)
		return status == 503
	})
	if h["status"] != "unavailable" || !strings.HasPrefix(h["error"], want) || !strings.Contains(h["error"], path) ||
		!strings.Contains(h["error"], "offset 12") || len(h) != 2 {
		t.Fatalf("healthz: %v, want status unavailable and an error naming shard %d, %s and the offset", h, shard, path)
	}
	var hs map[string]string
	unixControl(t, dir).expect("GET", "/healthz", "", 503, &hs)
	if !reflect.DeepEqual(h, hs) {
		t.Fatalf("control socket healthz %v, http %v", hs, h)
	}
	var live map[string]string
	hm.expect("GET", "/healthz?live=1", "", 200, &live)
	hm.expect("GET", "/healthz?ready=1", "", 503, nil)
	if live["status"] != "ok" {
		t.Fatalf("liveness: %v", live)
	}
	// Repair the file; a rollout reopens the shard from it.
	os.WriteFile(path, good, 0o600)
	c.cmd.Process.Signal(syscall.SIGUSR1)
	waitFor(t, 60*time.Second, "healthz 200 after the repair", func() bool {
		status, _ := hm.do("GET", "/healthz", "")
		return status == 200
	})
	h = nil
	hm.expect("GET", "/healthz", "", 200, &h)
	if len(h) != 1 || h["status"] != "ok" {
		t.Fatalf("healthy body: %v", h)
	}
	cl = dial(t, c.addr)
	checkJobs(t, cl, "hz", 50)
}

// statsShape drops what changes between two reads of the tree (heartbeat
// times and figures that move by themselves).
func statsShape(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("stats %q: %v", b, err)
	}
	for _, w := range m["worker_status"].([]any) {
		ws := w.(map[string]any)
		delete(ws, "last_checkin")
		ls := ws["last_status"].(map[string]any)
		for _, k := range []string{"uptime_ns", "rss_bytes", "trigger_lateness"} {
			delete(ls, k)
		}
	}
	return m
}

// TestMonitor_StatsBothTransports: /stats is the same tree on the HTTP
// listener and the control socket, single-line with ?compact=1 and for
// Puma's HTTP/1.0 readers, with Puma's per-worker fields and no nulls in
// them.
func TestMonitor_StatsBothTransports(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, monitorConfig(dir, ""))
	hm := httpMonitor(t, c)
	sock := unixControl(t, dir)
	cl := dial(t, c.addr)
	writeJobs(t, cl, "both", 30)
	waitFor(t, 10*time.Second, "heartbeats with the jobs", func() bool {
		var st ctlStats
		hm.expect("GET", "/stats", "", 200, &st)
		var n int64
		for _, w := range st.WorkerStatus {
			n += w.LastStatus.JobsTotal
		}
		return n == 30
	})
	_, hb := hm.do("GET", "/stats", "")
	_, sb := sock.do("GET", "/stats", "")
	if a, b := statsShape(t, hb), statsShape(t, sb); !reflect.DeepEqual(a, b) {
		t.Fatalf("/stats differs between transports:\nhttp:    %v\nsocket: %v", a, b)
	}
	for _, tr := range []*controlConn{hm, sock} {
		_, pretty := tr.do("GET", "/stats", "")
		_, compact := tr.do("GET", "/stats?compact=1", "")
		if bytes.Count(pretty, []byte("\n")) < 10 || bytes.Count(compact, []byte("\n")) != 1 || !bytes.HasSuffix(compact, []byte("}\n")) {
			t.Fatalf("%s: pretty has %d lines, compact %q", tr.base, bytes.Count(pretty, []byte("\n")), compact)
		}
	}
	// Puma's readers: raw HTTP/1.0, body = the last line of the reply.
	conn, err := net.Dial("tcp", c.httpAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /stats HTTP/1.0\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	raw, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	var puma struct {
		StartedAt     *string `json:"started_at"`
		Phase         *int    `json:"phase"`
		Workers       *int    `json:"workers"`
		BootedWorkers *int    `json:"booted_workers"`
		OldWorkers    *int    `json:"old_workers"`
		WorkerStatus  []struct {
			PID         *int    `json:"pid"`
			Phase       *int    `json:"phase"`
			StartedAt   *string `json:"started_at"`
			LastCheckin *string `json:"last_checkin"`
			LastStatus  map[string]any
		} `json:"worker_status"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &puma); err != nil {
		t.Fatalf("last line of an HTTP/1.0 /stats reply is not the tree: %v\n%s", err, raw)
	}
	if puma.StartedAt == nil || puma.Phase == nil || puma.Workers == nil || puma.BootedWorkers == nil || puma.OldWorkers == nil || len(puma.WorkerStatus) != 2 {
		t.Fatalf("Puma's cluster fields: %+v", puma)
	}
	var tree struct {
		WorkerStatus []struct {
			LastStatus map[string]any `json:"last_status"`
		} `json:"worker_status"`
	}
	json.Unmarshal([]byte(lines[len(lines)-1]), &tree)
	for _, w := range tree.WorkerStatus {
		ls := w.LastStatus
		for _, k := range []string{"backlog", "running", "busy_threads", "pool_capacity", "max_threads", "requests_count"} {
			if _, ok := ls[k].(float64); !ok {
				t.Fatalf("last_status.%s = %v, want a number", k, ls[k])
			}
		}
		for k, v := range ls {
			if v == nil {
				t.Fatalf("last_status.%s is null", k)
			}
		}
		if ls["max_threads"] != float64(64) || ls["pool_capacity"] != float64(64)-ls["running"].(float64) ||
			ls["backlog"] != ls["executions_pending"] || ls["busy_threads"] != ls["executions_inflight"] || ls["metrics"] != nil {
			t.Fatalf("Puma fields do not follow tock's: %v", ls)
		}
	}
}

// TestMonitor_PprofAndAuth: /debug/pprof/ only with [http] pprof = true;
// monitoring_auth = "token" asks every endpoint but /healthz for a token.
func TestMonitor_PprofAndAuth(t *testing.T) {
	dir := t.TempDir()
	authPath := filepath.Join(dir, "auth.toml")
	copyAuthFixture(t, authPath)
	cfg := strings.Replace(monitorConfig(dir, "pprof = true\nmonitoring_auth = \"token\"\n"), "[controller]\n",
		fmt.Sprintf("[controller]\nauth_file = %q\n", authPath), 1)
	c := startCluster(t, dir, cfg)
	hm := httpMonitor(t, c)
	for _, p := range []string{"/varz", "/connz", "/stats", "/metrics", "/", "/debug/pprof/"} {
		hm.expectError("GET", p, "", 401)
	}
	hm.expect("GET", "/healthz", "", 200, nil)
	hm.token = "wrong"
	hm.expectError("GET", "/varz", "", 403)
	hm.token = "sk_deploy_a1b2c3"
	hm.expect("GET", "/varz", "", 200, nil)
	status, body := hm.do("GET", "/debug/pprof/", "")
	if status != 200 || !bytes.Contains(body, []byte("goroutine")) {
		t.Fatalf("pprof index: %d %.200s", status, body)
	}
	status, body = hm.do("GET", "/debug/pprof/goroutine?debug=1", "")
	if status != 200 || !bytes.Contains(body, []byte("goroutine profile")) {
		t.Fatalf("pprof goroutine: %d %.200s", status, body)
	}
	if status, _ = hm.do("GET", "/debug/pprof/cmdline", ""); status != 200 {
		t.Fatalf("pprof cmdline: %d", status)
	}
	// Off by default (the other tests' clusters): 404.
	dir2 := t.TempDir()
	c2 := startCluster(t, dir2, monitorConfig(dir2, ""))
	httpMonitor(t, c2).expectError("GET", "/debug/pprof/", "", 404)
}

// TestMonitor_StatusPage: the page at / renders in headless Chromium from
// /stats and /varz, and its numbers are those of /stats.
func TestMonitor_StatusPage(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is needed (Debian package chromium; .ci/install-services.sh installs it)")
	}
	dir := t.TempDir()
	c := startCluster(t, dir, monitorConfig(dir, ""))
	hm := httpMonitor(t, c)
	cl := dial(t, c.addr)
	writeJobs(t, cl, "page", 25)
	cl.conn.Close()
	var st ctlStats
	waitFor(t, 10*time.Second, "heartbeats with the jobs", func() bool {
		hm.expect("GET", "/stats", "", 200, &st)
		var n int64
		for _, w := range st.WorkerStatus {
			n += w.LastStatus.JobsTotal
		}
		return n == 25 && len(connz(t, hm, "?state=closed").Conns) == 1
	})
	profile := t.TempDir()
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+profile, "--virtual-time-budget=5000", "--dump-dom", "http://"+c.httpAddr()+"/")
	var out bytes.Buffer
	cmd.Stdout = &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("chromium: %v", err)
		}
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		t.Fatal("chromium did not finish")
	}
	dom := out.String()
	if !strings.Contains(dom, `data-loaded="1"`) {
		t.Fatalf("the page did not load its data:\n%.2000s", dom)
	}
	wantIn := []string{
		`<div class="value" id="jobs_total">25</div>`,
		fmt.Sprintf(`<div class="value" id="shards">%d</div>`, st.Shards),
		fmt.Sprintf(`<div class="value" id="workers">%d (%d / %d)</div>`, st.Workers, st.BootedWorkers, st.OldWorkers),
		`>healthy<`, `>Client Closed<`,
	}
	for _, w := range st.WorkerStatus {
		wantIn = append(wantIn, fmt.Sprintf(`data-pid="%d"`, w.PID), fmt.Sprintf(`<td class="pid">%d</td>`, w.PID),
			fmt.Sprintf(`<td class="jobs_total">%d</td>`, w.LastStatus.JobsTotal))
	}
	for _, w := range wantIn {
		if !strings.Contains(dom, w) {
			t.Errorf("rendered page lacks %s", w)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
}
