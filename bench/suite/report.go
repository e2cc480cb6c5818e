package suite

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/tockd/tock/bench"
)

// Measurement is one measured run of one target at one shape.
type Measurement struct {
	Target     string  `json:"target"`
	Shape      string  `json:"shape"`
	Rep        int     `json:"rep"`
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	DurationNs int64   `json:"duration_ns"`
	Throughput float64 `json:"req_per_s"`
	// ServerCPUNs is the CPU time (user + system, every thread of every
	// process of the server, a tock master's workers included) used during
	// the run.
	ServerCPUNs      int64   `json:"server_cpu_ns"`
	CoreUSPerRequest float64 `json:"server_core_us_per_request"`
	P50Ns            int64   `json:"p50_ns"`
	P99Ns            int64   `json:"p99_ns"`
	Error            string  `json:"error,omitempty"`

	hist *bench.Histogram
}

func (m *Measurement) fill(res bench.Result, cpu time.Duration) {
	m.Requests, m.Errors = res.Requests, res.Errors
	m.DurationNs = res.Duration.Nanoseconds()
	m.Throughput = res.Throughput
	m.ServerCPUNs = cpu.Nanoseconds()
	if res.Requests > 0 {
		m.CoreUSPerRequest = float64(cpu.Nanoseconds()) / 1e3 / float64(res.Requests)
	}
	m.P50Ns, m.P99Ns = res.P50.Nanoseconds(), res.P99.Nanoseconds()
	m.hist = res.Hist
}

// Row is the table's line for one target at one shape.
type Row struct {
	Target string `json:"target"`
	Label  string `json:"label"`
	Family string `json:"family"`
	Shape  string `json:"shape"`
	// Runs is the number of measured runs without error the figures are
	// from; Failed holds the first error of the others.
	Runs   int    `json:"runs"`
	Failed string `json:"failed,omitempty"`
	// Throughput is the median over the runs, req/s.
	Throughput float64 `json:"median_req_per_s"`
	// XEcho is Throughput ÷ echo's Throughput at the same shape in the same
	// suite run (0 when echo has no figure).
	XEcho float64 `json:"x_echo"`
	// CoreUS is the median of the runs' server core-µs per request.
	CoreUS float64 `json:"median_server_core_us_per_request"`
	// P50 and P99 are latency percentiles over every request of the runs.
	P50Ns int64 `json:"p50_ns"`
	P99Ns int64 `json:"p99_ns"`
}

// TargetInfo names a target that ran.
type TargetInfo struct {
	Name   string `json:"name"`
	Label  string `json:"label"`
	Family string `json:"family"`
}

// Skip is a target left out, and why.
type Skip struct {
	Target string `json:"target"`
	Reason string `json:"reason"`
}

// Host describes the machine and the programs measured.
type Host struct {
	CPUs     int               `json:"cpus"`
	Kernel   string            `json:"kernel"`
	Go       string            `json:"go"`
	Versions map[string]string `json:"versions"`
}

// Report is a suite run: every measurement and the table made from them.
type Report struct {
	Started       time.Time     `json:"started"`
	Finished      time.Time     `json:"finished"`
	Reps          int           `json:"repetitions"`
	RunTimeNs     int64         `json:"run_time_ns"`
	Shapes        []string      `json:"shapes"`
	Host          Host          `json:"host"`
	Targets       []TargetInfo  `json:"targets"`
	Skipped       []Skip        `json:"skipped,omitempty"`
	Measurements  []Measurement `json:"measurements"`
	Rows          []Row         `json:"rows"`
	Command       string        `json:"command,omitempty"`
	Commit        string        `json:"commit,omitempty"`
	hists         map[string]*bench.Histogram
	targetsByName map[string]TargetInfo
}

func newReport(opts Options) *Report {
	r := &Report{Started: time.Now().UTC(), Reps: opts.Reps, RunTimeNs: opts.RunTime.Nanoseconds(),
		hists: map[string]*bench.Histogram{}, targetsByName: map[string]TargetInfo{}}
	for _, s := range opts.Shapes {
		r.Shapes = append(r.Shapes, s.String())
	}
	return r
}

func (r *Report) addTarget(t Target) {
	ti := TargetInfo{Name: t.Name, Label: t.Label, Family: t.Family}
	r.Targets = append(r.Targets, ti)
	r.targetsByName[t.Name] = ti
}

func (r *Report) skip(t Target, why string) { r.Skipped = append(r.Skipped, Skip{t.Name, why}) }

func (r *Report) add(m Measurement) { r.Measurements = append(r.Measurements, m) }

// Median returns the median of xs (the mean of the middle two for an even
// count), 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// aggregate makes Rows from Measurements: per target and shape, the median
// throughput and CPU per request of the runs without error, the latency
// percentiles over all their requests, and the ratio to echo's median at
// the same shape.
func (r *Report) aggregate() {
	r.Rows = nil
	for _, shape := range r.Shapes {
		var echo float64
		for _, t := range r.Targets {
			row := Row{Target: t.Name, Label: t.Label, Family: t.Family, Shape: shape}
			var tps, cpus []float64
			hist := &bench.Histogram{}
			for _, m := range r.Measurements {
				if m.Target != t.Name || m.Shape != shape {
					continue
				}
				if m.Error != "" {
					if row.Failed == "" {
						row.Failed = fmt.Sprintf("rep %d: %s", m.Rep, m.Error)
					}
					continue
				}
				tps, cpus = append(tps, m.Throughput), append(cpus, m.CoreUSPerRequest)
				if m.hist != nil {
					hist.Merge(m.hist)
				} else {
					// Decoded from JSON: no histogram, take the median
					// run's percentiles below.
					hist = nil
				}
			}
			row.Runs = len(tps)
			row.Throughput, row.CoreUS = Median(tps), Median(cpus)
			if hist != nil && hist.Count() > 0 {
				row.P50Ns, row.P99Ns = hist.Quantile(0.50).Nanoseconds(), hist.Quantile(0.99).Nanoseconds()
			} else {
				row.P50Ns, row.P99Ns = r.medianPercentiles(t.Name, shape)
			}
			if t.Name == "echo" {
				echo = row.Throughput
			}
			if echo > 0 {
				row.XEcho = row.Throughput / echo
			}
			r.Rows = append(r.Rows, row)
		}
	}
}

func (r *Report) medianPercentiles(target, shape string) (int64, int64) {
	var p50, p99 []float64
	for _, m := range r.Measurements {
		if m.Target == target && m.Shape == shape && m.Error == "" {
			p50, p99 = append(p50, float64(m.P50Ns)), append(p99, float64(m.P99Ns))
		}
	}
	return int64(Median(p50)), int64(Median(p99))
}

// Failed reports whether any measurement failed.
func (r *Report) Failed() bool {
	for _, row := range r.Rows {
		if row.Failed != "" {
			return true
		}
	}
	return false
}

// fmtKRate formats req/s as thousands with three significant digits at
// least: 3,696 / 41.2 / 6.25.
func fmtKRate(rps float64) string {
	k := rps / 1e3
	switch {
	case k >= 100:
		return groupThousands(int64(k + 0.5))
	case k >= 10:
		return fmt.Sprintf("%.1f", k)
	}
	return fmt.Sprintf("%.2f", k)
}

func groupThousands(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func fmtRatio(x float64) string {
	switch {
	case x == 0:
		return "–"
	case x < 0.1:
		return fmt.Sprintf("%.3f", x)
	}
	return fmt.Sprintf("%.2f", x)
}

func fmtCoreUS(us float64) string {
	if us >= 100 {
		return fmt.Sprintf("%.0f", us)
	}
	return fmt.Sprintf("%.2f", us)
}

// fmtLatency formats a latency in µs below 1 ms, in ms above.
func fmtLatency(ns int64) string {
	d := time.Duration(ns)
	switch {
	case ns == 0:
		return "–"
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.1f µs", float64(ns)/1e3)
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(ns)/1e3)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(ns)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(ns)/1e6)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// Table is the Markdown table of Rows, one block of rows per shape.
func (r *Report) Table() string {
	var b strings.Builder
	b.WriteString("| target | shape | k req/s (median) | × echo | server core-µs / request | p50 | p99 |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|\n")
	for _, row := range r.Rows {
		if row.Runs == 0 {
			fmt.Fprintf(&b, "| %s | %s | failed | | | | |\n", row.Label, row.Shape)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", row.Label, row.Shape, fmtKRate(row.Throughput),
			fmtRatio(row.XEcho), fmtCoreUS(row.CoreUS), fmtLatency(row.P50Ns), fmtLatency(row.P99Ns))
	}
	return b.String()
}

// Summary is a compact Markdown table, one line per target and, per shape,
// the median k req/s with its ratio to echo, the server core-µs per
// request and the p50 latency.
func (r *Report) Summary() string {
	cells := map[string]Row{}
	for _, row := range r.Rows {
		cells[row.Target+" "+row.Shape] = row
	}
	var b strings.Builder
	b.WriteString("| target |")
	for _, sh := range r.Shapes {
		fmt.Fprintf(&b, " %s k req/s (× echo) | core-µs | p50 |", sh)
	}
	b.WriteString("\n|---|")
	for range r.Shapes {
		b.WriteString("---:|---:|---:|")
	}
	b.WriteString("\n")
	for _, t := range r.Targets {
		fmt.Fprintf(&b, "| %s |", t.Label)
		for _, sh := range r.Shapes {
			row, ok := cells[t.Name+" "+sh]
			if !ok || row.Runs == 0 {
				b.WriteString(" failed | | |")
				continue
			}
			fmt.Fprintf(&b, " %s (%s) | %s | %s |", fmtKRate(row.Throughput), fmtRatio(row.XEcho),
				fmtCoreUS(row.CoreUS), fmtLatency(row.P50Ns))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Markdown is results.md: what was run, where, the table, and the notes
// that say how to read it.
func (r *Report) Markdown() string {
	var b strings.Builder
	b.WriteString("# Benchmark results\n\n")
	fmt.Fprintf(&b, "Run %s, %s on %d CPUs (Linux %s, %s)", r.Started.Format("2006-01-02 15:04 MST"),
		r.Finished.Sub(r.Started).Round(time.Second), r.Host.CPUs, r.Host.Kernel, r.Host.Go)
	if r.Commit != "" {
		fmt.Fprintf(&b, ", tock at %s", r.Commit)
	}
	b.WriteString(".")
	var vs []string
	for _, k := range slices.Sorted(maps.Keys(r.Host.Versions)) {
		vs = append(vs, r.Host.Versions[k])
	}
	if len(vs) > 0 {
		fmt.Fprintf(&b, " Programs: %s.", strings.Join(vs, "; "))
	}
	b.WriteString("\n\n")
	if r.Command != "" {
		fmt.Fprintf(&b, "Reproduce: `%s`\n\n", r.Command)
	}
	b.WriteString(r.Summary())
	b.WriteString("\n![chart](chart.png)\n\nEvery figure:\n\n")
	b.WriteString(r.Table())
	fmt.Fprintf(&b, "\n%d repetitions of about %s each per target and shape, in rounds (each round measures every\n"+
		"target once at every shape, echo first), after a calibration run that is also the warm-up (each\n"+
		"run's request count is the previous run's rate × the run time). Every\n"+
		"request plans a new job (SET of a distinct id in 2100 for tock; ZADD of a new member to one sorted\n"+
		"set for redis; `put` with a delay of ~30 years for beanstalkd), so nothing fires during the run.\n"+
		"k req/s and core-µs are medians over the repetitions; × echo is the median divided by the echo\n"+
		"server's median at the same shape in this run; server core-µs / request is the user + system CPU\n"+
		"of every thread of every server process (a tock master and its workers, redis and any child it\n"+
		"forks) during the run, divided by the requests; p50 and p99 are send-to-reply latencies over every\n"+
		"request of the repetitions. The load generator runs on the same machine and competes for its CPUs.\n"+
		"beanstalkd's `-f0` fsyncs its binlog after every write (durable per ack, like tock's `fsync = always`\n"+
		"and redis's `appendfsync always`). CPU times are read from /proc in 10 ms ticks: a row whose runs\n"+
		"used little CPU in all (few, slow requests) has a coarse core-µs figure.\n",
		r.Reps, time.Duration(r.RunTimeNs))
	for _, s := range r.Skipped {
		fmt.Fprintf(&b, "\nSkipped %s: %s.\n", s.Target, s.Reason)
	}
	for _, row := range r.Rows {
		if row.Failed != "" {
			fmt.Fprintf(&b, "\n%s at %s: %d good runs; %s\n", row.Target, row.Shape, row.Runs, row.Failed)
		}
	}
	return b.String()
}

// describeHost collects the machine's and the programs' descriptions;
// what cannot be found is left out.
func describeHost(ctx context.Context, e *env) Host {
	h := Host{CPUs: runtime.NumCPU(), Go: runtime.Version(), Versions: map[string]string{}}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	first := func(argv ...string) string {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
		if err != nil {
			return ""
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return line
	}
	if e.tockBin != "" {
		if v := first(e.tockBin, "version"); v != "" {
			h.Versions["tock"] = v
		}
	}
	if e.redisBin != "" {
		if v := first(e.redisBin, "--version"); v != "" {
			v, _, _ = strings.Cut(v, " sha=")
			h.Versions["redis"] = v
		}
	}
	if e.beanstalkdBin != "" {
		if v := first(e.beanstalkdBin, "-v"); v != "" {
			h.Versions["beanstalkd"] = v
		}
	}
	return h
}

// Markers delimit the generated part of the README's performance section.
const (
	ReadmeStart = "<!-- benchkit:start -->"
	ReadmeEnd   = "<!-- benchkit:end -->"
)

// UpdateReadme replaces what lies between ReadmeStart and ReadmeEnd in
// readme with the summary table, a link to the chart and the results, and
// the command, resultsDir being the results' directory relative to the
// README.
func (r *Report) UpdateReadme(readme []byte, resultsDir string) ([]byte, error) {
	s := string(readme)
	i, j := strings.Index(s, ReadmeStart), strings.Index(s, ReadmeEnd)
	if i < 0 || j < i {
		return nil, fmt.Errorf("no %s ... %s section", ReadmeStart, ReadmeEnd)
	}
	var b strings.Builder
	b.WriteString(s[:i+len(ReadmeStart)])
	fmt.Fprintf(&b, "\nMeasured %s on %d CPUs", r.Started.Format("2006-01-02"), r.Host.CPUs)
	if r.Commit != "" {
		fmt.Fprintf(&b, ", tock at %s", r.Commit)
	}
	fmt.Fprintf(&b, " (medians of %d runs; every figure and how they are taken: [%s/results.md](%s/results.md)):\n\n",
		r.Reps, resultsDir, resultsDir)
	b.WriteString(r.Summary())
	fmt.Fprintf(&b, "\n![benchmark chart](%s/chart.png)\n\n", resultsDir)
	if r.Command != "" {
		fmt.Fprintf(&b, "Reproduce: `%s`\n", r.Command)
	}
	b.WriteString(s[j:])
	return []byte(b.String()), nil
}
