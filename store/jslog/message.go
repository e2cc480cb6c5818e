package jslog

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tockd/tock/store"
)

// What a message of a shard stream holds (docs/scale-out.md, "Shard
// streams"). Every message carries Tock-Kind, Tock-Epoch and Tock-Host, so
// a verifier can prove one writer per epoch from the stream alone.
const (
	hdrKind  = "Tock-Kind"
	hdrEpoch = "Tock-Epoch"
	hdrHost  = "Tock-Host"
	// hdrSnap is on snapshot chunks and the end marker: the sequence of
	// the snapshot's begin marker.
	hdrSnap = "Tock-Snap"
)

// Message kinds.
const (
	KindRec       = "rec"        // a batch of records (store frames), on .rec
	KindOwn       = "own"        // a fence record, on .own
	KindSnapBegin = "snap-begin" // a compaction's snapshot starts, on .rec
	KindSnap      = "snap"       // a chunk of the snapshot (store frames), on .rec
	KindSnapEnd   = "snap-end"   // the snapshot is complete, on .rec
)

// Message is one message of a shard stream, decoded.
type Message struct {
	Seq     uint64
	Kind    string
	Epoch   uint64
	Host    string
	Snap    uint64         // snap and snap-end: the begin marker's sequence
	Records []store.Record // rec and snap
	// Raw is the payload (frames for rec and snap, fence JSON for own).
	Raw []byte
	// Stale is set by ReadShard on a message of an older epoch than the
	// fence before it: an append of a fenced owner that was in flight when
	// the fence landed, never acknowledged, skipped by replay.
	Stale bool
}

// fenceRecord is the payload of an own message.
type fenceRecord struct {
	Epoch uint64 `json:"epoch"`
	Host  string `json:"host"`
}

// msgID is the Nats-Msg-Id of a log's n-th message: the writer (host name
// and the opener's token, newWriter), epoch and n (and ":r<round>" when
// recovery sends it again). The host alone is not enough: two openers
// with one host name (two workers of a host during a handoff, two
// machines left with the same default host name) racing for a shard pick
// the same epoch, and the stream's dedup, checked before any expected
// sequence, would answer the loser's fence and appends with the winner's
// acks, as duplicates: acknowledged, never stored. With the token the
// loser's publishes are new messages, refused by the sequence checks.
func msgID(writer string, epoch, n uint64) string {
	return writer + ":" + strconv.FormatUint(epoch, 10) + ":" + strconv.FormatUint(n, 10)
}

// newWriter is the Msg-Id prefix of one opener of a shard: its host name
// and 64 random bits, so no two openers ever share Msg-Ids.
func newWriter(host string) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // cannot fail on Linux
	}
	return host + "#" + hex.EncodeToString(b[:])
}

// newMsg builds a message with every header and its Msg-Id.
func newMsg(subject, kind, host string, epoch uint64, id string, data []byte) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set(hdrKind, kind)
	m.Header.Set(hdrEpoch, strconv.FormatUint(epoch, 10))
	m.Header.Set(hdrHost, host)
	m.Header.Set(jetstream.MsgIDHeader, id)
	return m
}

// ErrBadMessage is wrapped by every decoding error of a stream message.
var ErrBadMessage = errors.New("bad shard stream message")

// decodeMessage decodes a stored message from its headers and payload.
// Records are decoded only when decodeRecords is set (replay applies the
// frames in place instead).
func decodeMessage(seq uint64, subject string, h nats.Header, data []byte, decodeRecords bool) (Message, error) {
	m := Message{Seq: seq, Kind: h.Get(hdrKind), Host: h.Get(hdrHost), Raw: data}
	bad := func(format string, args ...any) (Message, error) {
		return Message{}, fmt.Errorf("message %d on %s: %w: %s", seq, subject, ErrBadMessage, fmt.Sprintf(format, args...))
	}
	epoch, err := strconv.ParseUint(h.Get(hdrEpoch), 10, 64)
	if err != nil {
		return bad("%s header %q", hdrEpoch, h.Get(hdrEpoch))
	}
	m.Epoch = epoch
	if m.Host == "" {
		return bad("no %s header", hdrHost)
	}
	own := strings.HasSuffix(subject, ".own")
	switch m.Kind {
	case KindOwn:
		if !own {
			return bad("fence record on %s", subject)
		}
		f, err := decodeFence(data)
		if err != nil {
			return bad("%v", err)
		}
		if f.Epoch != m.Epoch || f.Host != m.Host {
			return bad("fence record says epoch %d host %q, headers epoch %d host %q", f.Epoch, f.Host, m.Epoch, m.Host)
		}
		return m, nil
	case KindRec, KindSnapBegin, KindSnap, KindSnapEnd:
		if own {
			return bad("%s message on the fence subject", m.Kind)
		}
	default:
		return bad("%s %q", hdrKind, m.Kind)
	}
	if m.Kind == KindSnap || m.Kind == KindSnapEnd {
		if m.Snap, err = strconv.ParseUint(h.Get(hdrSnap), 10, 64); err != nil || m.Snap == 0 || m.Snap >= seq {
			return bad("%s header %q", hdrSnap, h.Get(hdrSnap))
		}
	}
	if (m.Kind == KindSnapBegin || m.Kind == KindSnapEnd) && len(data) != 0 {
		return bad("%s marker with a %d-byte payload", m.Kind, len(data))
	}
	if (m.Kind == KindRec || m.Kind == KindSnap) && decodeRecords {
		recs, err := store.DecodeFrames(data)
		if err != nil {
			return bad("%v", err)
		}
		m.Records = recs
	}
	return m, nil
}

// decodeFence decodes a fence record's payload.
func decodeFence(data []byte) (fenceRecord, error) {
	var f fenceRecord
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return fenceRecord{}, fmt.Errorf("fence record: %w", err)
	}
	if dec.More() {
		return fenceRecord{}, errors.New("fence record: trailing data")
	}
	if f.Epoch == 0 || f.Host == "" {
		return fenceRecord{}, fmt.Errorf("fence record: epoch %d host %q", f.Epoch, f.Host)
	}
	return f, nil
}

func encodeFence(f fenceRecord) []byte {
	b, err := json.Marshal(f)
	if err != nil {
		panic(err) // two plain fields cannot fail to marshal
	}
	return b
}
