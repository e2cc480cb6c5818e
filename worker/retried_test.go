package worker

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
)

// TestRetriedSet_DoesNotRunTheJobAgain is the soak's one unexplained double
// run (soak.due.fast.c1.3358): the shard's owner wrote a client's SET of a
// due job to its log and was killed before replying; the master sent the
// SET again (Retried) to the replacement, which had replayed the SET and
// triggered the job from it. Applying the retried SET re-planned the
// triggered job, so the one worker ran it twice with no crash of that run.
// A retried SET that is already in effect is acknowledged without a
// change; one the dead worker never applied still plans the job.
func TestRetriedSet_DoesNotRunTheJobAgain(t *testing.T) {
	dir := t.TempDir()
	set := testSettings(dir)
	runs, open := filepath.Join(dir, "runs"), filepath.Join(dir, "open")
	exec := time.Now().Add(-time.Second).UnixNano()
	ranBefore := exec - int64(time.Minute)
	// The dead owner's log: the retried SET of job.x, durable, and job.old,
	// which ran before this worker opened the shard.
	if err := os.MkdirAll(filepath.Dir(ShardPath(dir, 0)), 0o755); err != nil {
		t.Fatal(err)
	}
	lf, _, err := store.OpenShard(ShardPath(dir, 0), store.ShardOptions{Policy: store.FsyncAlways})
	if err != nil {
		t.Fatal(err)
	}
	err = lf.Write([]store.Record{
		{Type: store.RecordJob, Job: store.Job{ID: "job.x", Execution: exec, Status: store.Planned}},
		{Type: store.RecordJob, Job: store.Job{ID: "job.old", Execution: ranBefore, Status: store.Planned}},
		statusRecord("job.old", ranBefore, store.Executed, &store.Outcome{StartedAt: ranBefore, Duration: 1}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := lf.Close(); err != nil {
		t.Fatal(err)
	}
	// Each run logs its job and holds until the test creates open.
	cmd := fmt.Sprintf(`echo "$TOCK_JOB_ID" >> %s; while [ ! -e %s ]; do sleep 0.01; done`, runs, open)
	fm := startTestWorker(t, set, []int{0}, []store.Rule{shellRule("r", "job.", cmd)}, runOptions{})
	fm.waitStatus(0, "job.x", store.Triggered) // replayed and running

	retried := ipc.Request{Op: ipc.OpSet, Shard: 0, Key: "job.x", Execution: exec, Retried: true}
	if r := fm.do(retried); r.Kind != ipc.KindOK {
		t.Fatalf("retried SET: %+v", r)
	}
	if err := os.WriteFile(open, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fm.waitStatus(0, "job.x", store.Executed)
	if n := countRuns(t, runs, "job.x"); n != 1 {
		t.Fatalf("job.x ran %d times, want once: the retried SET planned it again", n)
	}
	// Once more after the run: still in effect, still no run.
	if r := fm.do(retried); r.Kind != ipc.KindOK {
		t.Fatalf("retried SET after the run: %+v", r)
	}
	if r := fm.do(ipc.Request{Op: ipc.OpGet, Shard: 0, Key: "job.x"}); r.Status != store.Executed {
		t.Fatalf("job.x is %s after a retried SET of its finished run, want executed", r.Status)
	}
	// A SET the dead worker never applied asks for a new run: job.old had
	// run before the shard was opened here.
	if r := fm.do(ipc.Request{Op: ipc.OpSet, Shard: 0, Key: "job.old", Execution: ranBefore, Retried: true}); r.Kind != ipc.KindOK {
		t.Fatalf("retried SET of job.old: %+v", r)
	}
	fm.waitStatus(0, "job.old", store.Executed)
	if n := countRuns(t, runs, "job.old"); n != 1 {
		t.Fatalf("job.old ran %d times here, want once", n)
	}
	// A client's own SET is never deduplicated: it plans the job again.
	if r := fm.do(ipc.Request{Op: ipc.OpSet, Shard: 0, Key: "job.x", Execution: exec}); r.Kind != ipc.KindOK {
		t.Fatalf("SET: %+v", r)
	}
	fm.waitStatus(0, "job.x", store.Executed)
	if n := countRuns(t, runs, "job.x"); n != 2 {
		t.Fatalf("job.x ran %d times after a client's re-SET, want twice", n)
	}
}

// countRuns is how many runs of job the runs file logged.
func countRuns(t *testing.T, path, job string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if l == job {
			n++
		}
	}
	return n
}
