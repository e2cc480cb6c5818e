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
// --interval, like nats-top, laid out for the terminal's width. q or Ctrl-C
// quits. When stdout is not a terminal it prints one plain table and
// exits.
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
	if !stdoutIsTerminal() {
		// A pipe or a file: one plain table, every column, no escapes.
		for _, l := range renderTop(v, v.cur.at, 0, 0, true) {
			fmt.Fprintln(c.App.Writer, l)
		}
		return nil
	}
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
		drawTop(renderTop(v, time.Now(), cols, rows, false))
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

// renderTop lays out one frame for a terminal of cols × rows: the summary
// wraps at field boundaries and the worker table keeps the columns that
// fit, most useful first. cols <= 0 means no limit (every column), and
// plain drops the escape codes (for a pipe or a file).
func renderTop(v topView, now time.Time, cols, rows int, plain bool) []string {
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
	title, quits := ansiBold+"tock top"+ansiReset, "(q quits)"
	if plain {
		title, quits = "tock top", ""
	}
	var lines []string
	for _, group := range [][]string{
		{title, v.target, "every " + v.interval.String(), status, quits},
		{"version " + st.Version, fmt.Sprintf("pid %d", st.PID), "up " + now.Sub(st.StartedAt).Truncate(time.Second).String(),
			fmt.Sprintf("phase %d", st.Phase), fmt.Sprintf("workers %d (%d booted, %d old)", st.Workers, st.BootedWorkers, st.OldWorkers),
			fmt.Sprintf("shards %d", st.Shards)},
		{fmt.Sprintf("connections %d", st.Connections), fmt.Sprintf("requests %d", st.RequestsCount), "req/s " + rps,
			fmt.Sprintf("held %d", st.HeldRequests), "phased restart " + restartLine(st.PhasedRestart, now)},
		{fmt.Sprintf("jobs %d: planned %d", jobs, planned), fmt.Sprintf("triggered %d", triggered),
			fmt.Sprintf("executed %d", executed), fmt.Sprintf("failed %d", failed),
			fmt.Sprintf("executions running %d", inflight), fmt.Sprintf("pending %d", pending)},
	} {
		lines = append(lines, packFields(group, cols)...)
	}
	lines = append(lines, "")
	table := topTable(st.WorkerStatus, v.prev, v.cur.at, now, cols)
	if !plain {
		table[0] = ansiReverse + table[0]
	}
	lines = append(lines, table...)
	if rows > 0 && len(lines) > rows {
		lines = lines[:rows]
	}
	for i, l := range lines {
		lines[i] = cutVisible(l, cols)
	}
	return lines
}

// packFields joins fields with two spaces into lines of at most cols
// visible characters (a field longer than that gets a line of its own).
func packFields(fields []string, cols int) []string {
	var lines []string
	cur, width := "", 0
	for _, f := range fields {
		if f == "" {
			continue
		}
		w := visibleLen(f)
		switch {
		case cur == "":
			cur, width = f, w
		case cols > 0 && width+2+w > cols:
			lines = append(lines, cur)
			cur, width = f, w
		default:
			cur, width = cur+"  "+f, width+2+w
		}
	}
	return append(lines, cur)
}

// visibleLen counts the characters of s that are not ANSI escapes.
func visibleLen(s string) int {
	n, esc := 0, false
	for _, r := range s {
		switch {
		case esc:
			esc = !(r >= '@' && r <= '~' && r != '[')
		case r == 0x1b:
			esc = true
		default:
			n++
		}
	}
	return n
}

// topColumn is one column of the worker table. keep ranks it: when the
// terminal is too narrow, the columns with the highest keep go first.
type topColumn struct {
	title string
	width int
	left  bool // left-aligned
	keep  int
	cell  func(w master.WorkerStats, rps string, now time.Time) string
}

var topColumns = []topColumn{
	{"IDX", 4, false, 0, func(w master.WorkerStats, _ string, _ time.Time) string { return fmt.Sprint(w.Index) }},
	{"PID", 8, false, 0, func(w master.WorkerStats, _ string, _ time.Time) string { return fmt.Sprint(w.PID) }},
	{"PHASE", 5, false, 1, func(w master.WorkerStats, _ string, _ time.Time) string { return fmt.Sprint(w.Phase) }},
	{"STATE", 8, true, 0, func(w master.WorkerStats, _ string, _ time.Time) string { return workerState(w) }},
	{"CHECKIN", 7, false, 1, func(w master.WorkerStats, _ string, now time.Time) string { return checkinAge(w.LastCheckin, now) }},
	{"RESTARTS", 8, false, 3, func(w master.WorkerStats, _ string, _ time.Time) string { return fmt.Sprint(w.Restarts) }},
	{"SHARDS", 6, false, 3, func(w master.WorkerStats, _ string, _ time.Time) string { return fmt.Sprint(len(w.Shards)) }},
	{"JOBS", 8, false, 1, func(w master.WorkerStats, _ string, _ time.Time) string { return fmt.Sprint(w.LastStatus.JobsTotal) }},
	{"PLANNED", 8, false, 5, func(w master.WorkerStats, _ string, _ time.Time) string { return fmt.Sprint(w.LastStatus.JobsPlanned) }},
	{"TRIGGERED", 9, false, 6, func(w master.WorkerStats, _ string, _ time.Time) string {
		return fmt.Sprint(w.LastStatus.JobsTriggered)
	}},
	{"EXECUTED", 8, false, 6, func(w master.WorkerStats, _ string, _ time.Time) string { return fmt.Sprint(w.LastStatus.JobsExecuted) }},
	{"FAILED", 7, false, 5, func(w master.WorkerStats, _ string, _ time.Time) string { return fmt.Sprint(w.LastStatus.JobsFailed) }},
	{"RUNNING", 7, false, 2, func(w master.WorkerStats, _ string, _ time.Time) string {
		return fmt.Sprint(w.LastStatus.ExecutionsInflight)
	}},
	{"PENDING", 7, false, 4, func(w master.WorkerStats, _ string, _ time.Time) string {
		return fmt.Sprint(w.LastStatus.ExecutionsPending)
	}},
	{"REQ/S", 8, false, 2, func(_ master.WorkerStats, rps string, _ time.Time) string { return rps }},
	{"RSS", 8, false, 4, func(w master.WorkerStats, _ string, _ time.Time) string { return humanBytes(w.LastStatus.RSSBytes) }},
}

// fitColumns returns the columns that fit in cols (all when cols <= 0),
// in table order.
func fitColumns(cols int) []topColumn {
	maxKeep := 0
	for _, c := range topColumns {
		maxKeep = max(maxKeep, c.keep)
	}
	for limit := maxKeep; ; limit-- {
		var out []topColumn
		width := -1
		for _, c := range topColumns {
			if c.keep <= limit {
				out, width = append(out, c), width+1+c.width
			}
		}
		if cols <= 0 || width <= cols || limit == 0 {
			return out
		}
	}
}

// topTable is the header and one row per worker.
func topTable(workers []master.WorkerStats, prev *topSample, at, now time.Time, cols int) []string {
	columns := fitColumns(cols)
	row := func(cell func(topColumn) string) string {
		var b strings.Builder
		for i, c := range columns {
			if i > 0 {
				b.WriteByte(' ')
			}
			if c.left {
				fmt.Fprintf(&b, "%-*s", c.width, cell(c))
			} else {
				fmt.Fprintf(&b, "%*s", c.width, cell(c))
			}
		}
		return b.String()
	}
	lines := []string{row(func(c topColumn) string { return c.title })}
	for _, w := range workers {
		rps := workerRate(w, prev, at)
		lines = append(lines, row(func(c topColumn) string { return c.cell(w, rps, now) }))
	}
	return lines
}

func workerState(w master.WorkerStats) string {
	switch {
	case w.Draining:
		return "draining"
	case w.Booted:
		return "booted"
	}
	return "booting"
}

// workerRate is w's requests per second since prev.
func workerRate(w master.WorkerStats, prev *topSample, at time.Time) string {
	if prev == nil {
		return "-"
	}
	for _, p := range prev.st.WorkerStatus {
		if p.PID == w.PID {
			return rate(w.LastStatus.RequestsCount-p.LastStatus.RequestsCount, at.Sub(prev.at))
		}
	}
	return "-"
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
