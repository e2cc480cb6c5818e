package ipc

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"reflect"
	"sync"
	"testing"

	"github.com/tockd/tock/store"
)

func TestRequestRoundTrip(t *testing.T) {
	cases := map[string]Request{
		"set":   {Seq: 1, Op: OpSet, Shard: 3, Key: "backup.daily", Execution: 1711612800000000000},
		"get":   {Seq: 2, Op: OpGet, Shard: 0, Key: "x"},
		"query": {Seq: 3, Op: OpQuery, Shard: AllShards, Key: ""},
		"stat":  {Seq: 1 << 60, Op: OpStat, Shard: AllShards},
		"neg":   {Seq: 4, Op: OpSet, Shard: 1, Key: "past", Execution: -5},
		"info":  {Seq: 5, Op: OpInfo, Shard: 2, Key: "a b/c"},
		"list":  {Seq: 6, Op: OpList, Shard: 7, Key: "a.", After: "a.5", Limit: 1000, Statuses: 1 << 3},
		"retry": {Seq: 7, Op: OpSet, Shard: 1, Key: "again", Execution: 9, Retried: true},
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := DecodeRequest(AppendRequest(nil, r))
			if err != nil || got != r {
				t.Fatalf("got %+v, %v; want %+v", got, err, r)
			}
		})
	}
}

func TestReplyRoundTrip(t *testing.T) {
	cases := map[string]Reply{
		"ok":       {Seq: 1, Kind: KindOK},
		"error":    {Seq: 2, Kind: KindError, Err: "not found"},
		"job":      {Seq: 3, Kind: KindJob, Status: store.Executed, Execution: 42},
		"jobs":     {Seq: 4, Kind: KindJobs, Jobs: []JobLine{{ID: "a", Status: store.Planned, Execution: 1}, {ID: "b", Status: store.Failed, Execution: 2}}},
		"stat":     {Seq: 5, Kind: KindStat, Stat: Stat{JobsTotal: 9, JobsPlanned: 1, JobsTriggered: 2, JobsExecuted: 3, JobsFailed: 3, ExecutionsPending: 4, ExecutionsInflight: 5, Compression: "running"}},
		"notowned": {Seq: 6, Kind: KindNotOwned},
		"info":     {Seq: 7, Kind: KindInfo, Status: store.Failed, Execution: 9, Outcome: &store.Outcome{StartedAt: 1, Duration: 2, ExitCode: 3, HTTPStatus: 500, Error: "boom", Output: "out", Attempt: 2}},
		"info-new": {Seq: 8, Kind: KindInfo, Status: store.Planned, Execution: 9},
		"page":     {Seq: 9, Kind: KindPage, More: true, Jobs: []JobLine{{ID: "a", Execution: 1}}},
		"page-end": {Seq: 10, Kind: KindPage},
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := DecodeReply(AppendReply(nil, r))
			if err != nil || !reflect.DeepEqual(got, r) {
				t.Fatalf("got %+v, %v; want %+v", got, err, r)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	good := AppendRequest(nil, Request{Seq: 1, Op: OpGet, Key: "abc"})
	cases := map[string][]byte{
		"empty":     {},
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte{}, good...), 0),
		"bad op":    AppendRequest(nil, Request{Seq: 1, Op: 99}),
		"huge key":  {0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff},
	}
	for name, p := range cases {
		if _, err := DecodeRequest(p); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
	if _, err := DecodeReply([]byte{0, 0, 0, 0, 0, 0, 0, 1, 3, 0xff, 0xff, 0xff, 0xff}); !errors.Is(err, ErrMalformed) {
		t.Errorf("reply with absurd job count: %v", err)
	}
}

func TestReadFrameRejects(t *testing.T) {
	cases := map[string]struct {
		in   []byte
		want error
	}{
		"eof":       {nil, io.EOF},
		"empty":     {[]byte{0, 0, 0, 0}, ErrEmptyFrame},
		"too large": {[]byte{0xff, 0xff, 0xff, 0xff}, ErrFrameTooLarge},
		"cut short": {[]byte{0, 0, 0, 5, 1, 2}, io.ErrUnexpectedEOF},
	}
	for name, tc := range cases {
		_, err := ReadFrame(bufio.NewReader(bytes.NewReader(tc.in)))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
}

// TestLinkCoalescesAndOrders: frames sent from many goroutines all arrive,
// each sender's in order.
func TestLinkCoalescesAndOrders(t *testing.T) {
	a, b := net.Pipe()
	la, lb := NewLink(a), NewLink(b)
	defer lb.Close()
	const senders, each = 8, 500
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := la.SendRequest(Request{Seq: uint64(s*each + i), Op: OpGet, Shard: s}); err != nil {
					t.Error(err)
					return
				}
			}
		}(s)
	}
	next := make([]uint64, senders)
	for s := range next {
		next[s] = uint64(s * each)
	}
	for n := 0; n < senders*each; n++ {
		f, err := lb.Recv()
		if err != nil {
			t.Fatal(err)
		}
		r, err := DecodeRequest(f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if r.Seq != next[r.Shard] {
			t.Fatalf("sender %d: got seq %d, want %d", r.Shard, r.Seq, next[r.Shard])
		}
		next[r.Shard]++
	}
	wg.Wait()
	la.Close()
	if _, err := lb.Recv(); err == nil {
		t.Fatal("Recv after peer close: want an error")
	}
	if err := la.Send(TypeStatus, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add(AppendFrame(nil, TypeRequest, AppendRequest(nil, Request{Seq: 1, Op: OpSet, Shard: 2, Key: "a.b", Execution: 5})))
	f.Add(AppendFrame(nil, TypeReply, AppendReply(nil, Reply{Seq: 1, Kind: KindJobs, Jobs: []JobLine{{ID: "x", Execution: 3}}})))
	f.Add(AppendFrame(nil, TypeStatus, []byte(`{"jobs_total":3}`)))
	f.Add([]byte{0, 0, 0, 0})
	f.Add(AppendFrame(nil, TypeRequest, AppendRequest(nil, Request{Seq: 1, Op: OpSet, Shard: 2, Key: "a.b", Execution: 5, Retried: true})))
	f.Add(AppendFrame(nil, TypeRequest, AppendRequest(nil, Request{Seq: 1, Op: OpList, Shard: 2, Key: "a.", After: "a.b", Limit: 10})))
	f.Add(AppendFrame(nil, TypeReply, AppendReply(nil, Reply{Seq: 1, Kind: KindInfo, Outcome: &store.Outcome{Error: "x"}})))
	f.Add(AppendFrame(nil, TypeReply, AppendReply(nil, Reply{Seq: 1, Kind: KindPage, More: true, Jobs: []JobLine{{ID: "x"}}})))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		// RecvShared's reader, with its reused buffer, reads the same frames.
		shared := bufio.NewReader(bytes.NewReader(in))
		var buf []byte
		for {
			fr, err := ReadFrame(r)
			var sf Frame
			var serr error
			sf, buf, serr = readFrameInto(shared, buf)
			if (err == nil) != (serr == nil) || err == nil && (sf.Type != fr.Type || !bytes.Equal(sf.Payload, fr.Payload)) {
				t.Fatalf("readFrameInto: %v %v, ReadFrame: %v %v", sf, serr, fr, err)
			}
			if err != nil {
				return
			}
			switch fr.Type {
			case TypeRequest:
				if req, err := DecodeRequest(fr.Payload); err == nil {
					if again, err := DecodeRequest(AppendRequest(nil, req)); err != nil || again != req {
						t.Fatalf("request round trip: %+v vs %+v (%v)", req, again, err)
					}
				}
			case TypeReply:
				if rep, err := DecodeReply(fr.Payload); err == nil {
					if again, err := DecodeReply(AppendReply(nil, rep)); err != nil || !reflect.DeepEqual(again, rep) {
						t.Fatalf("reply round trip: %+v vs %+v (%v)", rep, again, err)
					}
				}
			default:
				var st Status
				_ = DecodeJSON(fr.Payload, &st) // must not panic; errors are expected
			}
		}
	})
}

// FuzzDecodePeerHello: the handshake decoder is fed by whoever dials the
// peer listener, before anything is known of them: it must never panic,
// and what it accepts survives a round trip and a check against itself.
func FuzzDecodePeerHello(f *testing.F) {
	ok := PeerHello{Cluster: "tock", Host: "h1", Proto: ProtoVersion, PeerProto: PeerProto, Version: "dev"}
	for _, h := range []PeerHello{ok, {Error: "refused"}, {Cluster: "", Host: "h"}, {Cluster: "c", Host: "bad host"}} {
		b, err := EncodeJSON(h)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"cluster":"tock","host":"h2","proto":2,"peer_proto":1,"extra":[1,2,3]}`))
	f.Add([]byte(`{"cluster":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := DecodePeerHello(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		b, err := EncodeJSON(h)
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodePeerHello(b)
		if err != nil || again != h {
			t.Fatalf("round trip: %+v vs %+v (%v)", h, again, err)
		}
		if h.Error == "" {
			if err := CheckPeer(h, h); !errors.Is(err, ErrPeerMismatch) {
				t.Fatalf("a hello checked against itself must clash on the host name: %v", err)
			}
		}
	})
}

func TestCheckPeer(t *testing.T) {
	ours := PeerHello{Cluster: "tock", Host: "h1", Proto: ProtoVersion, PeerProto: PeerProto}
	theirs := ours
	theirs.Host = "h2"
	if err := CheckPeer(ours, theirs); err != nil {
		t.Fatalf("matching hellos: %v", err)
	}
	for name, change := range map[string]func(*PeerHello){
		"cluster": func(h *PeerHello) { h.Cluster = "x" }, "proto": func(h *PeerHello) { h.Proto = 1 },
		"peer proto": func(h *PeerHello) { h.PeerProto = 9 }, "host": func(h *PeerHello) { h.Host = "h1" },
		"refusal": func(h *PeerHello) { h.Error = "no" },
	} {
		bad := theirs
		change(&bad)
		if err := CheckPeer(ours, bad); !errors.Is(err, ErrPeerMismatch) {
			t.Errorf("%s: %v, want a mismatch", name, err)
		}
	}
	if _, err := DecodePeerHello(make([]byte, 5000)); !errors.Is(err, ErrMalformed) {
		t.Errorf("an oversized hello: %v", err)
	}
}

// TestLinkBatchesAndFlush: batches queued by SendRequests from several
// senders, each writing its own with Flush while the writer loop also
// runs, arrive whole and in order per sender; RecvShared reads them, and
// FrameBuffered says when the next frame is already there.
func TestLinkBatchesAndFlush(t *testing.T) {
	a, b := net.Pipe()
	la, lb := NewLink(a), NewLink(b)
	defer lb.Close()
	const senders, batches, each = 4, 200, 7
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			seq := uint64(s * batches * each)
			for i := 0; i < batches; i++ {
				rs := make([]*Request, each)
				for j := range rs {
					rs[j] = &Request{Seq: seq, Op: OpSet, Shard: s, Key: "k"}
					seq++
				}
				if err := la.SendRequests(rs); err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					la.Flush() // else the writer loop writes it
				}
			}
		}(s)
	}
	next := make([]uint64, senders)
	for s := range next {
		next[s] = uint64(s * batches * each)
	}
	buffered := 0
	for n := 0; n < senders*batches*each; n++ {
		if lb.FrameBuffered() {
			buffered++
		}
		f, err := lb.RecvShared()
		if err != nil {
			t.Fatal(err)
		}
		r, err := DecodeRequest(f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if r.Seq != next[r.Shard] {
			t.Fatalf("sender %d: got seq %d, want %d", r.Shard, r.Seq, next[r.Shard])
		}
		next[r.Shard]++
	}
	wg.Wait()
	if buffered == 0 {
		t.Fatal("FrameBuffered never saw a whole frame in the buffer")
	}
	if lb.FrameBuffered() {
		t.Fatal("FrameBuffered with nothing sent")
	}
	la.Close()
	if _, err := lb.RecvShared(); err == nil {
		t.Fatal("RecvShared after peer close: want an error")
	}
	la.Flush() // a closed link: nothing to do, no panic
}
