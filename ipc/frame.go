package ipc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ProtoVersion is the version of this wire protocol; see the package doc.
const ProtoVersion = 2 // 2: OpInfo, OpList, KindInfo, KindPage

// MaxFrame bounds a frame's length field (type byte + payload).
const MaxFrame = 256 << 20

// Type is a frame's message type.
type Type uint8

// Message types. W→M: sent by the worker; M→W: sent by the master.
const (
	TypeHello     Type = 1  // W→M JSON Hello
	TypeWelcome   Type = 2  // M→W JSON Welcome
	TypeReady     Type = 3  // W→M JSON Ready: shards opened and replayed
	TypeRequest   Type = 4  // M→W binary Request
	TypeReply     Type = 5  // W→M binary Reply
	TypeStatus    Type = 6  // W→M JSON Status (heartbeat)
	TypeRules     Type = 7  // M→W JSON Rules: the whole rule set
	TypeRulesAck  Type = 8  // W→M JSON RulesAck
	TypeRelease   Type = 9  // M→W JSON Release: flush and close these shards
	TypeReleased  Type = 10 // W→M JSON Released
	TypeAcquire   Type = 11 // M→W JSON Acquire: open and replay these shards
	TypeShutdown  Type = 12 // M→W JSON Shutdown: drain executions and exit
	TypeCall      Type = 13 // M→W JSON Call: a control query (gc-stats, backtraces, compact)
	TypeCallReply Type = 14 // W→M JSON CallReply
	TypeOutcome   Type = 15 // W→M JSON Outcome: a result for a shard the worker no longer owns
	TypePrepare   Type = 16 // M→W JSON Prepare: read these shards ahead of a handoff
	TypePrepared  Type = 17 // W→M JSON Prepared

	// Between masters (peer links, see peer.go): the dialing master
	// forwards Requests and Outcomes and reads Replies.
	TypePeerHello   Type = 18 // dialer → acceptor JSON PeerHello
	TypePeerWelcome Type = 19 // acceptor → dialer JSON PeerHello (Error set: refused)
	TypePeerPing    Type = 20 // either way, empty: the link is alive
)

func (t Type) String() string {
	names := map[Type]string{
		TypeHello: "hello", TypeWelcome: "welcome", TypeReady: "ready", TypeRequest: "request",
		TypeReply: "reply", TypeStatus: "status", TypeRules: "rules", TypeRulesAck: "rules-ack",
		TypeRelease: "release", TypeReleased: "released", TypeAcquire: "acquire",
		TypeShutdown: "shutdown", TypeCall: "call", TypeCallReply: "call-reply", TypeOutcome: "outcome",
		TypePrepare: "prepare", TypePrepared: "prepared",
		TypePeerHello: "peer-hello", TypePeerWelcome: "peer-welcome", TypePeerPing: "peer-ping",
	}
	if n, ok := names[t]; ok {
		return n
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Frame is one decoded message. Payload is owned by the receiver.
type Frame struct {
	Type    Type
	Payload []byte
}

// ErrFrameTooLarge is returned for a length field beyond MaxFrame.
var ErrFrameTooLarge = errors.New("ipc: frame too large")

// ErrEmptyFrame is returned for a zero length field.
var ErrEmptyFrame = errors.New("ipc: empty frame")

// AppendFrame appends one encoded frame to dst.
func AppendFrame(dst []byte, t Type, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)+1))
	dst = append(dst, byte(t))
	return append(dst, payload...)
}

// ReadFrame reads one frame. An EOF before the first byte is io.EOF; a
// frame cut short is io.ErrUnexpectedEOF.
func ReadFrame(r *bufio.Reader) (Frame, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n == 0 {
		return Frame{}, ErrEmptyFrame
	}
	if n > MaxFrame {
		return Frame{}, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n)
	}
	f, _, err := readFrameBody(r, n, nil)
	return f, err
}

// readFrameInto is ReadFrame reading the frame into buf when it is large
// enough (frames up to maxSharedFrame; a larger one gets its own buffer,
// which is not kept); it returns the buffer to use next time.
func readFrameInto(r *bufio.Reader, buf []byte) (Frame, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Frame{}, buf, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return Frame{}, buf, ErrEmptyFrame
	}
	if n > MaxFrame {
		return Frame{}, buf, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n)
	}
	if n > maxSharedFrame {
		f, _, err := readFrameBody(r, n, nil)
		return f, buf, err
	}
	return readFrameBody(r, n, buf)
}

// maxSharedFrame bounds the frame buffer RecvShared keeps.
const maxSharedFrame = 64 << 10

// readFrameBody reads a frame of n bytes (type and payload) into buf,
// grown when it is too small.
func readFrameBody(r *bufio.Reader, n uint32, buf []byte) (Frame, []byte, error) {
	if uint32(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, buf, err
	}
	return Frame{Type: Type(buf[0]), Payload: buf[1:]}, buf, nil
}
