package master

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tockd/tock/protocol"
)

// This file holds the connection figures behind /connz, /varz and
// /metrics. The request path pays for them with a few uncontended atomic
// adds per batch of lines on the connection's own counters (no shared
// counter, no lock, no allocation); totals are summed when someone asks.

// closeReason says why a connection closed, in nats-server's words where
// they fit (docs/monitoring.md lists them).
type closeReason int32

const (
	reasonNone closeReason = iota
	reasonClientClosed
	reasonSlowConsumer
	reasonAuthTimeout
	reasonAuthFailure
	reasonServerShutdown
	reasonMaxConnections
	reasonParseError
	reasonTLSHandshake
	reasonReadError
	reasonWriteError
	numReasons
)

var reasonNames = [numReasons]string{
	reasonNone:           "",
	reasonClientClosed:   "Client Closed",
	reasonSlowConsumer:   "Slow Consumer",
	reasonAuthTimeout:    "Auth Timeout",
	reasonAuthFailure:    "Authentication Failure",
	reasonServerShutdown: "Server Shutdown",
	reasonMaxConnections: "Max Connections Exceeded",
	reasonParseError:     "Parse Error",
	reasonTLSHandshake:   "TLS Handshake Error",
	reasonReadError:      "Read Error",
	reasonWriteError:     "Write Error",
}

func (r closeReason) String() string { return reasonNames[r] }

// numOpSlots covers protocol.Op values (0 = a line that did not parse) up
// to the last one, OpInfo; TestOpSlotsCoverEveryOp fails when an op is
// added after it without moving this bound.
const numOpSlots = int(protocol.OpInfo) + 1

// connCounters are one connection's figures. The reader goroutine writes
// the in-figures, the writer goroutine the out-figures and results; each
// publishes a batch at once (see readBatch, writeBatch).
type connCounters struct {
	inMsgs, inBytes   atomic.Int64
	outMsgs, outBytes atomic.Int64
	lastActivity      atomic.Int64 // unix ns of the latest request, coarse (clock)
	// results counts replies by command and result: [op][0] ok, [op][1] error.
	results [numOpSlots][2]atomic.Int64
	reason  atomic.Int32 // closeReason; the first cause found wins

	mu         sync.Mutex // guards what changes rarely:
	name       string     // the auth token's name
	namespace  string
	tlsVersion string
	tlsCipher  string
}

// setReason records why the connection closes unless a cause is known.
func (c *connCounters) setReason(r closeReason) { c.reason.CompareAndSwap(0, int32(r)) }

// readBatch accumulates the reader's figures between publications.
type readBatch struct {
	msgs, bytes int64
	last        int64
}

// add counts one request line of n bytes (its newline included).
func (b *readBatch) add(n int) {
	b.msgs++
	b.bytes += int64(n)
}

// publish makes the batch visible; called when the reader is about to
// wait for more input, and at the end.
func (b *readBatch) publish(c *connCounters, now int64) {
	if b.msgs == 0 {
		return
	}
	c.inMsgs.Add(b.msgs)
	c.inBytes.Add(b.bytes)
	if now != b.last {
		c.lastActivity.Store(now)
		b.last = now
	}
	b.msgs, b.bytes = 0, 0
}

// writeBatch accumulates the writer's figures between flushes.
type writeBatch struct {
	msgs, bytes int64
	results     [numOpSlots][2]int64
	dirty       bool
}

// add counts one reply: its lines, bytes and result (the last line's
// word after the request id is ERROR or not).
func (b *writeBatch) add(op uint8, out []byte) {
	if len(out) == 0 {
		return
	}
	b.msgs += int64(bytes.Count(out, newline))
	b.bytes += int64(len(out))
	res := 0
	if replyIsError(out) {
		res = 1
	}
	if int(op) < numOpSlots {
		b.results[op][res]++
	}
	b.dirty = true
}

var newline = []byte{'\n'}

// replyIsError reports whether a reply's last line is "<rid> ERROR ..." or
// "ERROR ...".
func replyIsError(out []byte) bool {
	last := out[bytes.LastIndexByte(out[:len(out)-1], '\n')+1:]
	if bytes.HasPrefix(last, []byte("ERROR")) {
		return true
	}
	if sp := bytes.IndexByte(last, ' '); sp >= 0 {
		return bytes.HasPrefix(last[sp+1:], []byte("ERROR"))
	}
	return false
}

func (b *writeBatch) publish(c *connCounters) {
	if !b.dirty {
		return
	}
	c.outMsgs.Add(b.msgs)
	c.outBytes.Add(b.bytes)
	for op := range b.results {
		for res, n := range b.results[op] {
			if n != 0 {
				c.results[op][res].Add(n)
				b.results[op][res] = 0
			}
		}
	}
	b.msgs, b.bytes, b.dirty = 0, 0, false
}

// readReason classifies the error that ended the reader.
func readReason(err error, authed bool, stopping bool) closeReason {
	var ne net.Error
	switch {
	case stopping:
		return reasonServerShutdown
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed):
		return reasonClientClosed
	case errors.As(err, &ne) && ne.Timeout() && !authed:
		return reasonAuthTimeout
	case errors.Is(err, io.ErrNoProgress):
		return reasonParseError
	}
	return reasonReadError
}

// writeReason classifies a failed write: a write deadline passed means
// the client stopped reading.
func writeReason(err error) closeReason {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return reasonSlowConsumer
	case errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed):
		return reasonClientClosed
	}
	return reasonWriteError
}

// connTotals are the figures of connections that have closed, so /varz
// and /metrics totals cover every connection since start.
type connTotals struct {
	inMsgs, inBytes, outMsgs, outBytes atomic.Int64
	results                            [numOpSlots][2]atomic.Int64
	closed                             [numReasons]atomic.Int64
}

func (t *connTotals) add(c *connCounters, reason closeReason) {
	t.inMsgs.Add(c.inMsgs.Load())
	t.inBytes.Add(c.inBytes.Load())
	t.outMsgs.Add(c.outMsgs.Load())
	t.outBytes.Add(c.outBytes.Load())
	for op := range c.results {
		for res := range c.results[op] {
			if n := c.results[op][res].Load(); n != 0 {
				t.results[op][res].Add(n)
			}
		}
	}
	t.closed[reason].Add(1)
}

// clock is a coarse wall clock in unix ns, ticked by housekeeping, so the
// request path records activity without a time.Now per line.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() int64 { return c.ns.Load() }

func (c *clock) tick(t time.Time) { c.ns.Store(t.UnixNano()) }
