package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tockd/tock/internal/natstest"
	"github.com/tockd/tock/store/jslog"
)

// jetStreamConfig is a one-host cluster keeping its shards in the NATS
// cluster nc, under cluster name name.
func jetStreamConfig(t *testing.T, dir string, nc *natstest.Cluster, name string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	advertise := l.Addr().String()
	l.Close()
	urls := make([]string, len(nc.URLs()))
	for i, u := range nc.URLs() {
		urls[i] = fmt.Sprintf("%q", u)
	}
	return fmt.Sprintf(`[log]
level = "debug"
[controller]
listen = "127.0.0.1:0"
[database]
data_dir = %q
framerate = 200
persistence = "jetstream"
[cluster]
workers = 2
shards = 8
worker_check_interval = "200ms"
worker_boot_timeout = "60s"
worker_shutdown_timeout = "10s"
[http]
listen = ""
[jetstream]
urls = [%s]
cluster_name = %q
replicas = 3
host_name = "h1"
advertise = %q
`, filepath.Join(dir, "data"), strings.Join(urls, ", "), name, advertise)
}

// TestJetStream_SingleHost: `tock serve` with persistence = "jetstream"
// keeps every acknowledged SET in the shard streams: a worker killed with
// kill -9 is replaced and its shards are replayed from the streams, and so
// is the whole host after kill -9 of the master and every worker. Every
// open fences the stream at a higher epoch.
func TestJetStream_SingleHost(t *testing.T) {
	nc := natstest.Start(t, 3)
	dir := t.TempDir()
	c := startCluster(t, dir, jetStreamConfig(t, dir, nc, "e2e"))
	cl := dial(t, c.addr)
	writeJobs(t, cl, "js", 500)
	cl.expect("r1 REMOVE js.0", "r1 OK")

	pid := c.cmd.Process.Pid
	workers := workerPIDs(t, pid)
	if len(workers) != 2 {
		t.Fatalf("want 2 workers, got %v", workers)
	}
	syscall.Kill(workers[0], syscall.SIGKILL)
	waitFor(t, 60*time.Second, "the killed worker's shards served again", func() bool {
		for i := 1; i < 500; i++ {
			want := fmt.Sprintf("g%d OK planned %d", i, 4102444800000000000+int64(i))
			if got := cl.do(fmt.Sprintf("g%d GET js.%d", i, i)); got != want {
				return false
			}
		}
		return true
	})
	cl.expect("g0 GET js.0", "g0 ERROR not found")
	writeJobs(t, cl, "after", 100)

	for _, w := range workerPIDs(t, pid) {
		syscall.Kill(w, syscall.SIGKILL)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	<-c.exited
	waitFor(t, 5*time.Second, "workers gone", func() bool {
		for _, w := range workerPIDs(t, pid) {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", w)); err == nil && !isZombie(string(b)) {
				return false
			}
		}
		return true
	})
	c.start()
	cl = dial(t, c.addr)
	cl.expect("g0 GET js.0", "g0 ERROR not found")
	for i := 1; i < 500; i++ {
		want := fmt.Sprintf("g%d OK planned %d", i, 4102444800000000000+int64(i))
		if got := cl.do(fmt.Sprintf("g%d GET js.%d", i, i)); got != want {
			t.Fatalf("after the host restart, job %d: got %q, want %q", i, got, want)
		}
	}
	checkJobs(t, cl, "after", 100)

	// The streams as a verifier reads them: fence epochs strictly grow,
	// and every record message that is not a fenced writer's leftover
	// carries the epoch of the fence before it.
	e, err := jslog.Connect(jslog.Config{URLs: nc.URLs(), Cluster: "e2e", Replicas: 3, Host: "verifier"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for shard := 0; shard < 8; shard++ {
		var epoch uint64
		fences := 0
		err := e.ReadShard(ctx, shard, func(m jslog.Message) error {
			if m.Kind == jslog.KindOwn {
				if m.Epoch <= epoch {
					return fmt.Errorf("fence at %d with epoch %d after epoch %d", m.Seq, m.Epoch, epoch)
				}
				epoch = m.Epoch
				fences++
				return nil
			}
			if m.Stale {
				return nil // a fenced writer's unacknowledged leftover
			}
			if m.Epoch != epoch || m.Host != "h1" {
				return fmt.Errorf("message %d by %s at epoch %d under the fence of epoch %d", m.Seq, m.Host, m.Epoch, epoch)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("shard %d: %v", shard, err)
		}
		if fences < 2 {
			t.Fatalf("shard %d: %d fences, want one per open (at least 2)", shard, fences)
		}
	}
}
