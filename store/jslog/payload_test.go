package jslog

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tockd/tock/internal/natstest"
	"github.com/tockd/tock/store"
)

// TestRecordOverMaxPayload: a record larger than the servers' max_payload
// (1 MiB; a tock record may be up to 16 MiB: a rule's arguments are each
// under 64 KiB, but a line of max_line_bytes may carry many) cannot be one message. Write must refuse it at once as
// an invalid record, with nothing published, and the log must go on: not
// a Sync that retries an unsendable message for the whole recovery
// timeout with every Write of the shard waiting, and then a failed shard.
func TestRecordOverMaxPayload(t *testing.T) {
	c := natstest.Start(t, 3)
	e := engine(t, c, clusterName(t), "h1")
	if err := e.EnsureStreams(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	l, _, _ := open(t, e, 0, 1)
	defer l.Close()
	// A rule with many long arguments (each under the 64 KiB field
	// limit): 1.5 MiB, within store.MaxPayload.
	args := make([]string, 24)
	for i := range args {
		args[i] = strings.Repeat("a", 64<<10-1)
	}
	big := store.Record{Type: store.RecordRule, Rule: store.Rule{ID: "r", Pattern: "p", Runner: store.Runner{Kind: store.RunnerDirect, Args: args}}}
	start := time.Now()
	err := l.Write([]store.Record{jobRec("small", 1), big})
	if err == nil {
		err = l.Sync()
		t.Fatalf("a 1.5 MiB record was accepted; Sync then said %v after %v, log failed: %v", err, time.Since(start), l.Failed())
	}
	if !errors.Is(err, store.ErrInvalidRecord) {
		t.Fatalf("Write of an oversized record: %v, want ErrInvalidRecord", err)
	}
	if f := l.Failed(); f != nil {
		t.Fatalf("log failed after refusing a record: %v", f)
	}
	if err := l.Write([]store.Record{jobRec("after", 2)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	jobs := store.NewJobs()
	if _, _, err := e.ReplayShard(ctxT(t), 0, jobs); err != nil {
		t.Fatal(err)
	}
	if got := jobsOf(jobs); len(got) != 1 || got["after"].ID != "after" {
		t.Fatalf("stream holds %v, want only the job written after the refusal", got)
	}
}
