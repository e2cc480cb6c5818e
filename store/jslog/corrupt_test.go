package jslog

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/tockd/tock/internal/natstest"
	"github.com/tockd/tock/store"
)

// TestReplayRefusesCorruptMessages: a message in a shard stream that tock
// did not write as it should (a stray publish by another NATS client, a
// cut payload, a bad header) makes the next open fail with an error
// wrapping ErrBadMessage — no panic, and nothing of the stream applied to
// the caller's jobs (not the good batches before it, not the good frames
// of the bad message): a half-replayed shard must never be served.
func TestReplayRefusesCorruptMessages(t *testing.T) {
	c := natstest.Start(t, 3)
	good, err := store.AppendFrames(nil, []store.Record{jobRec("a", 1), jobRec("b", 2)})
	if err != nil {
		t.Fatal(err)
	}
	cut := append(append([]byte(nil), good...), good[:len(good)/2+3]...) // whole frames, then a cut one
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-1] ^= 0xff // the second frame's CRC fails
	hdr := func(kind, epoch, host string) nats.Header {
		h := nats.Header{}
		if kind != "" {
			h.Set(hdrKind, kind)
		}
		if epoch != "" {
			h.Set(hdrEpoch, epoch)
		}
		if host != "" {
			h.Set(hdrHost, host)
		}
		return h
	}
	cases := []struct {
		name string
		own  bool
		h    nats.Header
		data []byte
	}{
		{"no headers", false, nats.Header{}, good},
		{"cut frame", false, hdr(KindRec, "1", "h1"), cut},
		{"bad crc", false, hdr(KindRec, "1", "h1"), flipped},
		{"bad epoch", false, hdr(KindRec, "x", "h1"), good},
		{"unknown kind", false, hdr("upsert", "1", "h1"), good},
		{"snap without begin", false, func() nats.Header { h := hdr(KindSnap, "1", "h1"); h.Set(hdrSnap, "99999"); return h }(), good},
		{"fence json", true, hdr(KindOwn, "1", "h1"), []byte(`{"epoch":`)},
		{"fence mismatch", true, hdr(KindOwn, "1", "h1"), []byte(`{"epoch":7,"host":"h9"}`)},
		{"rec on own", true, hdr(KindRec, "1", "h1"), good},
	}
	// One engine for every case (a shard each): an engine's log lines
	// must not outlive the test that owns its logger.
	e := engine(t, c, clusterName(t), "h1")
	if err := e.EnsureStreams(ctxT(t), len(cases)); err != nil {
		t.Fatal(err)
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, _, _ := open(t, e, i, 1)
			if err := l.Write([]store.Record{jobRec("before", int64(i))}); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			subj := RecSubject(e.cfg.Cluster, i)
			if tc.own {
				subj = OwnSubject(e.cfg.Cluster, i)
			}
			m := nats.NewMsg(subj)
			m.Header, m.Data = tc.h, tc.data
			if _, err := e.js.PublishMsg(ctxT(t), m); err != nil {
				t.Fatal(err)
			}
			jobs := store.NewJobs()
			_, _, err := e.OpenShard(ctxT(t), i, 1, jobs)
			if !errors.Is(err, ErrBadMessage) && !errors.Is(err, store.ErrInvalidRecord) {
				t.Fatalf("open over a corrupt message: %v, want ErrBadMessage", err)
			}
			if jobs.Len() != 0 {
				t.Fatalf("a failed replay left %d jobs in the caller's store (%v)", jobs.Len(), jobsOf(jobs))
			}
			if _, _, err := e.ReplayShard(ctxT(t), i, store.NewJobs()); err == nil {
				t.Fatal("ReplayShard over a corrupt message: no error")
			}
		})
	}
}
