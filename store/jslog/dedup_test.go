package jslog

import (
	"fmt"
	"testing"

	"github.com/tockd/tock/internal/natstest"
	"github.com/tockd/tock/store"
)

// TestMsgIDDedup: a message published again with its Msg-Id (an
// ambiguous timeout's retry) is answered as a duplicate at its original
// sequence and not stored twice; a Sync whose acks were lost confirms
// what the stream holds instead of storing it again; a message that never
// left is sent by Sync. The stream ends with every batch exactly once.
func TestMsgIDDedup(t *testing.T) {
	c := natstest.Start(t, 3)
	cl := clusterName(t)
	e := engine(t, c, cl, "h1")
	if err := e.EnsureStreams(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	l, _, _ := open(t, e, 0, 1)
	batch := func(i int) []store.Record { return []store.Record{jobRec(fmt.Sprintf("j%d", i), int64(i))} }
	last := func() *outMsg {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.inflight[len(l.inflight)-1]
	}

	// 1. Same bytes, same Msg-Id, again: a duplicate.
	if err := l.Write(batch(1)); err != nil {
		t.Fatal(err)
	}
	first := last()
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	ack, err := e.js.PublishMsg(ctxT(t), copyMsg(first.msg))
	if err != nil || !ack.Duplicate || ack.Sequence != first.seq {
		t.Fatalf("re-publish: %+v, %v; want a duplicate at %d", ack, err, first.seq)
	}

	// 2. Stored, but the acks were lost: Sync finds them in the stream.
	for i := 2; i <= 4; i++ {
		if err := l.Write(batch(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := waitStored(t, e, 0, l.LastSeq()); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	for _, o := range l.inflight {
		o.fut = nil // as if no ack ever came
	}
	l.mu.Unlock()
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}

	// 3. Never sent: Sync sends it.
	l.mu.Lock()
	l.n++
	o := &outMsg{n: l.n, seq: l.last + 1, msg: newMsg(l.recSubj, KindRec, l.host, l.epoch, msgID(l.writer, l.epoch, l.n), must(store.AppendFrames(nil, batch(5))))}
	l.inflight = append(l.inflight, o)
	l.last = o.seq
	l.mu.Unlock()
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := l.Write(batch(6)); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}

	count := map[string]int{}
	err = e.ReadShard(ctxT(t), 0, func(m Message) error {
		for _, r := range m.Records {
			count[r.Job.ID]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 6; i++ {
		if n := count[fmt.Sprintf("j%d", i)]; n != 1 {
			t.Fatalf("j%d stored %d times (%v)", i, n, count)
		}
	}
}

// waitStored polls until shard's stream has a message at seq.
func waitStored(t *testing.T, e *Engine, shard int, seq uint64) error {
	t.Helper()
	ctx := ctxT(t)
	for {
		last, err := e.lastSeq(ctx, StreamName(e.cfg.Cluster, shard))
		if err != nil || last >= seq {
			return err
		}
		if err := pause(ctx); err != nil {
			return err
		}
	}
}
