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
// "start JOB WORKER_PID SHELL_PID" first and "end ..." last.
type attempt struct {
	worker int // $PPID of the shell: the worker that ran it
	shell  int // $$: one per execution
	ended  bool
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
		fl := strings.Fields(sc.Text())
		if len(fl) != 4 {
			return nil, fmt.Errorf("%s:%d: %q", path, n, sc.Text())
		}
		worker, err1 := strconv.Atoi(fl[2])
		shell, err2 := strconv.Atoi(fl[3])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s:%d: %q", path, n, sc.Text())
		}
		job := fl[1]
		switch fl[0] {
		case "start":
			runs[job] = append(runs[job], attempt{worker: worker, shell: shell})
		case "end":
			i := slices.IndexFunc(runs[job], func(a attempt) bool { return a.shell == shell })
			if i < 0 {
				return nil, fmt.Errorf("%s:%d: end without a start: %q", path, n, sc.Text())
			}
			runs[job][i].ended = true
		default:
			return nil, fmt.Errorf("%s:%d: %q", path, n, sc.Text())
		}
	}
	return runs, sc.Err()
}

// serverKillRE finds the master's own kills in its log (hung worker, old
// owner that did not release, worker that did not exit after shutdown).
var serverKillRE = regexp.MustCompile(`killing it.*\bpid=(\d+)`)

// serverKills maps the pids the master killed to its log line.
func serverKills(logs string) map[int]string {
	out := map[int]string{}
	for _, line := range strings.Split(logs, "\n") {
		if m := serverKillRE.FindStringSubmatch(line); m != nil {
			pid, _ := strconv.Atoi(m[1]) // the regexp only matches digits
			out[pid] = line
		}
	}
	return out
}

// verdict is what the verifier found.
type verdict struct {
	keys, dueKeys int
	lost          []string // acknowledged writes the cluster does not show
	stranded      []string // due jobs still planned or triggered
	notRun        []string // due jobs executed or failed with no run in ran.log
	failedJobs    int      // due jobs that ended failed
	phantomKeys   []string // soak jobs the ledger never wrote

	ranJobs, runs, interrupted int
	explainedByChaos           int // extra runs after a chaos kill of the worker of the run before
	explainedByServer          int // extra runs after the master killed that worker itself
	unexplained                []string
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

// checkRuns explains every run after a job's first by a kill of the worker
// that ran the attempt before it: its outcome died with it, so the job ran
// again (at-least-once). Any other extra run is a double run.
func (v *verdict) checkRuns(runs map[string][]attempt, chaosKilled map[int]chaosKind, serverKilled map[int]string) {
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
			prev := as[i-1].worker
			if _, ok := chaosKilled[prev]; ok {
				v.explainedByChaos++
			} else if _, ok := serverKilled[prev]; ok {
				v.explainedByServer++
			} else {
				v.unexplained = append(v.unexplained, fmt.Sprintf("%s: run %d on worker %d after run %d on worker %d (not killed)", id, i+1, a.worker, i, prev))
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
