package jslog

import (
	"bytes"
	"errors"
	"reflect"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/tockd/tock/store"
)

// Seeds live in testdata/fuzz/<Target>/ (real messages as this package
// writes them, and damaged ones).

// FuzzDecodeMessage: any headers and payload decode to a message or an
// error wrapping ErrBadMessage, never a panic; a record message that
// decodes re-encodes to the same payload.
func FuzzDecodeMessage(f *testing.F) {
	f.Fuzz(func(t *testing.T, subject, kind, epoch, host, snap string, seq uint64, data []byte) {
		h := nats.Header{}
		for k, v := range map[string]string{hdrKind: kind, hdrEpoch: epoch, hdrHost: host, hdrSnap: snap} {
			if v != "" {
				h.Set(k, v)
			}
		}
		m, err := decodeMessage(seq, subject, h, data, true)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		if m.Kind == KindRec || m.Kind == KindSnap {
			again, err := store.AppendFrames(nil, m.Records)
			if err != nil || !bytes.Equal(again, data) {
				t.Fatalf("records %+v re-encode to % x (%v), payload was % x", m.Records, again, err, data)
			}
		}
		// What replay does with it must not panic either.
		r := newReplayer(store.NewJobs())
		_ = r.apply(seq, subject, h, data) // errors are what is being fuzzed
	})
}

// FuzzDecodeFence: a fence payload decodes to a non-zero epoch and a host,
// or an error; what decodes re-encodes to an equivalent record.
func FuzzDecodeFence(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := decodeFence(data)
		if err != nil {
			return
		}
		if fr.Epoch == 0 || fr.Host == "" {
			t.Fatalf("accepted %+v", fr)
		}
		again, err := decodeFence(encodeFence(fr))
		if err != nil || !reflect.DeepEqual(again, fr) {
			t.Fatalf("round trip of %+v: %+v, %v", fr, again, err)
		}
	})
}

// FuzzReplayer: any sequence of messages (cut from one byte string: kind,
// epoch, job) is replayed without a panic; records of an epoch older than
// the fence before them never reach the state; and a complete snapshot at
// the current epoch always replaces the state: replaying it after
// arbitrary messages gives the snapshot's jobs.
func FuzzReplayer(f *testing.F) {
	f.Fuzz(func(t *testing.T, script []byte) {
		r := newReplayer(store.NewJobs())
		seq := uint64(0)
		for i := 0; i+2 <= len(script); i += 2 {
			seq++
			kinds := []string{KindRec, KindOwn, KindSnapBegin, KindSnap, KindSnapEnd}
			kind := kinds[int(script[i])%len(kinds)]
			subject := "tock.c.s000.rec"
			var data []byte
			epoch := uint64(script[i+1]>>4)%3 + 1
			h := nats.Header{}
			h.Set(hdrKind, kind)
			h.Set(hdrEpoch, strconv.FormatUint(epoch, 10))
			h.Set(hdrHost, "h")
			switch kind {
			case KindOwn:
				subject = "tock.c.s000.own"
				data = encodeFence(fenceRecord{Epoch: epoch, Host: "h"})
			case KindRec, KindSnap:
				data, _ = store.AppendFrames(nil, []store.Record{jobRec("j"+strconv.Itoa(int(script[i+1]%8)), int64(script[i+1]))})
			}
			if kind == KindRec && epoch < r.fence.Epoch {
				// A stale record: it must not change the state.
				before := jobsOf(r.jobs)
				_ = r.apply(seq, subject, h, data)
				if after := jobsOf(r.jobs); !reflect.DeepEqual(before, after) {
					t.Fatalf("a record of epoch %d after a fence of epoch %d changed the state", epoch, r.fence.Epoch)
				}
				continue
			}
			if kind == KindSnap || kind == KindSnapEnd {
				h.Set(hdrSnap, strconv.FormatUint(max(1, uint64(script[i+1])%seq), 10))
			}
			_ = r.apply(seq, subject, h, data) // damaged snapshots are errors or ignored
		}
		// A complete snapshot of one job now replaces whatever came before.
		base := seq + 1
		for _, m := range []struct {
			kind string
			data []byte
		}{{KindSnapBegin, nil}, {KindSnap, must(store.AppendFrames(nil, []store.Record{jobRec("only", 7)}))}, {KindSnapEnd, nil}} {
			seq++
			h := nats.Header{}
			h.Set(hdrKind, m.kind)
			h.Set(hdrEpoch, strconv.FormatUint(max(1, r.fence.Epoch), 10))
			h.Set(hdrHost, "h")
			if m.kind != KindSnapBegin {
				h.Set(hdrSnap, strconv.FormatUint(base, 10))
			}
			if err := r.apply(seq, "tock.c.s000.rec", h, m.data); err != nil {
				t.Fatal(err)
			}
		}
		got := jobsOf(r.jobs)
		if len(got) != 1 || got["only"].Execution != 7 {
			t.Fatalf("after a complete snapshot: %+v", got)
		}
	})
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
