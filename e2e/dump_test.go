package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tockd/tock/store"
)

// TestDump_ClusterLogfiles: tock dump reads what a real cluster wrote: a
// shard logfile with a job, a job that ran (its status and outcome), and
// rules.log as NDJSON with passwords removed (docs/operations.md, docs/protocol.md, docs/files.md).
func TestDump_ClusterLogfiles(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	cl.expect(`r1 RULE SET rule.dump dump. shell "true"`, "r1 OK")
	cl.expect("r2 RULE SET rule.hook hook. http POST https://user:secret@example.com/h", "r2 OK")
	cl.expect("r3 SET dump.later 4102444800000000000", "r3 OK")
	cl.expect("r4 SET dump.now 0", "r4 OK")
	waitStatus(t, cl, "dump.now", "executed", 20*time.Second)
	if err := c.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	data := filepath.Join(dir, "data")
	shards, err := filepath.Glob(filepath.Join(data, "shards", "*.log"))
	if err != nil || len(shards) == 0 {
		t.Fatalf("shard logfiles: %v, %v", shards, err)
	}
	var all []string
	for _, path := range shards {
		out, err := runTock(t, "dump", path)
		if err != nil {
			t.Fatalf("tock dump %s: %v\n%s", path, err, out)
		}
		if out = strings.TrimSpace(out); out != "" {
			all = append(all, strings.Split(out, "\n")...)
		}
		if strings.Contains(out, "SET dump.later ") {
			if !hasLine(strings.Split(out, "\n"), "SET dump.later 4102444800000000000 planned") {
				t.Fatalf("shard %s:\n%s", path, out)
			}
			checkVerify(t, path)
		}
	}
	t.Logf("shard dumps:\n%s", strings.Join(all, "\n"))
	want := []string{"SET dump.later 4102444800000000000 planned", "SET dump.now 0 planned", "STATUS dump.now 0 triggered"}
	for _, w := range want {
		if !hasLine(all, w) {
			t.Fatalf("no %q in the shard dumps:\n%s", w, strings.Join(all, "\n"))
		}
	}
	if !hasLinePrefix(all, "STATUS dump.now 0 executed started_at=") || !hasLineContaining(all, " exit_code=0 http_status=0 error=\"\" output=") {
		t.Fatalf("no outcome of dump.now in the shard dumps:\n%s", strings.Join(all, "\n"))
	}

	rules := filepath.Join(data, "rules.log")
	out, err := runTock(t, "dump", "--format", "json", rules)
	if err != nil {
		t.Fatalf("tock dump --format json rules.log: %v\n%s", err, out)
	}
	wantRules := []string{
		`{"type":"rule_set","identifier":"rule.dump","pattern":"dump.","runner":{"type":"shell","command":"true"}}`,
		`{"type":"rule_set","identifier":"rule.hook","pattern":"hook.","runner":{"type":"http","method":"POST","url":"https://user@example.com/h"}}`,
	}
	if got := strings.TrimSpace(out); got != strings.Join(wantRules, "\n") {
		t.Fatalf("rules.log as JSON:\n%s\nwant:\n%s", got, strings.Join(wantRules, "\n"))
	}
	for _, l := range wantRules {
		if !json.Valid([]byte(l)) {
			t.Fatalf("not JSON: %s", l)
		}
	}
	checkVerify(t, rules)
}

func checkVerify(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	out, err := runTock(t, "dump", "--verify", path)
	if err != nil || !strings.HasPrefix(out, "ok: ") || !strings.HasSuffix(out, " records, "+itoa64(st.Size())+" bytes\n") {
		t.Fatalf("tock dump --verify %s: %v\n%s", path, err, out)
	}
}

func hasLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

func hasLinePrefix(lines []string, p string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}

func hasLineContaining(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

func itoa64(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestDump_FollowSignals: the real binary's --follow prints the initial
// records and appended ones, and exits 0 on SIGINT and on SIGTERM
// (ztick.md §8.3 items 46, 47, 49).
func TestDump_FollowSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "000.log")
			writeRecords(t, path, store.Record{Type: store.RecordJob, Job: store.Job{ID: "first", Execution: 1}})
			out := &syncBuffer{}
			cmd := exec.Command(tockBin, "dump", "--follow", path)
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var waitErr error
			exited := make(chan struct{})
			go func() { waitErr = cmd.Wait(); close(exited) }()
			t.Cleanup(func() {
				select {
				case <-exited:
				default:
					cmd.Process.Kill()
					<-exited
				}
			})
			waitFor(t, 10*time.Second, "the initial record", func() bool { return contains(out.String(), "SET first 1 planned\n") })
			writeRecords(t, path, store.Record{Type: store.RecordJobRemoval, ID: "first"})
			waitFor(t, 10*time.Second, "the appended record", func() bool { return contains(out.String(), "REMOVE first\n") })
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-exited:
				if waitErr != nil {
					t.Fatalf("exit after %v: %v\n%s", sig, waitErr, out.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("tock dump --follow did not exit after %v", sig)
			}
			if got := out.String(); got != "SET first 1 planned\nREMOVE first\n" {
				t.Fatalf("output:\n%s", got)
			}
		})
	}
}

func writeRecords(t *testing.T, path string, recs ...store.Record) {
	t.Helper()
	l, err := store.OpenLogfile(path, store.FsyncNever)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Write(recs); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}
