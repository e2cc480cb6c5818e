package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDiskFull: when a shard's log cannot grow (here the workers' file-size
// limit stands in for a full disk), the SET gets ERROR and is not visible,
// every acknowledged SET stays readable, and reads keep working (docs/files.md).
func TestDiskFull(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) not installed")
	}
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	writeJobs(t, cl, "full", 50)
	var largest int64
	files, _ := filepath.Glob(filepath.Join(dir, "data", "shards", "*.log"))
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && st.Size() > largest {
			largest = st.Size()
		}
	}
	limit := fmt.Sprint(largest + 256)
	for _, pid := range workerPIDs(t, c.cmd.Process.Pid) {
		if out, err := exec.Command(prlimit, "--pid", fmt.Sprint(pid), "--fsize="+limit).CombinedOutput(); err != nil {
			t.Skipf("cannot lower the workers' file-size limit: %v %s", err, out)
		}
	}
	var acked, refused []string
	for i := 0; i < 3000 && len(refused) < 5; i++ {
		id := fmt.Sprintf("fill.%d", i)
		got := cl.do(fmt.Sprintf("s%d SET %s 4102444800000000000", i, id))
		switch {
		case got == fmt.Sprintf("s%d OK", i):
			acked = append(acked, id)
		case strings.HasPrefix(got, fmt.Sprintf("s%d ERROR write failed", i)):
			refused = append(refused, id)
		default:
			t.Fatalf("SET %s: %q", id, got)
		}
	}
	if len(refused) == 0 {
		t.Fatal("no SET was refused with the log full")
	}
	for _, id := range refused {
		if got := cl.do("g GET " + id); got != "g ERROR not found" {
			t.Fatalf("refused SET of %s is visible: %q", id, got)
		}
	}
	for _, id := range acked {
		if got := cl.do("g GET " + id); got != "g OK planned 4102444800000000000" {
			t.Fatalf("acknowledged SET of %s: %q", id, got)
		}
	}
	checkJobs(t, cl, "full", 50)
	t.Logf("%d SETs acknowledged, %d refused once the logs were full", len(acked), len(refused))
}
