//go:build soak

package e2e

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// jobRow is one job as the cluster shows it (a QUERY line).
type jobRow struct {
	status string
	exec   int64
}

// queryRows reads every soak job with one QUERY.
func queryRows(t *testing.T, cl *client) (map[string]jobRow, error) {
	body, end := cl.list("q", "q QUERY soak.")
	if end != "q OK" {
		return nil, fmt.Errorf("QUERY soak.: %q", end)
	}
	rows := make(map[string]jobRow, len(body))
	for _, line := range body {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "q" {
			return nil, fmt.Errorf("QUERY line %q", line)
		}
		exec, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("QUERY line %q: %w", line, err)
		}
		rows[f[1]] = jobRow{status: f[2], exec: exec}
	}
	return rows, nil
}

// attempt is one execution of a due job, from ran.log: its shell logs
// "start JOB WORKER_PID SHELL_PID TIME" first and "end ..." last.
type attempt struct {
	worker     int // $PPID of the shell: the worker that ran it
	shell      int // $$: one per execution
	start, end time.Time
	ended      bool
}

func (a attempt) String() string {
	s := fmt.Sprintf("worker %d at %s", a.worker, a.start.UTC().Format("15:04:05.000"))
	if !a.ended {
		s += " (interrupted)"
	}
	return s
}

// parseRanLog reads ran.log into each job's attempts in start order.
func parseRanLog(path string) (map[string][]attempt, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return map[string][]attempt{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	runs := map[string][]attempt{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		bad := fmt.Errorf("%s:%d: %q", path, n, sc.Text())
		fl := strings.Fields(sc.Text())
		if len(fl) != 5 {
			return nil, bad
		}
		worker, err1 := strconv.Atoi(fl[2])
		shell, err2 := strconv.Atoi(fl[3])
		at, err3 := parseEpochRealtime(fl[4])
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, bad
		}
		job := fl[1]
		switch fl[0] {
		case "start":
			runs[job] = append(runs[job], attempt{worker: worker, shell: shell, start: at})
		case "end":
			i := slices.IndexFunc(runs[job], func(a attempt) bool { return a.shell == shell })
			if i < 0 {
				return nil, fmt.Errorf("%w: an end without a start", bad)
			}
			runs[job][i].end, runs[job][i].ended = at, true
		default:
			return nil, bad
		}
	}
	return runs, sc.Err()
}

// parseEpochRealtime reads bash's $EPOCHREALTIME ("1733312345.123456", the
// separator is the locale's).
func parseEpochRealtime(s string) (time.Time, error) {
	sec, frac, ok := strings.Cut(strings.Replace(s, ",", ".", 1), ".")
	if !ok || len(frac) > 9 {
		return time.Time{}, fmt.Errorf("time %q", s)
	}
	secs, err1 := strconv.ParseInt(sec, 10, 64)
	ns, err2 := strconv.ParseInt((frac + "000000000")[:9], 10, 64)
	if err1 != nil || err2 != nil {
		return time.Time{}, fmt.Errorf("time %q", s)
	}
	return time.Unix(secs, ns), nil
}

// kill is processes taken out of action, by a chaos action or by the
// master itself (read from its log).
type kill struct {
	from, to time.Time // one instant for a kill -9; stop → death for a hang
	pids     []int
	shards   []int // the shards they owned, when known
	why      string
}

// serverKillRE finds the master's own kills in its log (hung worker, old
// owner that did not release, worker that did not exit after shutdown).
var serverKillRE = regexp.MustCompile(`^(\S+) .*killing it.*\bpid=(\d+)`)

// serverKills reads the master's kills from its log.
func serverKills(logs string) []kill {
	var out []kill
	for _, line := range strings.Split(logs, "\n") {
		m := serverKillRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		pid, _ := strconv.Atoi(m[2]) // the regexp only matches digits
		if err == nil {
			out = append(out, kill{from: at, to: at, pids: []int{pid}, why: line})
		}
	}
	return out
}

// outcomeGrace bounds how long after its shell exits an execution's outcome
// takes to be durable (sent to the master, handed to the shard's owner,
// fsynced). A kill later than that does not explain a rerun.
const outcomeGrace = 3 * time.Second

// startSlack bounds how long before its "start" line an execution began
// (the fork, then bash's start-up, under load).
const startSlack = 500 * time.Millisecond

// verdict is what the verifier found.
type verdict struct {
	keys, dueKeys int
	lost          []string // acknowledged writes the cluster does not show
	stranded      []string // due jobs still planned or triggered
	notRun        []string // due jobs executed or failed with no run in ran.log
	failedJobs    int      // due jobs that ended failed
	phantomKeys   []string // soak jobs the ledger never wrote

	ranJobs, runs, interrupted int
	explainedByRunner          int // extra runs after a kill of the worker of the run before
	explainedByOwner           int // extra runs after a kill of the job's shard owner
	unexplained                []string
	concurrent                 int // of the unexplained: two runs at once on one worker
}

// checkKeys compares the cluster's jobs with the ledger.
func (v *verdict) checkKeys(keys map[string]ledgerKey, rows map[string]jobRow, runs map[string][]attempt) {
	for _, id := range slices.Sorted(maps.Keys(keys)) {
		k := keys[id]
		v.keys++
		row, present := rows[id]
		if k.due {
			v.dueKeys++
		}
		ok := slices.ContainsFunc(k.possible(), func(s keyState) bool {
			if !s.present || !present {
				return s.present == present
			}
			return s.exec == row.exec && (k.due || row.status == "planned")
		})
		if !ok {
			v.lost = append(v.lost, fmt.Sprintf("%s: ledger %v, cluster %v (present=%v)", id, k.possible(), row, present))
			continue
		}
		if !k.due || !present {
			continue
		}
		switch row.status {
		case "planned", "triggered":
			v.stranded = append(v.stranded, fmt.Sprintf("%s %s, runs %v", id, row.status, runs[id]))
		case "failed":
			v.failedJobs++
			fallthrough
		case "executed":
			if len(runs[id]) == 0 {
				v.notRun = append(v.notRun, id+" "+row.status)
			}
		}
	}
	for id := range rows {
		if _, ok := keys[id]; !ok {
			v.phantomKeys = append(v.phantomKeys, id)
		}
	}
}

// checkRuns explains every run of a job after its first: the attempt
// before it lost its outcome because, after it started and before that
// outcome could be durable, a kill took out the worker that ran it or the
// owner of the job's shard (which records outcomes of executions that span
// a handoff). The job then runs again (at-least-once). Any other extra run
// is a double run.
func (v *verdict) checkRuns(runs map[string][]attempt, kills []kill, shardOf func(string) int) {
	for _, id := range slices.Sorted(maps.Keys(runs)) {
		as := runs[id]
		v.ranJobs++
		v.runs += len(as)
		for i, a := range as {
			if !a.ended {
				v.interrupted++
			}
			if i == 0 {
				continue
			}
			prev := as[i-1]
			until := a.start
			if prev.ended && prev.end.Add(outcomeGrace).Before(until) {
				until = prev.end.Add(outcomeGrace)
			}
			byRunner, byOwner := false, false
			for _, k := range kills {
				if k.from.After(until) {
					continue
				}
				// A worker starts nothing once dead, so a kill of the runner
				// needs no lower bound (its shell may log "start" a little
				// after the kill: bash starts slowly on a busy machine).
				byRunner = byRunner || slices.Contains(k.pids, prev.worker)
				byOwner = byOwner || (slices.Contains(k.shards, shardOf(id)) && !k.to.Before(prev.start.Add(-startSlack)))
			}
			switch {
			case byRunner:
				v.explainedByRunner++
			case byOwner:
				v.explainedByOwner++
			case a.worker == prev.worker && (!prev.ended || prev.end.After(a.start)):
				v.concurrent++
				v.unexplained = append(v.unexplained, fmt.Sprintf("%s (shard %d): runs %d and %d at once on worker %d (%s, %s)",
					id, shardOf(id), i, i+1, a.worker, prev, a))
			default:
				v.unexplained = append(v.unexplained, fmt.Sprintf("%s (shard %d): run %d on %s after run %d on %s: no kill of either worker or of the shard's owner in between",
					id, shardOf(id), i+1, a, i, prev))
			}
		}
	}
}

// verifyFiles runs `tock dump --verify` on every shard file and rules.log
// (with the cluster stopped) and returns the files checked and the failures.
func verifyFiles(t *testing.T, dataDir string) (int, []string) {
	files, err := filepath.Glob(filepath.Join(dataDir, "shards", "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(dataDir, "rules.log"))
	var bad []string
	for _, path := range files {
		out, err := runTock(t, "dump", "--verify", path)
		if err != nil || !strings.HasPrefix(out, "ok: ") {
			bad = append(bad, fmt.Sprintf("%s: %v: %s", filepath.Base(path), err, strings.TrimSpace(out)))
		}
	}
	return len(files), bad
}
