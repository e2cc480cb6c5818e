package main

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tockd/tock/master"
	"github.com/urfave/cli/v2"
)

const defaultTopInterval = time.Second

// ANSI sequences of the top view.
const (
	ansiAltScreen  = "\x1b[?1049h"
	ansiMainScreen = "\x1b[?1049l"
	ansiHideCursor = "\x1b[?25l"
	ansiShowCursor = "\x1b[?25h"
	ansiHome       = "\x1b[H"
	ansiClearLine  = "\x1b[K"
	ansiClearDown  = "\x1b[J"
	ansiBold       = "\x1b[1m"
	ansiReverse    = "\x1b[7m"
	ansiReset      = "\x1b[0m"
)

// topSample is one /stats reading and when it was taken.
type topSample struct {
	at time.Time
	st master.Stats
}

// topView is what one frame shows: the latest sample, the one before (for
// rates) and the latest fetch error, if any.
type topView struct {
	target   string
	interval time.Duration
	cur      topSample
	prev     *topSample
	err      error
}

// ctlTop is `tock ctl top`: a live view of the cluster, refreshed every
// --interval, like nats-top. q or Ctrl-C quits.
func ctlTop(c *cli.Context, cl *ctlClient) error {
	interval := c.Duration("interval")
	if interval <= 0 {
		return cli.Exit("usage: ctl top --interval must be positive", exitUsage)
	}
	v := topView{target: cl.target, interval: interval}
	if _, err := cl.get("/stats", &v.cur.st); err != nil {
		return err
	}
	v.cur.at = time.Now()
	restore := enterTopScreen()
	defer restore()
	keys := readKeys()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGWINCH)
	defer signal.Stop(sigs)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		cols, rows := termSize(int(os.Stdout.Fd()))
		drawTop(renderTop(v, time.Now(), cols, rows))
		select {
		case k, ok := <-keys:
			if !ok { // stdin closed: only a signal ends the view now
				keys = nil
				continue
			}
			if k == 'q' || k == 'Q' || k == 3 { // 3: Ctrl-C in raw mode
				return nil
			}
		case sig := <-sigs:
			if sig != syscall.SIGWINCH {
				return nil
			}
		case <-tick.C:
			var st master.Stats
			if _, err := cl.get("/stats", &st); err != nil {
				v.err = err
				continue
			}
			prev := v.cur
			v.prev, v.cur, v.err = &prev, topSample{at: time.Now(), st: st}, nil
		}
	}
}

// enterTopScreen switches to the alternate screen, hides the cursor and, on
// a terminal, enters raw mode; the returned function undoes all of it.
func enterTopScreen() func() {
	undoRaw := func() {}
	if fd := int(os.Stdin.Fd()); isTerminal(fd) {
		if r, err := makeRaw(fd); err == nil {
			undoRaw = r
		}
	}
	fmt.Print(ansiAltScreen + ansiHideCursor)
	return func() {
		fmt.Print(ansiReset + ansiShowCursor + ansiMainScreen)
		undoRaw()
	}
}

// readKeys delivers stdin's bytes (one key each in raw mode); it is closed
// at EOF. The reading goroutine ends with the process.
func readKeys() <-chan byte {
	keys := make(chan byte, 16)
	go func() {
		defer close(keys)
		r := bufio.NewReader(os.Stdin)
		for {
			b, err := r.ReadByte()
			if err != nil {
				return
			}
			keys <- b
		}
	}()
	return keys
}

func drawTop(lines []string) {
	var b strings.Builder
	b.WriteString(ansiHome)
	for i, l := range lines {
		if i > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString(l + ansiReset + ansiClearLine)
	}
	b.WriteString(ansiClearDown)
	fmt.Print(b.String())
}

// renderTop lays out one frame, cut to cols × rows.
func renderTop(v topView, now time.Time, cols, rows int) []string {
	st := v.cur.st
	var jobs, planned, triggered, executed, failed, inflight, pending int64
	for _, w := range st.WorkerStatus {
		s := w.LastStatus
		jobs, planned, triggered, executed, failed = jobs+s.JobsTotal, planned+s.JobsPlanned,
			triggered+s.JobsTriggered, executed+s.JobsExecuted, failed+s.JobsFailed
		inflight, pending = inflight+s.ExecutionsInflight, pending+s.ExecutionsPending
	}
	rps := "-"
	if v.prev != nil {
		rps = rate(st.RequestsCount-v.prev.st.RequestsCount, v.cur.at.Sub(v.prev.at))
	}
	status := fmt.Sprintf("updated %s", v.cur.at.Format("15:04:05"))
	if v.err != nil {
		status = "ERROR " + v.err.Error()
	}
	lines := []string{
		fmt.Sprintf("%stock top%s  %s  every %s  %s  (q quits)", ansiBold, ansiReset, v.target, v.interval, status),
		fmt.Sprintf("version %s  pid %d  up %s  phase %d  workers %d (%d booted, %d old)  shards %d",
			st.Version, st.PID, now.Sub(st.StartedAt).Truncate(time.Second), st.Phase,
			st.Workers, st.BootedWorkers, st.OldWorkers, st.Shards),
		fmt.Sprintf("connections %d  requests %d  req/s %s  held %d  phased restart %s",
			st.Connections, st.RequestsCount, rps, st.HeldRequests, restartLine(st.PhasedRestart, now)),
		fmt.Sprintf("jobs %d: planned %d  triggered %d  executed %d  failed %d   executions running %d  pending %d",
			jobs, planned, triggered, executed, failed, inflight, pending),
		"",
		ansiReverse + fmt.Sprintf(topRowFormat, "IDX", "PID", "PHASE", "STATE", "CHECKIN", "RESTARTS", "SHARDS",
			"JOBS", "PLANNED", "TRIGGERED", "EXECUTED", "FAILED", "RUNNING", "PENDING", "REQ/S", "RSS"),
	}
	for _, w := range st.WorkerStatus {
		lines = append(lines, topWorkerRow(w, v.prev, v.cur.at, now))
	}
	if rows > 0 && len(lines) > rows {
		lines = lines[:rows]
	}
	for i, l := range lines {
		lines[i] = cutVisible(l, cols)
	}
	return lines
}

const topRowFormat = "%4s %8s %5s %-8s %7s %8s %6s %8s %8s %9s %8s %7s %7s %7s %8s %8s"

func topWorkerRow(w master.WorkerStats, prev *topSample, at, now time.Time) string {
	s := w.LastStatus
	state := "booting"
	switch {
	case w.Draining:
		state = "draining"
	case w.Booted:
		state = "booted"
	}
	rps := "-"
	if prev != nil {
		for _, p := range prev.st.WorkerStatus {
			if p.PID == w.PID {
				rps = rate(s.RequestsCount-p.LastStatus.RequestsCount, at.Sub(prev.at))
			}
		}
	}
	return fmt.Sprintf(topRowFormat, fmt.Sprint(w.Index), fmt.Sprint(w.PID), fmt.Sprint(w.Phase), state,
		checkinAge(w.LastCheckin, now), fmt.Sprint(w.Restarts), fmt.Sprint(len(w.Shards)),
		fmt.Sprint(s.JobsTotal), fmt.Sprint(s.JobsPlanned), fmt.Sprint(s.JobsTriggered), fmt.Sprint(s.JobsExecuted),
		fmt.Sprint(s.JobsFailed), fmt.Sprint(s.ExecutionsInflight), fmt.Sprint(s.ExecutionsPending), rps, humanBytes(s.RSSBytes))
}

// rate is n per second over d.
func rate(n int64, d time.Duration) string {
	if d <= 0 || n < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(n)/d.Seconds())
}

// cutVisible cuts s to cols visible characters, not counting ANSI escapes.
func cutVisible(s string, cols int) string {
	if cols <= 0 {
		return s
	}
	var b strings.Builder
	n, esc := 0, false
	for _, r := range s {
		switch {
		case esc:
			b.WriteRune(r)
			esc = !(r >= '@' && r <= '~' && r != '[')
		case r == 0x1b:
			b.WriteRune(r)
			esc = true
		case n < cols:
			b.WriteRune(r)
			n++
		}
	}
	return b.String()
}
