package natstest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestClusterKillRestart: an R3 stream survives kill -9 of one node and
// of a second one after the first came back, and the restarted nodes rejoin
// on the same ports with their data.
func TestClusterKillRestart(t *testing.T) {
	c := Start(t, 3)
	nc, err := nats.Connect(c.URLs()[0]+","+c.URLs()[1]+","+c.URLs()[2], nats.ReconnectWait(50*time.Millisecond), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*ReadyTimeout)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	publish := func(want uint64) {
		t.Helper()
		deadline := time.Now().Add(ReadyTimeout)
		for {
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			ack, err := js.Publish(pctx, "t", []byte("x"), jetstream.WithMsgID(fmt.Sprint(want)), jetstream.WithExpectLastSequence(want-1))
			pcancel()
			if err == nil {
				if ack.Sequence != want {
					t.Fatalf("seq %d, want %d", ack.Sequence, want)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish %d: %v", want, err)
			}
		}
	}
	publish(1)
	c.Kill(0)
	if c.Nodes[0].PID != 0 {
		t.Fatal("pid after kill")
	}
	publish(2)
	c.Restart(0)
	c.WaitReady()
	c.Kill(1)
	publish(3)
	c.Restart(1)
	c.WaitReady()
	info, err := js.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 3 {
		t.Fatalf("%d msgs, want 3", n)
	}
}
