package master

import (
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/protocol"
)

// The /metrics exposition (Prometheus text, or OpenMetrics when asked),
// built at scrape time from the master's state and the workers' latest
// heartbeats: nothing asks a worker anything during a scrape.
// docs/monitoring.md lists every metric.

// metricsCollector turns the cluster's state into metrics on each scrape.
type metricsCollector struct{ m *Master }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("tock_"+name, help, labels, nil)
}

var (
	descBuild          = desc("build_info", "Version of the tock binary (always 1).", "version", "goversion")
	descRequests       = desc("requests_total", "Client requests answered, by command and result (ok or error).", "command", "result")
	descConnsOpen      = desc("connections_open", "Open client connections.")
	descConnsTotal     = desc("connections_total", "Client connections accepted since start (refused ones included).")
	descConnsClosed    = desc("connections_closed_total", "Client connections closed, by reason.", "reason")
	descSlowConsumers  = desc("slow_consumers_total", "Clients disconnected for not reading their replies.")
	descInMsgs         = desc("request_lines_total", "Request lines read from clients.")
	descOutMsgs        = desc("reply_lines_total", "Reply lines written to clients.")
	descInBytes        = desc("received_bytes_total", "Bytes of request lines read from clients.")
	descOutBytes       = desc("sent_bytes_total", "Bytes of replies written to clients.")
	descJobs           = desc("jobs", "Jobs by status, from the workers' heartbeats.", "status")
	descRules          = desc("rules", "Rules in the rule set.")
	descExecPending    = desc("executions_pending", "Triggered executions waiting for a free slot.")
	descExecInflight   = desc("executions_inflight", "Executions running now.")
	descExecTotal      = desc("executions_total", "Finished executions by runner and result (success or failure).", "runner", "result")
	descExecDuration   = desc("execution_duration_seconds", "Duration of finished executions.")
	descLateness       = desc("trigger_lateness_seconds", "Fire time minus scheduled time of triggered jobs.")
	descFsync          = desc("fsync_duration_seconds", "Duration of shard log fsyncs.")
	descCommitBatch    = desc("group_commit_batch_size", "Acknowledgements covered by one group commit.")
	descRestarts       = desc("worker_restarts_total", "Worker replacements by reason (crash, hang, boot_failure).", "reason")
	descPhase          = desc("phase", "Restart generation: each phased restart adds one.")
	descWorkers        = desc("workers", "Worker processes the master tracks (booting and draining ones included).")
	descWorkersBooted  = desc("workers_booted", "Worker processes that reported ready.")
	descRestarting     = desc("phased_restart_in_progress", "1 while a phased restart or scaling runs.")
	descHeartbeatAge   = desc("worker_heartbeat_age_seconds", "Time since each worker's latest heartbeat.", "worker")
	descWorkerRSS      = desc("worker_resident_memory_bytes", "Resident memory of each worker, from its heartbeat.", "worker")
	descHeld           = desc("held_requests", "Requests held for a shard in handoff or recovery.")
	descShardLogBytes  = desc("shard_log_bytes", "Size of each shard's logfile.", "shard")
	descShardCompacted = desc("shard_compactions_total", "Compactions of each shard by result (success or failure).", "shard", "result")
	descHTTPRequests   = desc("http_requests_total", "Requests to the HTTP listener by route.", "route")
)

func (c metricsCollector) Describe(chan<- *prometheus.Desc) {} // unchecked: the label sets vary

func (c metricsCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(descBuild, 1, Version, runtime.Version())

	cf := m.connFigures()
	for op := range numOpSlots {
		name := "invalid"
		if op > 0 {
			name = strings.ToLower(strings.ReplaceAll(protocol.Op(op).String(), " ", "_"))
		}
		counter(descRequests, float64(cf.results[op][0]), name, "ok")
		counter(descRequests, float64(cf.results[op][1]), name, "error")
	}
	gauge(descConnsOpen, float64(m.connections.Load()))
	counter(descConnsTotal, float64(m.conns.total()))
	for r := reasonClientClosed; r < numReasons; r++ {
		counter(descConnsClosed, float64(m.connTotals.closed[r].Load()), reasonLabel(r))
	}
	counter(descSlowConsumers, float64(m.slowConsumers.Load()))
	counter(descInMsgs, float64(cf.inMsgs))
	counter(descOutMsgs, float64(cf.outMsgs))
	counter(descInBytes, float64(cf.inBytes))
	counter(descOutBytes, float64(cf.outBytes))

	st := m.Stats()
	var jobs JobCounts
	var pending, inflight int64
	now := time.Now()
	for _, w := range st.WorkerStatus {
		ls := w.LastStatus
		jobs.Total += ls.JobsTotal
		jobs.Planned += ls.JobsPlanned
		jobs.Triggered += ls.JobsTriggered
		jobs.Executed += ls.JobsExecuted
		jobs.Failed += ls.JobsFailed
		pending += ls.ExecutionsPending
		inflight += ls.ExecutionsInflight
	}
	gauge(descJobs, float64(jobs.Planned), "planned")
	gauge(descJobs, float64(jobs.Triggered), "triggered")
	gauge(descJobs, float64(jobs.Executed), "executed")
	gauge(descJobs, float64(jobs.Failed), "failed")
	gauge(descRules, float64(m.rules.count()))
	gauge(descExecPending, float64(pending))
	gauge(descExecInflight, float64(inflight))
	gauge(descPhase, float64(st.Phase))
	gauge(descWorkers, float64(st.Workers))
	gauge(descWorkersBooted, float64(st.BootedWorkers))
	gauge(descRestarting, boolFloat(st.PhasedRestart.InProgress))
	gauge(descHeld, float64(st.HeldRequests))
	// One series per worker index: the slot's current process.
	seen := map[int]bool{}
	for _, w := range st.WorkerStatus {
		if seen[w.Index] || w.Draining {
			continue
		}
		seen[w.Index] = true
		idx := strconv.Itoa(w.Index)
		age := 0.0
		if !w.LastCheckin.IsZero() {
			age = now.Sub(w.LastCheckin).Seconds()
		}
		gauge(descHeartbeatAge, age, idx)
		gauge(descWorkerRSS, float64(w.LastStatus.RSSBytes), idx)
	}
	counter(descRestarts, float64(m.restarts.crash.Load()), "crash")
	counter(descRestarts, float64(m.restarts.hang.Load()), "hang")
	counter(descRestarts, float64(m.restarts.bootFailure.Load()), "boot_failure")

	wm := m.clusterMetrics()
	for _, e := range wm.Executions {
		counter(descExecTotal, float64(e.Count), e.Runner, e.Result)
	}
	histogram(ch, descExecDuration, wm.ExecutionSeconds, ipc.ExecutionBounds)
	histogram(ch, descLateness, wm.TriggerLatenessSeconds, ipc.LatenessBounds)
	histogram(ch, descFsync, wm.FsyncSeconds, ipc.FsyncBounds)
	histogram(ch, descCommitBatch, wm.CommitBatch, ipc.BatchBounds)
	for _, s := range wm.Shards {
		id := strconv.Itoa(s.Shard)
		gauge(descShardLogBytes, float64(s.LogBytes), id)
		counter(descShardCompacted, float64(s.Compactions), id, "success")
		counter(descShardCompacted, float64(s.CompactionFailures), id, "failure")
	}
	for route, n := range m.httpMux.RequestCounts() {
		counter(descHTTPRequests, float64(n), route)
	}
}

// histogram exports an ipc.Histogram (per-bucket counts) as a Prometheus
// one (cumulative buckets).
func histogram(ch chan<- prometheus.Metric, d *prometheus.Desc, h ipc.Histogram, bounds []float64) {
	buckets := make(map[float64]uint64, len(bounds))
	var cum uint64
	for i, b := range bounds {
		if i < len(h.Counts) {
			cum += h.Counts[i]
		}
		buckets[b] = cum
	}
	ch <- prometheus.MustNewConstHistogram(d, h.Count(), h.Sum, buckets)
}

// reasonLabel is a close reason as a label value: "Client Closed" →
// "client_closed".
func reasonLabel(r closeReason) string {
	return strings.ToLower(strings.ReplaceAll(r.String(), " ", "_"))
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// newMetricsHandler builds the registry: tock's collector, the handoff
// hold histogram observed by the router, and the Go runtime and process
// collectors of the master.
func (m *Master) newMetricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	hold := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tock_handoff_hold_seconds",
		Help:    "Time requests were held while their shard moved or its worker was replaced.",
		Buckets: ipc.LatenessBounds,
	})
	m.router.HoldObserver = func(d time.Duration) { hold.Observe(d.Seconds()) }
	reg.MustRegister(metricsCollector{m}, hold,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		ErrorHandling:     promhttp.ContinueOnError,
		ErrorLog:          hclogPrinter{m},
	})
}

// hclogPrinter routes promhttp's errors into the master's log.
type hclogPrinter struct{ m *Master }

func (p hclogPrinter) Println(v ...any) { p.m.log.Error("metrics", "error", v) }

// serveMetrics is GET /metrics.
func (m *Master) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	m.metricsHandler.ServeHTTP(w, r)
	return nil
}
