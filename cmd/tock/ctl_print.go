package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/tockd/tock/master"
	"github.com/urfave/cli/v2"
)

func jsonUnmarshal(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode reply: %w", err)
	}
	return nil
}

func ctlStats(c *cli.Context, cl *ctlClient) error {
	var st master.Stats
	b, err := cl.get("/stats", &st)
	if err != nil {
		return err
	}
	if wantJSON(c) {
		return printJSON(b)
	}
	writeStatsSummary(os.Stdout, st, time.Now())
	return nil
}

func ctlStatus(c *cli.Context, cl *ctlClient) error {
	var st master.Stats
	if _, err := cl.get("/stats", &st); err != nil {
		return err
	}
	if wantJSON(c) {
		b, err := json.MarshalIndent(st.WorkerStatus, "", "  ")
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		return printJSON(b)
	}
	now := time.Now()
	for _, w := range st.WorkerStatus {
		fmt.Println(workerLine(w, now))
	}
	return nil
}

// workerLine is one worker of `ctl status`: index, pid, phase, booted,
// seconds since its heartbeat, jobs and executions.
func workerLine(w master.WorkerStats, now time.Time) string {
	s := w.LastStatus
	line := fmt.Sprintf("worker %d: pid=%d phase=%d booted=%t checkin=%s jobs=%d executions=%d pending=%d",
		w.Index, w.PID, w.Phase, w.Booted, checkinAge(w.LastCheckin, now), s.JobsTotal, s.ExecutionsInflight, s.ExecutionsPending)
	if w.Draining {
		line += " draining=true"
	}
	return line
}

// checkinAge is the seconds since t ("-" when there was no heartbeat yet).
func checkinAge(t, now time.Time) string {
	if t.IsZero() || t.Year() < 2000 {
		return "-"
	}
	return fmt.Sprintf("%.1fs", max(0, now.Sub(t).Seconds()))
}

// writeStatsSummary is the readable form of the stats tree.
func writeStatsSummary(out io.Writer, st master.Stats, now time.Time) {
	var jobs, planned, triggered, executed, failed, inflight, pending, rss int64
	for _, w := range st.WorkerStatus {
		s := w.LastStatus
		jobs, planned, triggered, executed, failed = jobs+s.JobsTotal, planned+s.JobsPlanned,
			triggered+s.JobsTriggered, executed+s.JobsExecuted, failed+s.JobsFailed
		inflight, pending, rss = inflight+s.ExecutionsInflight, pending+s.ExecutionsPending, rss+s.RSSBytes
	}
	fmt.Fprintf(out, "tock %s  pid %d  up %s  (started %s)\n", st.Version, st.PID,
		now.Sub(st.StartedAt).Truncate(time.Second), st.StartedAt.Format(time.RFC3339))
	fmt.Fprintf(out, "workers %d (%d booted, %d old)  phase %d  shards %d\n",
		st.Workers, st.BootedWorkers, st.OldWorkers, st.Phase, st.Shards)
	fmt.Fprintf(out, "connections %d  requests %d  held %d\n", st.Connections, st.RequestsCount, st.HeldRequests)
	fmt.Fprintf(out, "phased restart: %s\n", restartLine(st.PhasedRestart, now))
	fmt.Fprintf(out, "jobs %d: %d planned, %d triggered, %d executed, %d failed\n", jobs, planned, triggered, executed, failed)
	fmt.Fprintf(out, "executions %d running, %d pending  workers' rss %s\n", inflight, pending, humanBytes(rss))
	for _, w := range st.WorkerStatus {
		fmt.Fprintf(out, "  %s shards=%s\n", workerLine(w, now), shardList(w.Shards))
	}
}

func restartLine(pr master.PhasedRestartStats, now time.Time) string {
	var parts []string
	if pr.InProgress {
		s := "in progress"
		if pr.StartedAt != nil {
			s += fmt.Sprintf(" for %s", now.Sub(*pr.StartedAt).Truncate(100*time.Millisecond))
		}
		parts = append(parts, s)
	} else {
		parts = append(parts, "idle")
	}
	if pr.LastError != nil {
		parts = append(parts, "last error: "+*pr.LastError)
	}
	return strings.Join(parts, ", ")
}

func shardList(shards []int) string {
	s := make([]string, len(shards))
	for i, n := range shards {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
