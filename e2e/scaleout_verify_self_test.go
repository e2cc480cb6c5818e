package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"github.com/tockd/tock/internal/natstest"
	"github.com/tockd/tock/store"
	"github.com/tockd/tock/store/jslog"
)

// TestScaleOut_VerifierCatchesStaleWriter: the offline stream check of the
// scale-out tests is not vacuous. Two engines take shard 0 in turn (the
// first one's next write is fenced, as it must be); the check passes and
// finds the first writer's acknowledged job; then records forged past the
// engine's fence — a second writer in an epoch, a record of an epoch no
// fence opened, a fence that does not raise the epoch — are each
// reported, and a fenced owner's in-flight append stored after the fence
// is counted but never applied.
func TestScaleOut_VerifierCatchesStaleWriter(t *testing.T) {
	nc := natstest.Start(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	connect := func(host string) *jslog.Engine {
		e, err := jslog.Connect(jslog.Config{URLs: nc.URLs(), Cluster: soCluster, Replicas: 3, Host: host}, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		return e
	}
	a, b := connect("hA"), connect("hB")
	if err := a.EnsureStreams(ctx, soShards); err != nil {
		t.Fatal(err)
	}
	logA, openA, err := a.OpenShard(ctx, 0, 1, store.NewJobs())
	if err != nil {
		t.Fatal(err)
	}
	set := func(id string, exec int64) []store.Record {
		return []store.Record{{Type: store.RecordJob, Job: store.Job{ID: id, Execution: exec}}}
	}
	if err := logA.Write(set("v.acked", 10)); err != nil {
		t.Fatal(err)
	}
	if err := logA.Sync(); err != nil {
		t.Fatal(err)
	}
	_, openB, err := b.OpenShard(ctx, 0, 0, store.NewJobs())
	if err != nil {
		t.Fatal(err)
	}
	if openB.Epoch <= openA.Epoch {
		t.Fatalf("second owner's epoch %d, first's %d", openB.Epoch, openA.Epoch)
	}
	// The first owner is fenced: its write is never acknowledged.
	werr := logA.Write(set("v.fenced", 20))
	if werr == nil {
		werr = logA.Sync()
	}
	if !errors.Is(werr, jslog.ErrFenced) {
		t.Fatalf("write after the fence: %v, want ErrFenced", werr)
	}

	c := &soClusterT{t: t, eng: connect("e2e-verifier")}
	st, err := c.readStreams()
	if err != nil {
		t.Fatal(err)
	}
	if st.nviolation != 0 {
		t.Fatalf("violations in an honest stream: %q", st.violations)
	}
	if j, ok := st.jobs["v.acked"]; !ok || j.exec != 10 {
		t.Fatalf("acknowledged job in the stream: %+v %v", j, ok)
	}
	if _, ok := st.jobs["v.fenced"]; ok {
		t.Fatal("a fenced write is in the stream")
	}
	if lost, _ := checkLedgerOffline(map[string]int64{"v.acked": 10, "v.never": 30}, st); lost != 1 {
		t.Fatalf("offline check: %d lost, want 1 (v.never)", lost)
	}

	// Forge what the engine forbids, bypassing its expected-sequence check.
	forge := func(subject, kind string, epoch uint64, host string, data []byte) {
		m := nats.NewMsg(subject)
		m.Data = data
		m.Header.Set("Tock-Kind", kind)
		m.Header.Set("Tock-Epoch", fmt.Sprint(epoch))
		m.Header.Set("Tock-Host", host)
		if _, err := a.JetStream().PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	frames := func(id string, exec int64) []byte {
		b, err := store.AppendFrames(nil, set(id, exec))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rec := fmt.Sprintf("tock.%s.s000.rec", soCluster)
	own := fmt.Sprintf("tock.%s.s000.own", soCluster)
	// The fenced owner's append stored after the fence: allowed, counted,
	// never applied.
	forge(rec, jslog.KindRec, openA.Epoch, "hA", frames("v.stale", 40))
	// A second writer in the current epoch.
	forge(rec, jslog.KindRec, openB.Epoch, "hX", frames("v.second", 50))
	// A record of an epoch no fence opened.
	forge(rec, jslog.KindRec, openB.Epoch+5, "hB", frames("v.unfenced", 60))
	// A fence that does not raise the epoch.
	forge(own, jslog.KindOwn, openB.Epoch, "hB", []byte(fmt.Sprintf(`{"epoch":%d,"host":"hB"}`, openB.Epoch)))
	st, err = c.readStreams()
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(st.violations, "\n")
	for _, want := range []string{
		fmt.Sprintf("rec of epoch %d by hX, whose fence was hB's", openB.Epoch),
		fmt.Sprintf("rec of epoch %d (hB) that no fence opened", openB.Epoch+5),
		fmt.Sprintf("fence epoch %d (hB) after fence epoch %d", openB.Epoch, openB.Epoch),
	} {
		if !strings.Contains(all, want) {
			t.Errorf("violations lack %q:\n%s", want, all)
		}
	}
	if st.nviolation != 3 || st.stale != 1 {
		t.Errorf("%d violations, %d stale appends; want 3 and 1:\n%s", st.nviolation, st.stale, all)
	}
	if _, ok := st.jobs["v.stale"]; ok {
		t.Error("the fenced owner's stale append was applied")
	}
}
