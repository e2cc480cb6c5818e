package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tockd/tock/master"
)

// shardFile is the logfile of the shard of job id in a test cluster (8 shards).
func shardFile(dir, id string) string {
	return filepath.Join(dir, "data", "shards", fmt.Sprintf("%03d.log", master.ShardOf(id, 8)))
}

// TestCorruption_TornTail: garbage after the last record (a torn write) is
// trimmed with a warning; every record before it is served.
func TestCorruption_TornTail(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	writeJobs(t, cl, "torn", 100)
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	path := shardFile(dir, "torn.1")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 0, 40, 1, 2, 3}) // a record header promising more than is there
	f.Close()
	c.start()
	cl = dial(t, c.addr)
	checkJobs(t, cl, "torn", 100)
	if !strings.Contains(c.logs.String(), "trimmed torn tail") {
		t.Fatal("no warning about the trimmed tail")
	}
}

// TestCorruption_MiddleRecord: a bad record before the tail stops that shard
// with an error naming file and offset; the other shards keep serving and
// nothing is silently dropped.
func TestCorruption_MiddleRecord(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	writeJobs(t, cl, "mid", 200)
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	bad := master.ShardOf("mid.0", 8)
	path := shardFile(dir, "mid.0")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[12+8+3] ^= 0xff // inside the first record's payload (after header and frame header)
	os.WriteFile(path, b, 0o600)
	c.start()
	cl = dial(t, c.addr)
	got := cl.do("g GET mid.0")
	if !strings.Contains(got, "g ERROR shard unavailable") || !strings.Contains(got, path) || !strings.Contains(got, "offset 12") {
		t.Fatalf("GET in the corrupt shard: %q", got)
	}
	served := 0
	for i := 0; i < 200; i++ {
		id := fmt.Sprintf("mid.%d", i)
		if master.ShardOf(id, 8) == bad {
			continue
		}
		want := fmt.Sprintf("g%d OK planned %d", i, 4102444800000000000+int64(i))
		if got := cl.do(fmt.Sprintf("g%d GET %s", i, id)); got != want {
			t.Fatalf("healthy shard, %s: got %q", id, got)
		}
		served++
	}
	if served == 0 {
		t.Fatal("no job outside the corrupt shard")
	}
	if got := cl.do("s SET mid.0 5"); !strings.Contains(got, "s ERROR shard unavailable") {
		t.Fatalf("SET into the corrupt shard: %q", got)
	}
}

// TestCorruption_PhasedRestartWithDownShard: a rollout moves a shard that
// could not be opened like any other; it stays down with its reason.
func TestCorruption_PhasedRestartWithDownShard(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	writeJobs(t, cl, "down", 50)
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	path := shardFile(dir, "down.0")
	b, _ := os.ReadFile(path)
	b[12+8+3] ^= 0xff
	os.WriteFile(path, b, 0o600)
	c.start()
	c.cmd.Process.Signal(syscall.SIGUSR1)
	waitFor(t, 60*time.Second, "rollout done", func() bool {
		return strings.Contains(c.logs.String(), "phased restart done")
	})
	cl = dial(t, c.addr)
	if got := cl.do("g GET down.0"); !strings.Contains(got, "shard unavailable") {
		t.Fatalf("GET in the corrupt shard after the rollout: %q", got)
	}
}
