package jslog

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/internal/natstest"
	"github.com/tockd/tock/store"
)

// testTimeout bounds every call against the cluster in a test: long
// enough for a raft election (up to 9 s) on a loaded machine.
const testTimeout = 90 * time.Second

var clusterSeq atomic.Int64

// engine connects a host to c with a cluster name of its own per test,
// so tests sharing a NATS cluster never share streams.
func engine(t *testing.T, c *natstest.Cluster, cluster, host string) *Engine {
	t.Helper()
	log := hclog.New(&hclog.LoggerOptions{Name: host, Level: testLogLevel, Output: testWriter{t}})
	e, err := Connect(Config{URLs: c.URLs(), Cluster: cluster, Replicas: len(c.Nodes), Host: host}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func clusterName(t *testing.T) string {
	return fmt.Sprintf("t%d", clusterSeq.Add(1))
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

func jobRec(id string, exec int64) store.Record {
	return store.Record{Type: store.RecordJob, Job: store.Job{ID: id, Execution: exec, Status: store.Planned}}
}

// jobsOf is every job of js by id, for comparing states.
func jobsOf(js *store.Jobs) map[string]store.Job {
	m := map[string]store.Job{}
	js.Query("", func(j store.Job) bool { m[j.ID] = j; return true })
	return m
}

func open(t *testing.T, e *Engine, shard int, hint uint64) (*ShardLog, *store.Jobs, Opened) {
	t.Helper()
	jobs := store.NewJobs()
	l, o, err := e.OpenShard(ctxT(t), shard, hint, jobs)
	if err != nil {
		t.Fatal(err)
	}
	return l, jobs, o
}

// testLogLevel is Warn; TOCK_TEST_DEBUG=1 shows the engines' debug lines.
var testLogLevel = func() hclog.Level {
	if os.Getenv("TOCK_TEST_DEBUG") != "" {
		return hclog.Debug
	}
	return hclog.Warn
}()

func benchCtx(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	b.Cleanup(cancel)
	return ctx
}
