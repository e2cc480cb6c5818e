package ipc

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// WorkerFD is the fd number of the link in a worker process (the first of
// exec.Cmd.ExtraFiles).
const WorkerFD = 3

// EnvWorker is set in a worker's environment; `tock worker` refuses to run
// without it (it is started by the master, not by hand).
const EnvWorker = "TOCK_WORKER_LINK"

// ErrClosed is returned by Send on a closed link.
var ErrClosed = errors.New("ipc: link closed")

// maxPending bounds the bytes queued for writing; Send blocks beyond it so a
// stalled peer cannot grow memory without bound.
const maxPending = 32 << 20

// Link is one end of a master↔worker connection. Send may be called from
// any goroutine; frames queued while a write is in flight are coalesced into
// the next single write. Recv must be called from one goroutine only.
type Link struct {
	conn net.Conn
	r    *bufio.Reader
	rbuf []byte // RecvShared's frame buffer

	mu      sync.Mutex
	cond    *sync.Cond
	pending []byte
	// queued mirrors len(pending) for Full, which takes no lock.
	queued atomic.Int64
	closed bool
	err    error
	// writing is set while one goroutine (writeLoop, or a sender in
	// Flush) writes a taken buffer: frames are written by one at a time,
	// in the order queued. spare is the other buffer.
	writing bool
	spare   []byte
	written chan struct{} // closed when the writer goroutine returns
}

// NewLink wraps conn and starts its writer goroutine.
func NewLink(conn net.Conn) *Link {
	l := &Link{conn: conn, r: bufio.NewReaderSize(conn, 256<<10), written: make(chan struct{})}
	l.cond = sync.NewCond(&l.mu)
	go l.writeLoop()
	return l
}

// Socketpair returns two connected Unix stream sockets: one for the master
// and one to hand to the worker as an inherited fd.
func Socketpair() (master, worker *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "ipc-master"), os.NewFile(uintptr(fds[1]), "ipc-worker"), nil
}

// FileLink makes a Link from a socket file (the file is closed: the Link
// owns a duplicate).
func FileLink(f *os.File) (*Link, error) {
	conn, err := net.FileConn(f)
	closeErr := f.Close()
	if err != nil {
		return nil, fmt.Errorf("link from fd %d: %w", f.Fd(), err)
	}
	if closeErr != nil {
		conn.Close()
		return nil, fmt.Errorf("close fd after dup: %w", closeErr)
	}
	return NewLink(conn), nil
}

// Send queues one frame.
func (l *Link) Send(t Type, payload []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.waitRoomLocked(); err != nil {
		return err
	}
	l.pending = AppendFrame(l.pending, t, payload)
	l.queued.Store(int64(len(l.pending)))
	l.signalLocked()
	return nil
}

// SendJSON queues a JSON control message.
func (l *Link) SendJSON(t Type, v any) error {
	b, err := EncodeJSON(v)
	if err != nil {
		return err
	}
	return l.Send(t, b)
}

// SendRequest queues a Request, encoding it straight into the write buffer.
// It never blocks (the master calls it holding its router lock): callers
// that want backpressure call WaitRoom first.
func (l *Link) SendRequest(r Request) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.closedErrLocked(); err != nil {
		return err
	}
	l.pending = appendEncoded(l.pending, TypeRequest, func(b []byte) []byte { return AppendRequest(b, r) })
	l.queued.Store(int64(len(l.pending)))
	l.signalLocked()
	return nil
}

// SendRequests queues several Requests as SendRequest does, under one lock
// and with one wake-up of the writer: the master's one IPC write per worker
// per read batch.
func (l *Link) SendRequests(rs []*Request) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.closedErrLocked(); err != nil {
		return err
	}
	for _, r := range rs {
		l.pending = appendRequestFrame(l.pending, r)
	}
	l.queued.Store(int64(len(l.pending)))
	l.signalLocked()
	return nil
}

// appendRequestFrame appends r as a TypeRequest frame.
func appendRequestFrame(dst []byte, r *Request) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, byte(TypeRequest))
	dst = AppendRequest(dst, *r)
	putFrameLen(dst[start:])
	return dst
}

// putFrameLen fills the length field of the frame that starts b.
func putFrameLen(b []byte) {
	n := uint32(len(b) - 4)
	b[0], b[1], b[2], b[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
}

// PostJSON queues a control message without waiting for room, like
// SendRequest.
func (l *Link) PostJSON(t Type, v any) error {
	b, err := EncodeJSON(v)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.closedErrLocked(); err != nil {
		return err
	}
	l.pending = AppendFrame(l.pending, t, b)
	l.queued.Store(int64(len(l.pending)))
	l.signalLocked()
	return nil
}

// Full reports, without locking, whether the write queue is over its bound
// (a caller then WaitRooms before sending more).
func (l *Link) Full() bool { return l.queued.Load() > maxPending }

// WaitRoom blocks while the write queue is over its bound, until the peer
// reads or the link closes: backpressure taken before any lock is held.
func (l *Link) WaitRoom() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for !l.closed && len(l.pending) > maxPending {
		l.cond.Wait()
	}
}

// SendReply queues a Reply, encoding it straight into the write buffer.
func (l *Link) SendReply(r Reply) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.waitRoomLocked(); err != nil {
		return err
	}
	l.pending = appendEncoded(l.pending, TypeReply, func(b []byte) []byte { return AppendReply(b, r) })
	l.queued.Store(int64(len(l.pending)))
	l.signalLocked()
	return nil
}

// SendReplies queues several Replies as SendReply does, under one lock and
// with one wake-up of the writer.
func (l *Link) SendReplies(rs []Reply) error {
	if len(rs) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.waitRoomLocked(); err != nil {
		return err
	}
	for i := range rs {
		start := len(l.pending)
		l.pending = append(l.pending, 0, 0, 0, 0, byte(TypeReply))
		l.pending = AppendReply(l.pending, rs[i])
		putFrameLen(l.pending[start:])
	}
	l.queued.Store(int64(len(l.pending)))
	l.signalLocked()
	return nil
}

// appendEncoded appends a frame whose payload enc writes in place.
func appendEncoded(dst []byte, t Type, enc func([]byte) []byte) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, byte(t))
	dst = enc(dst)
	n := uint32(len(dst) - start - 4)
	dst[start], dst[start+1], dst[start+2], dst[start+3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return dst
}

func (l *Link) waitRoomLocked() error {
	for !l.closed && len(l.pending) > maxPending {
		l.cond.Wait()
	}
	return l.closedErrLocked()
}

func (l *Link) closedErrLocked() error {
	if l.closed {
		if l.err != nil {
			return fmt.Errorf("%w: %v", ErrClosed, l.err)
		}
		return ErrClosed
	}
	return nil
}

// signalLocked wakes the writer loop for newly queued frames, unless a
// write is in progress: its writer hands over what is queued when done.
func (l *Link) signalLocked() {
	if !l.writing {
		l.cond.Broadcast()
	}
}

// takeLocked marks a write in progress and takes the queued frames.
func (l *Link) takeLocked() []byte {
	l.writing = true
	buf := l.pending
	l.pending = l.spare[:0]
	l.spare = nil
	l.queued.Store(0)
	l.cond.Broadcast() // room for blocked senders
	return buf
}

// doneLocked ends a write: buf becomes the spare buffer, and the writer
// loop is woken when more was queued meanwhile or the link is closing.
func (l *Link) doneLocked(buf []byte) {
	l.writing = false
	if cap(buf) <= 4<<20 { // don't pin a burst's buffer forever
		l.spare = buf[:0]
	}
	if len(l.pending) > 0 || l.closed {
		l.cond.Broadcast()
	}
}

// Flush writes the queued frames on the caller's goroutine, unless a write
// is in progress (its writer takes them next): a sender that queued a
// batch saves the writer loop's wake-up, a switch per batch. It may block
// while the peer does not read, so call it holding no lock.
func (l *Link) Flush() {
	l.mu.Lock()
	if l.writing || l.closed || len(l.pending) == 0 {
		l.mu.Unlock()
		return
	}
	buf := l.takeLocked()
	l.mu.Unlock()
	_, err := l.conn.Write(buf)
	l.mu.Lock()
	l.doneLocked(buf)
	l.mu.Unlock()
	if err != nil {
		l.fail(err)
	}
}

func (l *Link) writeLoop() {
	defer close(l.written)
	for {
		l.mu.Lock()
		for l.writing || len(l.pending) == 0 && !l.closed {
			l.cond.Wait()
		}
		if len(l.pending) == 0 {
			l.mu.Unlock()
			return
		}
		buf := l.takeLocked()
		l.mu.Unlock()
		_, err := l.conn.Write(buf)
		l.mu.Lock()
		l.doneLocked(buf)
		l.mu.Unlock()
		if err != nil {
			l.fail(err)
			return
		}
	}
}

func (l *Link) fail(err error) {
	l.mu.Lock()
	if !l.closed {
		l.closed, l.err = true, err
	}
	l.pending = nil
	l.cond.Broadcast()
	l.mu.Unlock()
	l.conn.Close()
}

// Recv reads the next frame. Any error means the link is unusable.
func (l *Link) Recv() (Frame, error) {
	return ReadFrame(l.r)
}

// RecvShared reads the next frame as Recv does, into a buffer the Link
// reuses: the payload is valid only until the next RecvShared (a reader
// that decodes each frame before the next needs no allocation per frame).
// Like Recv, from one goroutine only.
func (l *Link) RecvShared() (Frame, error) {
	f, buf, err := readFrameInto(l.r, l.rbuf)
	l.rbuf = buf
	return f, err
}

// FrameBuffered reports whether a whole frame is buffered, so the next
// Recv or RecvShared returns without waiting for the peer.
func (l *Link) FrameBuffered() bool {
	if l.r.Buffered() < 4 {
		return false
	}
	hdr, err := l.r.Peek(4)
	if err != nil {
		return false
	}
	n := uint32(hdr[0])<<24 | uint32(hdr[1])<<16 | uint32(hdr[2])<<8 | uint32(hdr[3])
	return uint64(l.r.Buffered()) >= 4+uint64(n)
}

// Close writes what is queued, then closes the connection. Safe to call
// more than once and concurrently with Send.
func (l *Link) Close() error {
	l.mu.Lock()
	l.closed = true
	l.cond.Broadcast()
	l.mu.Unlock()
	<-l.written
	return l.conn.Close()
}

// Abort closes the connection at once, dropping queued frames; a blocked
// Recv returns.
func (l *Link) Abort() {
	l.fail(ErrClosed)
}
