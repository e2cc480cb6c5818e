package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMonitor_ScaleDownKeepsDrainingWorker: a worker removed by a scale
// down is still a process the master tracks while it finishes its
// executions, so /stats lists it (draining) and counts it in workers, and
// /metrics keeps its figures: counters never go backwards while it drains.
func TestMonitor_ScaleDownKeepsDrainingWorker(t *testing.T) {
	dir := t.TempDir()
	cfg := strings.Replace(monitorConfig(dir, ""), "workers = 2\n", "workers = 3\n", 1)
	c := startCluster(t, dir, cfg)
	hm := httpMonitor(t, c)
	ctl := unixControl(t, dir)
	cl := dial(t, c.addr)
	gate := filepath.Join(dir, "gate")
	cl.expect(fmt.Sprintf(`r1 RULE SET rule.blk blk. shell "while [ ! -e %s ]; do sleep 0.05; done"`, gate), "r1 OK")
	for i := range 24 {
		cl.expect(fmt.Sprintf("s%d SET blk.%d 0", i, i), fmt.Sprintf("s%d OK", i))
	}
	waitFor(t, 30*time.Second, "worker 2 running an execution", func() bool {
		for _, w := range ctl.stats().WorkerStatus {
			if w.Index == 2 && w.LastStatus.ExecutionsInflight > 0 {
				return true
			}
		}
		return false
	})
	fsyncs := func() float64 { return scrapeMetrics(t, hm).value("tock_fsync_duration_seconds") }
	before := fsyncs()
	if before <= 0 {
		t.Fatalf("no fsyncs counted before the scale down: %v", before)
	}
	var r map[string]any
	ctl.expect("POST", "/workers", `{"count":2}`, 202, &r)
	var pid2 int
	waitFor(t, 30*time.Second, "worker 2 handed its shards off", func() bool {
		st := ctl.stats()
		for _, w := range st.WorkerStatus {
			if w.Index == 2 {
				pid2 = w.PID
				if w.Draining && len(w.Shards) == 0 {
					return true
				}
			}
		}
		// Gone from /stats while its process still runs its executions.
		return pid2 != 0 && alive(pid2) && len(st.WorkerStatus) == 2
	})
	st := ctl.stats()
	if !alive(pid2) {
		t.Fatalf("worker 2 (pid %d) exited before its executions finished", pid2)
	}
	if st.Workers != 3 || len(st.WorkerStatus) != 3 {
		t.Errorf("while worker 2 drains: workers %d, %d listed, want 3 (draining ones count)", st.Workers, len(st.WorkerStatus))
	}
	if after := fsyncs(); after < before {
		t.Errorf("tock_fsync_duration_seconds count went back from %v to %v while worker 2 drains", before, after)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "2 workers", func() bool {
		st := ctl.stats()
		return st.Workers == 2 && !alive(pid2)
	})
	if after := fsyncs(); after < before {
		t.Errorf("tock_fsync_duration_seconds count went back from %v to %v after worker 2 exited", before, after)
	}
}

// TestMonitor_JobsCountedAcrossPhasedRestart: once a phased restart is
// done, /varz and /stats count every job at once: the new workers report
// the shards they took without waiting for their next heartbeat (here 30 s
// away).
func TestMonitor_JobsCountedAcrossPhasedRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := strings.Replace(monitorConfig(dir, ""), `worker_check_interval = "200ms"`, "worker_check_interval = \"30s\"\nworker_timeout = \"5m\"", 1)
	c := startCluster(t, dir, cfg)
	hm := httpMonitor(t, c)
	ctl := unixControl(t, dir)
	cl := dial(t, c.addr)
	const n = 40
	for i := range n {
		cl.expect(fmt.Sprintf("s%d SET far.%d 4000000000000000000", i, i), fmt.Sprintf("s%d OK", i))
	}
	jobs := func() (varz int64, stats int64) {
		var v struct {
			Jobs struct {
				Total int64 `json:"total"`
			} `json:"jobs"`
		}
		hm.expect("GET", "/varz", "", 200, &v)
		for _, w := range ctl.stats().WorkerStatus {
			stats += w.LastStatus.JobsTotal
		}
		return v.Jobs.Total, stats
	}
	if out, err := runTock(t, "ctl", "--control", "unix://"+controlSocket(dir), "phased-restart", "--wait"); err != nil {
		t.Fatalf("phased-restart: %v\n%s", err, out)
	}
	if v, s := jobs(); v != n || s != n {
		t.Errorf("right after the phased restart: /varz jobs.total %d, /stats sum of jobs_total %d, want %d", v, s, n)
	}
}
