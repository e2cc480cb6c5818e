package worker

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
)

// faults injects EIO into shard logs: on fsync (through the Logfile's
// fsync seam, so the log knows its fsync failed) and on write (behind the
// ShardLog seam: nothing is written).
type faults struct {
	fsync atomic.Bool
	write atomic.Bool
}

func (f *faults) options() runOptions {
	return runOptions{
		fsync: func(file *os.File) error {
			if f.fsync.Load() {
				return errInjected
			}
			return file.Sync()
		},
		wrapLog: func(_ int, l store.ShardLog) store.ShardLog { return &faultyLog{ShardLog: l, f: f} },
	}
}

type faultyLog struct {
	store.ShardLog
	f *faults
}

// Write fails as a write the log could not cut back off does: the log is
// unusable until reopened.
func (l *faultyLog) Write(recs []store.Record) error {
	if l.f.write.Load() {
		return errInjected
	}
	return l.ShardLog.Write(recs)
}

func (l *faultyLog) Failed() error {
	if l.f.write.Load() {
		return errInjected
	}
	return l.ShardLog.Failed()
}

// waitHeartbeat returns the first heartbeat for which ok holds.
func (fm *fakeMaster) waitHeartbeat(what string, ok func(ipc.Status) bool) ipc.Status {
	fm.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var st ipc.Status
		fm.decode(fm.expect(ipc.TypeStatus), &st)
		if ok(st) {
			return st
		}
	}
	fm.t.Fatalf("no heartbeat with %s", what)
	return ipc.Status{}
}

func faultSettings(dir string) ipc.Settings {
	set := testSettings(dir)
	set.NumShards = 1
	set.CheckIntervalNs = int64(20 * time.Millisecond)
	return set
}

func set(fm *fakeMaster, key string, exec int64) ipc.Reply {
	return fm.do(ipc.Request{Op: ipc.OpSet, Shard: 0, Key: key, Execution: exec})
}

func get(fm *fakeMaster, key string) ipc.Reply {
	return fm.do(ipc.Request{Op: ipc.OpGet, Shard: 0, Key: key})
}

// shardLogKeys lists the job ids with a record in shard 0's file.
func shardLogKeys(t *testing.T, dir string) map[string]bool {
	t.Helper()
	recs, _, err := store.ReadAll(ShardPath(dir, 0))
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, r := range recs {
		keys[r.Job.ID] = true
	}
	return keys
}

// waitReopened polls GET key until the shard answers it as want.
func waitReopened(fm *fakeMaster, key string, want ipc.ReplyKind) ipc.Reply {
	fm.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := get(fm, key)
		if !strings.HasPrefix(r.Err, "shard unavailable") && r.Kind == want {
			return r
		}
		if time.Now().After(deadline) {
			fm.t.Fatalf("GET %s: %+v, want the reopened shard to answer %v", key, r, want)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for an event
	}
}

// TestFault_FsyncFailure: a SET whose fsync fails is answered "shard
// unavailable", the shard goes down with the reason in the heartbeat's
// ShardErrors, and once reopened from its file the job is not there —
// memory is what is durable (regression: the job stayed in memory, ran,
// and GET said executed).
func TestFault_FsyncFailure(t *testing.T) {
	dir := t.TempDir()
	var f faults
	ran := filepath.Join(dir, "ran")
	rules := []store.Rule{shellRule("r", "job.", "echo $TOCK_JOB_ID >> "+ran)}
	fm := startTestWorker(t, faultSettings(dir), []int{0}, rules, f.options())
	if r := set(fm, "keep", 4102444800000000000); r.Kind != ipc.KindOK {
		t.Fatalf("SET keep: %+v", r)
	}
	f.fsync.Store(true)
	r := set(fm, "job.lost", time.Now().UnixNano())
	if r.Kind != ipc.KindError || !strings.HasPrefix(r.Err, "shard unavailable: ") || !strings.Contains(r.Err, "injected EIO") {
		t.Fatalf("SET with a failing fsync: %+v, want ERROR shard unavailable: <reason>", r)
	}
	st := fm.waitHeartbeat("shard 0 failed", func(st ipc.Status) bool { return st.ShardErrors["0"] != "" })
	if !strings.Contains(st.ShardErrors["0"], "injected EIO") {
		t.Fatalf("ShardErrors %v, want the reason", st.ShardErrors)
	}
	if r := get(fm, "keep"); r.Kind != ipc.KindError || !strings.HasPrefix(r.Err, "shard unavailable: ") {
		t.Fatalf("GET on the failed shard: %+v", r)
	}
	f.fsync.Store(false)
	if r := waitReopened(fm, "job.lost", ipc.KindError); r.Err != "not found" {
		t.Fatalf("after reopen, GET job.lost: %+v, want not found", r)
	}
	if r := get(fm, "keep"); r.Kind != ipc.KindJob || r.Status != store.Planned {
		t.Fatalf("after reopen, GET keep: %+v", r)
	}
	if keys := shardLogKeys(t, dir); keys["job.lost"] || !keys["keep"] {
		t.Fatalf("shard file holds %v: want keep and not job.lost", keys)
	}
	fm.waitHeartbeat("shard 0 back", func(st ipc.Status) bool { return len(st.ShardErrors) == 0 })
	if lines := readFileLines(ran); len(lines) != 0 {
		t.Fatalf("a job answered ERROR ran: %v", lines)
	}
	// The failed fsync was the worker's journal's: the reopened shard
	// writes through a new one, durably again.
	if r := set(fm, "after", 4102444800000000000); r.Kind != ipc.KindOK {
		t.Fatalf("SET after the reopen: %+v", r)
	}
	if wals, _ := filepath.Glob(filepath.Join(dir, "shards", "journal-*.wal")); len(wals) != 1 {
		t.Fatalf("journal files after the reopen: %v, want the new one only", wals)
	}
}

// TestFault_WriteFailure: a failed write that leaves the log unusable fails
// the shard the same way; the reopened shard holds what was written before,
// and takes writes again. (A write the log undoes cleanly, as on a full
// disk, only fails its batch: e2e TestDiskFull.)
func TestFault_WriteFailure(t *testing.T) {
	dir := t.TempDir()
	var f faults
	fm := startTestWorker(t, faultSettings(dir), []int{0}, nil, f.options())
	if r := set(fm, "keep", 4102444800000000000); r.Kind != ipc.KindOK {
		t.Fatalf("SET keep: %+v", r)
	}
	f.write.Store(true)
	if r := set(fm, "lost", 4102444800000000000); r.Kind != ipc.KindError || !strings.HasPrefix(r.Err, "shard unavailable: ") {
		t.Fatalf("SET with a failing write: %+v", r)
	}
	f.write.Store(false)
	if r := waitReopened(fm, "lost", ipc.KindError); r.Err != "not found" {
		t.Fatalf("after reopen, GET lost: %+v", r)
	}
	if r := set(fm, "after", 4102444800000000000); r.Kind != ipc.KindOK {
		t.Fatalf("SET after reopen: %+v", r)
	}
	if keys := shardLogKeys(t, dir); !keys["keep"] || !keys["after"] || keys["lost"] {
		t.Fatalf("shard file holds %v", keys)
	}
}

// TestFault_TriggeredDurableBeforeExecution: a due job's execution starts
// only once its triggered record is durable: with the fsync of that record
// failing, it does not start; after the shard is reopened the job is
// planned again and runs exactly once (regression: the tick handed the job
// to the pipeline before its triggered record was written).
func TestFault_TriggeredDurableBeforeExecution(t *testing.T) {
	dir := t.TempDir()
	var f faults
	ran := filepath.Join(dir, "ran")
	gate := mkfifo(t, dir)
	rules := []store.Rule{shellRule("r", "job.", fmt.Sprintf("echo $TOCK_JOB_ID >> %s; read x < %s; true", ran, gate))}
	fm := startTestWorker(t, faultSettings(dir), []int{0}, rules, f.options())
	due := time.Now().Add(300 * time.Millisecond).UnixNano()
	if r := set(fm, "job.1", due); r.Kind != ipc.KindOK {
		t.Fatalf("SET: %+v", r)
	}
	f.fsync.Store(true)
	st := fm.waitHeartbeat("shard 0 failed on the trigger", func(st ipc.Status) bool { return st.ShardErrors["0"] != "" })
	if st.ExecutionsInflight != 0 || st.ExecutionsPending != 0 {
		t.Fatalf("an execution started although its triggered record is not durable: %+v", st)
	}
	f.fsync.Store(false)
	fm.waitHeartbeat("the rerun to start", func(st ipc.Status) bool { return st.ExecutionsInflight == 1 && len(st.ShardErrors) == 0 })
	openGateWorker(t, gate)
	fm.waitStatus(0, "job.1", store.Executed)
	if lines := readFileLines(ran); len(lines) != 1 {
		t.Fatalf("job ran %d times (%v), want once", len(lines), lines)
	}
}

func readFileLines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// openGateWorker keeps the FIFO open and full of lines until the test ends,
// so every read of it, now or later, goes on.
func openGateWorker(t *testing.T, path string) {
	t.Helper()
	g, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	if _, err := g.Write([]byte(strings.Repeat("\n", 64))); err != nil {
		t.Fatal(err)
	}
}
