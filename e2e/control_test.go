package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestControl_StatsTree: /stats has the shape and values of docs/stats.md.
func TestControl_StatsTree(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	for i := range 40 {
		cl.expect(fmt.Sprintf("r%d SET stats.job.%d 4102444800000000000", i, i), fmt.Sprintf("r%d OK", i))
	}
	body, _ := cl.list("s1", "s1 STAT")
	var statTotal int64
	var err error
	for _, l := range body {
		if f := strings.Fields(l); len(f) == 3 && f[1] == "jobs_total" {
			statTotal, err = strconv.ParseInt(f[2], 10, 64)
		}
	}
	if err != nil || statTotal != 40 {
		t.Fatalf("STAT jobs_total %d (%v), want 40", statTotal, err)
	}
	cc := unixControl(t, dir)
	var st ctlStats
	// Heartbeats lag by worker_check_interval.
	waitFor(t, 10*time.Second, "heartbeats with every job", func() bool {
		st = cc.stats()
		var sum int64
		for _, w := range st.WorkerStatus {
			sum += w.LastStatus.JobsTotal
		}
		return sum == statTotal
	})
	if st.Workers != 2 || st.BootedWorkers != 2 || st.OldWorkers != 0 || st.Shards != 8 || len(st.WorkerStatus) != 2 {
		t.Fatalf("counts: %+v", st)
	}
	if st.PID != c.cmd.Process.Pid || st.Version == "" || time.Since(st.StartedAt) > time.Minute {
		t.Fatalf("identity: pid %d (want %d) version %q started %s", st.PID, c.cmd.Process.Pid, st.Version, st.StartedAt)
	}
	if st.RequestsCount < 41 || st.Connections != 1 {
		t.Fatalf("requests_count %d connections %d", st.RequestsCount, st.Connections)
	}
	if pr := st.PhasedRestart; pr.InProgress || pr.StartedAt != nil || pr.LastError != nil {
		t.Fatalf("phased_restart: %+v", pr)
	}
	if got, want := statPIDs(st), childPIDs(t, c); !slices.Equal(got, want) {
		t.Fatalf("worker pids %v, processes %v", got, want)
	}
	owner := map[int]int{}
	for i, w := range st.WorkerStatus {
		if w.Index != i || !w.Booted || !alive(w.PID) || w.Restarts != 0 {
			t.Fatalf("worker %d: %+v", i, w)
		}
		if age := time.Since(w.LastCheckin); age < 0 || age > 5*time.Second {
			t.Fatalf("worker %d: last_checkin %s ago", i, age)
		}
		s := w.LastStatus
		if s.Persistence != "logfile" || s.Framerate != 200 || s.RSSBytes <= 0 || s.UptimeNs <= 0 || s.JobsPlanned != s.JobsTotal {
			t.Fatalf("worker %d last_status: %+v", i, s)
		}
		for _, sh := range w.Shards {
			if prev, dup := owner[sh]; dup {
				t.Fatalf("shard %d owned by workers %d and %d", sh, prev, i)
			}
			owner[sh] = i
		}
	}
	for sh := range 8 {
		if _, ok := owner[sh]; !ok {
			t.Fatalf("shard %d has no owner: %v", sh, owner)
		}
	}
	if len(owner) != 8 {
		t.Fatalf("shards %v, want exactly 0..7", owner)
	}
	checkStatsKeys(t, cc)
}

// checkStatsKeys checks every field name of docs/stats.md on the raw JSON.
func checkStatsKeys(t *testing.T, cc *controlConn) {
	t.Helper()
	_, b := cc.do("GET", "/stats", "")
	top := checkKeys(t, "stats", b, "started_at", "version", "pid", "workers", "phase", "booted_workers",
		"old_workers", "shards", "connections", "requests_count", "phased_restart", "worker_status")
	checkKeys(t, "phased_restart", top["phased_restart"], "in_progress", "started_at", "last_error")
	var workers []json.RawMessage
	if err := json.Unmarshal(top["worker_status"], &workers); err != nil {
		t.Fatal(err)
	}
	for i, w := range workers {
		m := checkKeys(t, fmt.Sprintf("worker_status[%d]", i), w, "started_at", "pid", "index", "phase", "booted",
			"last_checkin", "restarts", "shards", "last_status")
		checkKeys(t, fmt.Sprintf("worker_status[%d].last_status", i), m["last_status"], "uptime_ns", "jobs_total",
			"jobs_planned", "jobs_triggered", "jobs_executed", "jobs_failed", "executions_pending",
			"executions_inflight", "persistence", "compression", "framerate", "requests_count", "rss_bytes")
	}
}

// TestControl_QueriesAndPaths: /healthz, /gc-stats, /backtraces, the
// socket's mode, and 404/405 (docs/operations.md).
func TestControl_QueriesAndPaths(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	fi, err := os.Stat(controlSocket(dir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control.sock mode %s, want a socket with 0600", fi.Mode())
	}
	// The peer check (SO_PEERCRED) lets this process in: same uid. Another
	// uid is refused; master/control_test.go covers that path.
	cc := unixControl(t, dir)
	var h map[string]string
	cc.expect("GET", "/healthz", "", 200, &h)
	if h["status"] != "ok" {
		t.Fatalf("healthz: %v", h)
	}
	var gc struct {
		Master  map[string]any `json:"master"`
		Workers []struct {
			Index  int            `json:"index"`
			PID    int            `json:"pid"`
			Result map[string]any `json:"result"`
			Error  string         `json:"error"`
		} `json:"workers"`
	}
	cc.expect("GET", "/gc-stats", "", 200, &gc)
	if gc.Master["pid"] != float64(c.cmd.Process.Pid) || gc.Master["heap_alloc"].(float64) <= 0 || len(gc.Workers) != 2 {
		t.Fatalf("gc-stats: %+v", gc)
	}
	for _, w := range gc.Workers {
		if w.Error != "" || w.Result["pid"] != float64(w.PID) || w.Result["heap_alloc"].(float64) <= 0 {
			t.Fatalf("gc-stats worker: %+v", w)
		}
	}
	var bt struct {
		Master struct {
			PID        int    `json:"pid"`
			Goroutines string `json:"goroutines"`
		} `json:"master"`
		Workers []struct {
			PID    int `json:"pid"`
			Result struct {
				Goroutines string `json:"goroutines"`
			} `json:"result"`
		} `json:"workers"`
	}
	cc.expect("GET", "/backtraces", "", 200, &bt)
	if bt.Master.PID != c.cmd.Process.Pid || !strings.Contains(bt.Master.Goroutines, "goroutine ") || len(bt.Workers) != 2 {
		t.Fatalf("backtraces: master pid %d, %d workers", bt.Master.PID, len(bt.Workers))
	}
	for _, w := range bt.Workers {
		if !strings.Contains(w.Result.Goroutines, "goroutine ") {
			t.Fatalf("backtraces of worker %d: %q", w.PID, w.Result.Goroutines)
		}
	}
	cc.expectError("GET", "/nope", "", 404)
	cc.expectError("GET", "/stats/x", "", 404)
	// The Puma actions take GET too (TestPumactl); these two do not.
	for _, p := range []string{"/workers", "/compact"} {
		code, _ := cc.do("GET", p, "")
		if code != 405 {
			t.Fatalf("GET %s: %d, want 405", p, code)
		}
	}
	req, _ := http.NewRequest("POST", cc.base+"/stats", nil)
	resp, err := cc.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET" {
		t.Fatalf("POST /stats: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	for _, body := range []string{"", "{}", `{"delta":0}`, `{"count":0}`, `{"delta":-2}`, `{"count":2,"delta":1}`, `{"n":1}`, "nope"} {
		cc.expectError("POST", "/workers", body, 400)
	}
}

var controlTCPRE = regexp.MustCompile(`control server listening: addr=(127\.0\.0\.1:\d+)`)

// TestControl_TokenOnTCP: control.url needs the token on every request,
// by header or query, and then on the socket too (docs/configuration.md, docs/operations.md).
func TestControl_TokenOnTCP(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, "[control]\nurl = \"tcp://127.0.0.1:0\"\ntoken = \"s3cret\"\n"))
	m := controlTCPRE.FindStringSubmatch(c.logs.String())
	if m == nil {
		t.Fatalf("no TCP control listener in the logs:\n%s", tail(c.logs.String(), 30))
	}
	tcp := &controlConn{t: t, hc: &http.Client{Timeout: 30 * time.Second}, base: "http://" + m[1]}
	if msg := tcp.expectError("GET", "/stats", "", 401); !strings.HasPrefix(msg, "unauthorized") {
		t.Fatalf("401 reply %q", msg)
	}
	if msg := tcp.expectError("GET", "/stats?token=wrong", "", 403); !strings.HasPrefix(msg, "forbidden") {
		t.Fatalf("403 reply %q", msg)
	}
	tcp.expectError("POST", "/stop", "", 401)
	tcp.expectError("GET", "/stop", "", 401)
	tcp.expect("GET", "/stats?token=s3cret", "", 200, nil)
	tcp.token = "wrong"
	tcp.expectError("GET", "/stats", "", 403)
	tcp.token = "s3cret"
	if st := tcp.stats(); st.Workers != 2 {
		t.Fatalf("stats over TCP: %+v", st)
	}
	sock := unixControl(t, dir)
	sock.expectError("GET", "/stats", "", 401)
	sock.token = "s3cret"
	sock.expect("GET", "/healthz", "", 200, nil)
}

// TestControl_Actions: /compact, /workers and /phased-restart act and
// answer 200 {"status":"ok"}; a second rollout meanwhile is 409.
func TestControl_Actions(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	cl.expect("r1 SET act.one 4102444800000000000", "r1 OK")
	cc := unixControl(t, dir)
	var comp struct {
		Status  string `json:"status"`
		Workers []struct {
			Error string `json:"error"`
		} `json:"workers"`
	}
	cc.expect("POST", "/compact", "", 200, &comp)
	if comp.Status != "ok" || len(comp.Workers) != 2 || comp.Workers[0].Error != "" || comp.Workers[1].Error != "" {
		t.Fatalf("compact: %+v", comp)
	}
	settled := func(n int) func() bool {
		return func() bool {
			st := cc.stats()
			return st.Workers == n && st.BootedWorkers == n && !st.PhasedRestart.InProgress && len(childPIDs(t, c)) == n
		}
	}
	cc.expectOK("/workers", `{"delta":1}`)
	waitFor(t, 30*time.Second, "3 workers", settled(3))
	cc.expectOK("/workers", `{"count":2}`)
	waitFor(t, 30*time.Second, "2 workers", settled(2))
	before := cc.stats()
	cc.expectOK("/phased-restart", "")
	if msg := cc.expectError("POST", "/phased-restart", "", 409); !strings.Contains(msg, "in progress") {
		t.Fatalf("second phased restart: %q", msg)
	}
	var after ctlStats
	waitFor(t, 60*time.Second, "phase to go up", func() bool {
		after = cc.stats()
		return after.Phase == before.Phase+1 && !after.PhasedRestart.InProgress && after.OldWorkers == 0 &&
			len(childPIDs(t, c)) == 2
	})
	if after.PhasedRestart.LastError != nil || after.Workers != 2 {
		t.Fatalf("after the rollout: %+v", after)
	}
	for _, pid := range statPIDs(after) {
		if slices.Contains(statPIDs(before), pid) {
			t.Fatalf("worker pid %d survived the phased restart (before %v after %v)", pid, statPIDs(before), statPIDs(after))
		}
	}
	if got := childPIDs(t, c); !slices.Equal(got, statPIDs(after)) {
		t.Fatalf("processes %v, stats %v", got, statPIDs(after))
	}
	for _, w := range after.WorkerStatus {
		if w.Phase != after.Phase {
			t.Fatalf("worker %d in phase %d, master in %d", w.Index, w.Phase, after.Phase)
		}
	}
	cl.expect("r2 GET act.one", "r2 OK planned 4102444800000000000")
}

// waitExit waits for the master to exit and returns its exit error.
func waitExit(t *testing.T, c *cluster, d time.Duration) error {
	t.Helper()
	select {
	case <-c.exited:
		return c.exitErr
	case <-time.After(d):
		t.Fatalf("tock still running after %s\n%s", d, tail(c.logs.String(), 30))
		return nil
	}
}

// TestControl_Stop: POST /stop answers, then tock stops gracefully, exits
// 0 and removes the socket file.
func TestControl_Stop(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	workers := childPIDs(t, c)
	unixControl(t, dir).expectOK("/stop", "")
	if err := waitExit(t, c, 60*time.Second); err != nil {
		t.Fatalf("exit after /stop: %v", err)
	}
	if _, err := os.Lstat(controlSocket(dir)); !os.IsNotExist(err) {
		t.Fatalf("control.sock left behind after a stop: %v", err)
	}
	waitFor(t, 10*time.Second, "workers gone", func() bool {
		return !slices.ContainsFunc(workers, alive)
	})
}

// TestControl_Halt: POST /halt answers, then tock exits at once.
func TestControl_Halt(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	workers := childPIDs(t, c)
	unixControl(t, dir).expectOK("/halt", "")
	if err := waitExit(t, c, 10*time.Second); err != nil {
		t.Fatalf("exit after /halt: %v", err)
	}
	waitFor(t, 10*time.Second, "workers gone", func() bool {
		return !slices.ContainsFunc(workers, alive)
	})
	if !strings.Contains(c.logs.String(), "halted") {
		t.Fatalf("no halt in the logs:\n%s", tail(c.logs.String(), 20))
	}
}

// TestControl_Restart: POST /restart re-executes the master in place (same
// pid) and the control socket is served again.
func TestControl_Restart(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	cl.expect("r1 SET restart.job 4102444800000000000", "r1 OK")
	cc := unixControl(t, dir)
	before := cc.stats()
	cc.expectOK("/restart", "")
	waitFor(t, 60*time.Second, "the restarted master", func() bool {
		select {
		case <-c.exited:
			t.Fatalf("tock exited on restart: %v\n%s", c.exitErr, tail(c.logs.String(), 30))
		default:
		}
		return bytes.Count([]byte(c.logs.String()), []byte("tock is ready")) == 2
	})
	var after ctlStats
	waitFor(t, 30*time.Second, "stats of the new master", func() bool {
		code, b := cc.do("GET", "/stats", "")
		return code == 200 && json.Unmarshal(b, &after) == nil && after.BootedWorkers == 2
	})
	if after.PID != before.PID || !after.StartedAt.After(before.StartedAt) {
		t.Fatalf("restart: pid %d→%d started %s→%s", before.PID, after.PID, before.StartedAt, after.StartedAt)
	}
	cl2 := dial(t, c.addr)
	cl2.expect("r2 GET restart.job", "r2 OK planned 4102444800000000000")
	if err := c.stop(); err != nil {
		t.Fatalf("stop after restart: %v", err)
	}
	if _, err := os.Lstat(controlSocket(dir)); !os.IsNotExist(err) {
		t.Fatalf("control.sock left behind: %v", err)
	}
}

// TestControl_SecondMasterRefused: a second tock on the same data dir finds
// the live control socket and refuses to run; the first keeps serving.
func TestControl_SecondMasterRefused(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tockBin, "serve", "-c", c.cfgPath).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another tock is running on "+controlSocket(dir)) {
		t.Fatalf("second tock: %v\n%s", err, out)
	}
	if st := unixControl(t, dir).stats(); st.PID != c.cmd.Process.Pid || st.BootedWorkers != 2 {
		t.Fatalf("first tock after the refusal: %+v", st)
	}
}
