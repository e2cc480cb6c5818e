package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape is one /metrics exposition, parsed.
type scrape struct {
	raw      []byte
	families map[string]*dto.MetricFamily
}

func scrapeMetrics(t *testing.T, hm *controlConn) scrape {
	t.Helper()
	status, raw := hm.do("GET", "/metrics", "")
	if status != 200 {
		t.Fatalf("/metrics: %d %s", status, raw)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, raw)
	}
	return scrape{raw: raw, families: fams}
}

// value is the value of the series of name whose labels include labels
// ("k=v" pairs); -1 when absent.
func (s scrape) value(name string, labels ...string) float64 {
	f := s.families[name]
	if f == nil {
		return -1
	}
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		ok := true
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
			if have[k] != v {
				ok = false
			}
		}
		if !ok {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
	}
	return -1
}

// promtoolCheck runs `promtool check metrics` on an exposition: it must
// exit 0 and say nothing.
func promtoolCheck(t *testing.T, raw []byte) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is needed (Debian package prometheus; .ci/install-services.sh installs it)")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestMonitor_Metrics: /metrics moves as jobs are set, executed and fail,
// as connections close and as a worker is killed; every family has HELP;
// promtool finds nothing; OpenMetrics is served when asked.
func TestMonitor_Metrics(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, monitorConfig(dir, ""))
	hm := httpMonitor(t, c)
	s := scrapeMetrics(t, hm)
	promtoolCheck(t, s.raw)
	for name, f := range s.families {
		if f.GetHelp() == "" {
			t.Errorf("%s has no HELP", name)
		}
	}
	for _, name := range []string{"tock_requests_total", "tock_connections_open", "tock_connections_total",
		"tock_connections_closed_total", "tock_jobs", "tock_rules", "tock_executions_pending", "tock_executions_inflight",
		"tock_execution_duration_seconds", "tock_trigger_lateness_seconds", "tock_worker_restarts_total", "tock_phase",
		"tock_worker_heartbeat_age_seconds", "tock_worker_resident_memory_bytes", "tock_held_requests",
		"tock_handoff_hold_seconds", "tock_shard_log_bytes", "tock_shard_compactions_total",
		"tock_fsync_duration_seconds", "tock_group_commit_batch_size", "tock_slow_consumers_total"} {
		if s.families[name] == nil {
			t.Errorf("metric %s missing", name)
		}
	}
	if s.value("tock_phase") != 0 || s.value("tock_worker_restarts_total", "reason=crash") != 0 {
		t.Fatalf("fresh cluster: phase %v restarts %v", s.value("tock_phase"), s.value("tock_worker_restarts_total", "reason=crash"))
	}

	cl := dial(t, c.addr)
	cl.expect("r1 RULE SET ok m.ok. shell true", "r1 OK")
	cl.expect("r2 RULE SET bad m.bad. shell false", "r2 OK")
	for i := range 5 {
		cl.expect(fmt.Sprintf("a%d SET m.later.%d 4102444800000000000", i, i), fmt.Sprintf("a%d OK", i))
	}
	for i := range 3 {
		cl.expect(fmt.Sprintf("b%d SET m.ok.%d 1", i, i), fmt.Sprintf("b%d OK", i))
	}
	for i := range 2 {
		cl.expect(fmt.Sprintf("c%d SET m.bad.%d 1", i, i), fmt.Sprintf("c%d OK", i))
	}
	cl.do("e1 GET m.none")
	waitFor(t, 20*time.Second, "metrics with the jobs and executions", func() bool {
		s = scrapeMetrics(t, hm)
		return s.value("tock_jobs", "status=planned") == 5 && s.value("tock_jobs", "status=executed") == 3 &&
			s.value("tock_jobs", "status=failed") == 2 &&
			s.value("tock_executions_total", "runner=shell", "result=success") == 3 &&
			s.value("tock_executions_total", "runner=shell", "result=failure") == 2
	})
	for _, ck := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"tock_requests_total", []string{"command=set", "result=ok"}, 10},
		{"tock_requests_total", []string{"command=rule_set", "result=ok"}, 2},
		{"tock_requests_total", []string{"command=get", "result=error"}, 1},
		{"tock_rules", nil, 2},
		{"tock_connections_open", nil, 1},
		{"tock_connections_total", nil, 1},
		{"tock_execution_duration_seconds", nil, 5},
		{"tock_trigger_lateness_seconds", nil, 5},
		{"tock_group_commit_batch_size", nil, -2}, // > 0, checked below
	} {
		got := s.value(ck.name, ck.labels...)
		if ck.want == -2 {
			if got <= 0 {
				t.Errorf("%s: %v, want > 0", ck.name, got)
			}
			continue
		}
		if got != ck.want {
			t.Errorf("%s%v = %v, want %v", ck.name, ck.labels, got, ck.want)
		}
	}
	if s.value("tock_fsync_duration_seconds") <= 0 || s.value("tock_shard_log_bytes", "shard=0") <= 0 {
		t.Errorf("fsyncs %v, shard 0 log bytes %v", s.value("tock_fsync_duration_seconds"), s.value("tock_shard_log_bytes", "shard=0"))
	}
	promtoolCheck(t, s.raw)

	// A worker is killed: a crash restart; the cluster's counters keep
	// what the dead worker had counted.
	before := s
	pids := workerPIDs(t, c.cmd.Process.Pid)
	syscall.Kill(pids[0], syscall.SIGKILL)
	waitFor(t, 30*time.Second, "the replacement booted", func() bool {
		s = scrapeMetrics(t, hm)
		return s.value("tock_worker_restarts_total", "reason=crash") == 1 && s.value("tock_workers_booted") == 2 &&
			s.value("tock_jobs", "status=planned") == 5
	})
	for _, k := range [][]string{{"tock_executions_total", "runner=shell", "result=success"},
		{"tock_executions_total", "runner=shell", "result=failure"}, {"tock_execution_duration_seconds"},
		{"tock_trigger_lateness_seconds"}, {"tock_fsync_duration_seconds"}} {
		if s.value(k[0], k[1:]...) < before.value(k[0], k[1:]...) {
			t.Errorf("%v went back after the crash: %v < %v", k, s.value(k[0], k[1:]...), before.value(k[0], k[1:]...))
		}
	}
	cl.conn.Close()
	waitFor(t, 10*time.Second, "the closed connection", func() bool {
		s = scrapeMetrics(t, hm)
		return s.value("tock_connections_closed_total", "reason=client_closed") == 1 && s.value("tock_connections_open") == 0
	})
	if s.value("tock_requests_total", "command=set", "result=ok") != 10 {
		t.Errorf("requests of a closed connection lost: %v", s.value("tock_requests_total", "command=set", "result=ok"))
	}
	promtoolCheck(t, s.raw)

	// OpenMetrics on request.
	req := hm.base + "/metrics"
	hreq, _ := newRequest("GET", req)
	hreq.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := hm.hc.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Fatalf("OpenMetrics asked, got %q", ct)
	}
}
