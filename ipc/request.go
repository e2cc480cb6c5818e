package ipc

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tockd/tock/store"
)

// Op is the operation of a Request.
type Op uint8

// Worker operations. Rule changes travel as Rules messages instead.
const (
	OpSet    Op = 1
	OpGet    Op = 2
	OpRemove Op = 3
	OpQuery  Op = 4 // Key is the prefix; Shard is AllShards
	OpStat   Op = 5 // Shard is AllShards
	// OpInfo is a GET that also returns the job's last outcome (INFO and
	// the REST API's job read).
	OpInfo Op = 6
	// OpList is one page of a paged listing of one shard: the jobs whose id
	// starts with Key and is greater than After, in id order, at most Limit,
	// filtered by Statuses (a bit per store.Status; 0 = every status).
	OpList Op = 7
)

// AllShards in Request.Shard addresses every shard the worker owns.
const AllShards = -1

func (o Op) String() string {
	switch o {
	case OpSet:
		return "set"
	case OpGet:
		return "get"
	case OpRemove:
		return "remove"
	case OpQuery:
		return "query"
	case OpStat:
		return "stat"
	case OpInfo:
		return "info"
	case OpList:
		return "list"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Mutating reports whether the op changes the store.
func (o Op) Mutating() bool { return o == OpSet || o == OpRemove }

// Request is one client command routed to a worker.
type Request struct {
	Seq       uint64
	Op        Op
	Shard     int
	Key       string // job id, or prefix for OpQuery
	Execution int64  // OpSet
	// Retried marks a request the master sends again because the worker it
	// was first sent to died before replying: that worker may have applied
	// it (docs/operations.md, "Supervision"). Carried in the op byte's
	// top bit, so a payload without it decodes as before.
	Retried bool
	// OpList only.
	After    string
	Limit    int32
	Statuses uint8
}

// opRetried is the op byte's flag for Request.Retried.
const opRetried = 0x80

// ErrMalformed marks a payload that does not decode.
var ErrMalformed = errors.New("ipc: malformed payload")

// AppendRequest appends r's binary payload:
// seq u64 | op u8 | shard i32 | key u32-len bytes | execution i64, and for
// OpList: after u32-len bytes | limit i32 | statuses u8. The op byte's top
// bit is Retried.
func AppendRequest(dst []byte, r Request) []byte {
	dst = binary.BigEndian.AppendUint64(dst, r.Seq)
	op := byte(r.Op)
	if r.Retried {
		op |= opRetried
	}
	dst = append(dst, op)
	dst = binary.BigEndian.AppendUint32(dst, uint32(int32(r.Shard)))
	dst = appendStr(dst, r.Key)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Execution))
	if r.Op == OpList {
		dst = appendStr(dst, r.After)
		dst = binary.BigEndian.AppendUint32(dst, uint32(r.Limit))
		dst = append(dst, r.Statuses)
	}
	return dst
}

// DecodeRequest decodes a Request payload.
func DecodeRequest(p []byte) (Request, error) {
	d := decoder{b: p}
	r := Request{Seq: d.u64()}
	op := d.u8()
	r.Op, r.Retried = Op(op&^opRetried), op&opRetried != 0
	r.Shard = int(int32(d.u32()))
	r.Key = d.str()
	r.Execution = int64(d.u64())
	if r.Op == OpList {
		r.After = d.str()
		r.Limit = int32(d.u32())
		r.Statuses = d.u8()
	}
	if err := d.finish(); err != nil {
		return Request{}, fmt.Errorf("request: %w", err)
	}
	if r.Op < OpSet || r.Op > OpList {
		return Request{}, fmt.Errorf("request: %w: unknown op %d", ErrMalformed, r.Op)
	}
	return r, nil
}

// decoder reads big-endian fields and remembers the first error, so decode
// functions read straight through and check once.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) need(n int) bool {
	if d.err != nil {
		return false
	}
	if len(d.b) < n {
		d.err = fmt.Errorf("%w: truncated", ErrMalformed)
		return false
	}
	return true
}

func (d *decoder) u8() uint8 {
	if !d.need(1) {
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) u32() uint32 {
	if !d.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) u64() uint64 {
	if !d.need(8) {
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) str() string {
	n := d.u32()
	if !d.need(int(min(n, uint32(len(d.b)+1)))) {
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.b))
	}
	return d.err
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

// JobLine is one job in a query reply.
type JobLine struct {
	ID        string
	Status    store.Status
	Execution int64
}

// Stat is one worker's share of the STAT figures.
type Stat struct {
	JobsTotal, JobsPlanned, JobsTriggered, JobsExecuted, JobsFailed int64
	ExecutionsPending, ExecutionsInflight                           int64
	Compression                                                     string
}
