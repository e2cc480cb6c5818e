package worker

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/tockd/tock/ipc"
)

// The reader hands frames over in batches whose buffers are reused: every
// frame arrives once, in order, with its own payload, however the batches
// fall and after the buffers went round; the link's end closes the inbox
// after the last frame, with the error kept.
func TestReadLoopBatchesReuseBuffers(t *testing.T) {
	a, b := net.Pipe()
	master, wl := ipc.NewLink(a), ipc.NewLink(b)
	w := &Worker{link: wl, inbox: make(chan *frameBatch, inboxBatches), spare: make(chan *frameBatch, inboxBatches+1)}
	go w.readLoop()
	const n = 5000
	go func() {
		for i := range n {
			// Sizes vary so that batches end on bytes as well as frames.
			p := fmt.Appendf(nil, "frame %d %*s", i, i%700, "")
			if err := master.Send(ipc.TypeOutcome, p); err != nil {
				t.Errorf("send %d: %v", i, err)
				return
			}
		}
		master.Close()
	}()
	next, batches := 0, 0
	for fb := range w.inbox {
		batches++
		if len(fb.frames) == 0 || len(fb.frames) > batchFrames {
			t.Fatalf("batch of %d frames", len(fb.frames))
		}
		for _, f := range fb.frames {
			want := fmt.Sprintf("frame %d %*s", next, next%700, "")
			if f.Type != ipc.TypeOutcome || string(f.Payload) != want {
				t.Fatalf("frame %d: got %s %q", next, f.Type, f.Payload)
			}
			next++
		}
		w.recycle(fb)
	}
	if next != n {
		t.Fatalf("got %d frames, want %d", next, n)
	}
	if err, _ := w.linkErr.Load().(error); !errors.Is(err, io.EOF) {
		t.Fatalf("link error %v, want EOF", err)
	}
	t.Logf("%d frames in %d batches", n, batches)
}
