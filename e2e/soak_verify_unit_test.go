//go:build soak

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The verifier's judgements on hand-made inputs: a soak that cannot tell a
// double run from an explained one is worse than none.

func TestSoakVerifier_ParseRanLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ran.log")
	log := strings.Join([]string{
		"start a 10 100 1796409902.579841",
		"start b 10 101 1796409902.600000",
		"end a 10 100 1796409903,621447", // a comma locale
		"start a 11 102 1796409912.000001",
	}, "\n") + "\n"
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	runs, err := parseRanLog(path)
	if err != nil {
		t.Fatal(err)
	}
	a := runs["a"]
	if len(a) != 2 || len(runs["b"]) != 1 || !a[0].ended || a[1].ended || runs["b"][0].ended {
		t.Fatalf("runs: %+v", runs)
	}
	if got, want := a[0].end.Sub(a[0].start), 1041606*time.Microsecond; got != want {
		t.Fatalf("run took %s, want %s", got, want)
	}
	for _, bad := range []string{"start a 10 100\n", "end zz 1 2 1796409903.1\n", "start a x 1 1.5\n", "stop a 1 2 1.5\n", "start a 1 2 17964099\n"} {
		if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := parseRanLog(path); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestSoakVerifier_CheckRuns(t *testing.T) {
	t0 := time.Unix(1796409900, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	run := func(worker int, start, end float64) attempt {
		return attempt{worker: worker, start: at(start), end: at(end), ended: end > 0}
	}
	shardOf := func(job string) int { return int(job[0] - '0') }
	kills := []kill{
		{from: at(1.5), to: at(1.5), pids: []int{10}, shards: []int{1}},         // runner and owner of 1
		{from: at(20), to: at(23), pids: []int{30}, shards: []int{2}},           // a hang: owner of 2
		{from: at(40), to: at(40), pids: []int{49, 51}, shards: []int{3, 4, 5}}, // a master kill (the runner had exited)
	}
	runs := map[string][]attempt{
		"1.runner":   {run(10, 1, 0), run(11, 3, 4)},                  // runner killed mid-run
		"2.owner":    {run(20, 19, 19.5), run(21, 25, 26)},            // owner hung 0.5 s after the run
		"2.late":     {run(20, 10, 11), run(21, 25, 26)},              // owner hung 9 s after: outcome was due long before
		"3.master":   {run(50, 39, 39.2), run(52, 41, 42)},            // the master and its workers killed
		"6.nokill":   {run(60, 1, 2), run(61, 5, 6)},                  // nothing explains it
		"1.twice":    {run(10, 1, 0), run(11, 3, 4), run(12, 10, 11)}, // the third run is not explained
		"1.late-log": {run(10, 1.7, 0), run(11, 3, 4)},                // the shell logged its start after the kill
		"1.old-kill": {run(12, 2.5, 2.6), run(13, 5, 6)},              // the owner's kill was 1 s before the run
		"7.onlyonce": {run(70, 1, 2)},
		"8.together": {run(80, 1, 2), run(80, 1.01, 2)}, // one worker ran it twice at once
	}
	var v verdict
	v.checkRuns(runs, kills, shardOf)
	if v.ranJobs != 10 || v.runs != 20 || v.interrupted != 3 {
		t.Fatalf("jobs %d runs %d interrupted %d", v.ranJobs, v.runs, v.interrupted)
	}
	if v.explainedByRunner != 3 || v.explainedByOwner != 2 || len(v.unexplained) != 5 || v.concurrent != 1 {
		t.Fatalf("runner %d owner %d unexplained %q", v.explainedByRunner, v.explainedByOwner, v.unexplained)
	}
	for i, job := range []string{"1.old-kill", "1.twice", "2.late", "6.nokill", "8.together"} {
		if !strings.HasPrefix(v.unexplained[i], job+" ") {
			t.Errorf("unexplained[%d] = %q, want %s", i, v.unexplained[i], job)
		}
	}
}

func TestSoakVerifier_CheckKeys(t *testing.T) {
	present := func(exec int64) keyState { return keyState{true, exec} }
	keys := map[string]ledgerKey{
		"soak.far.ok":       {state: present(5)},
		"soak.far.moved":    {state: present(5)},
		"soak.far.removed":  {state: keyState{}},
		"soak.far.back":     {state: keyState{}},
		"soak.far.unsure":   {state: present(5), maybe: []keyState{present(6)}},
		"soak.far.unsure2":  {state: present(5), maybe: []keyState{{}}},
		"soak.due.done":     {due: true, state: present(1)},
		"soak.due.failed":   {due: true, state: present(1)},
		"soak.due.stuck":    {due: true, state: present(1)},
		"soak.due.lost":     {due: true, state: present(1)},
		"soak.due.norun":    {due: true, state: present(1)},
		"soak.due.unacked":  {due: true, state: keyState{}, maybe: []keyState{present(1)}},
		"soak.far.planned?": {state: present(9)},
	}
	rows := map[string]jobRow{
		"soak.far.ok":       {"planned", 5},
		"soak.far.moved":    {"planned", 7},
		"soak.far.back":     {"planned", 5},
		"soak.far.unsure":   {"planned", 6},
		"soak.due.done":     {"executed", 1},
		"soak.due.failed":   {"failed", 1},
		"soak.due.stuck":    {"triggered", 1},
		"soak.due.norun":    {"executed", 1},
		"soak.far.planned?": {"executed", 9},
		"soak.nobody":       {"planned", 1},
	}
	runs := map[string][]attempt{"soak.due.done": {{}}, "soak.due.failed": {{}}, "soak.due.stuck": {{}}}
	var v verdict
	v.checkKeys(keys, rows, runs)
	wantLost := []string{"soak.due.lost", "soak.far.back", "soak.far.moved", "soak.far.planned?"}
	if len(v.lost) != len(wantLost) {
		t.Fatalf("lost: %q", v.lost)
	}
	for i, id := range wantLost {
		if !strings.HasPrefix(v.lost[i], id+":") {
			t.Errorf("lost[%d] = %q, want %s", i, v.lost[i], id)
		}
	}
	if len(v.stranded) != 1 || !strings.HasPrefix(v.stranded[0], "soak.due.stuck triggered") {
		t.Errorf("stranded: %q", v.stranded)
	}
	if len(v.notRun) != 1 || v.notRun[0] != "soak.due.norun executed" || v.failedJobs != 1 {
		t.Errorf("not run: %q, failed %d", v.notRun, v.failedJobs)
	}
	if len(v.phantomKeys) != 1 || v.phantomKeys[0] != "soak.nobody" {
		t.Errorf("phantom keys: %q", v.phantomKeys)
	}
	if v.keys != len(keys) || v.dueKeys != 6 {
		t.Errorf("keys %d due %d", v.keys, v.dueKeys)
	}
}
