package jslog

import (
	"fmt"
	"testing"
	"time"

	"github.com/tockd/tock/internal/natstest"
	"github.com/tockd/tock/store"
)

// BenchmarkShardLogAppend: appends to one R3 shard stream on the 3-node
// test cluster, pipelined (a Sync every syncEvery Writes, as the worker's
// committer does under load), with every record in a message of its own
// against 64 records packed per message, with nats-server's default
// sync_interval and with sync_interval "always". Reports records/s,
// msgs/s and the three servers' CPU per record.
//
//	go test -run '^$' -bench ShardLogAppend -benchtime 20000x ./store/jslog/
func BenchmarkShardLogAppend(b *testing.B) {
	for _, sync := range []string{"", "always"} {
		c := natstest.StartWith(b, 3, natstest.Options{SyncInterval: sync})
		name := "sync=default"
		if sync != "" {
			name = "sync=" + sync
		}
		for _, perMsg := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/records_per_msg=%d", name, perMsg), func(b *testing.B) {
				benchAppend(b, c, perMsg)
			})
		}
	}
}

const syncEvery = 256

func benchAppend(b *testing.B, c *natstest.Cluster, perMsg int) {
	cl := fmt.Sprintf("b%d_%d", perMsg, b.N)
	e, err := Connect(Config{URLs: c.URLs(), Cluster: cl, Replicas: 3, Host: "bench"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ctx := benchCtx(b)
	if err := e.EnsureStreams(ctx, 1); err != nil {
		b.Fatal(err)
	}
	l, _, err := e.OpenShard(ctx, 0, 1, store.NewJobs())
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]store.Record, perMsg)
	for i := range batch {
		batch[i] = jobRec(fmt.Sprintf("bench.job.%08d", i), 4102444800000000000)
	}
	b.ResetTimer()
	start, cpu := time.Now(), c.CPUTime()
	for i := 0; i < b.N; i++ {
		if err := l.Write(batch); err != nil {
			b.Fatal(err)
		}
		if i%syncEvery == syncEvery-1 {
			if err := l.Sync(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := l.Sync(); err != nil {
		b.Fatal(err)
	}
	secs := time.Since(start).Seconds()
	serverCPU := c.CPUTime() - cpu
	b.StopTimer()
	msgs, recs := l.Stats()
	b.ReportMetric(float64(msgs)/secs, "msgs/s")
	b.ReportMetric(float64(recs)/secs, "records/s")
	b.ReportMetric(float64(serverCPU.Microseconds())/float64(recs), "server-cpu-µs/record")
}
