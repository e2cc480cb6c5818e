package ipc

import (
	"encoding/binary"
	"fmt"

	"github.com/tockd/tock/store"
)

// ReplyKind says which fields of a Reply are set.
type ReplyKind uint8

const (
	// KindOK is a bare success (SET, REMOVE).
	KindOK ReplyKind = 0
	// KindError carries Err, the reason sent to the client.
	KindError ReplyKind = 1
	// KindJob carries one job's Status and Execution (GET).
	KindJob ReplyKind = 2
	// KindJobs carries Jobs (QUERY).
	KindJobs ReplyKind = 3
	// KindStat carries Stat (STAT).
	KindStat ReplyKind = 4
	// KindNotOwned: the worker does not own the shard (it is being handed
	// off); the master holds and re-routes the request.
	KindNotOwned ReplyKind = 5
)

// Reply answers the Request with the same Seq.
type Reply struct {
	Seq       uint64
	Kind      ReplyKind
	Err       string
	Status    store.Status
	Execution int64
	Jobs      []JobLine
	Stat      Stat
}

// AppendReply appends r's binary payload: seq u64 | kind u8 | body.
func AppendReply(dst []byte, r Reply) []byte {
	dst = binary.BigEndian.AppendUint64(dst, r.Seq)
	dst = append(dst, byte(r.Kind))
	switch r.Kind {
	case KindError:
		dst = appendStr(dst, r.Err)
	case KindJob:
		dst = append(dst, byte(r.Status))
		dst = binary.BigEndian.AppendUint64(dst, uint64(r.Execution))
	case KindJobs:
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(r.Jobs)))
		for _, j := range r.Jobs {
			dst = appendStr(dst, j.ID)
			dst = append(dst, byte(j.Status))
			dst = binary.BigEndian.AppendUint64(dst, uint64(j.Execution))
		}
	case KindStat:
		s := r.Stat
		for _, v := range [...]int64{s.JobsTotal, s.JobsPlanned, s.JobsTriggered, s.JobsExecuted,
			s.JobsFailed, s.ExecutionsPending, s.ExecutionsInflight} {
			dst = binary.BigEndian.AppendUint64(dst, uint64(v))
		}
		dst = appendStr(dst, s.Compression)
	}
	return dst
}

// DecodeReply decodes a Reply payload.
func DecodeReply(p []byte) (Reply, error) {
	d := decoder{b: p}
	r := Reply{Seq: d.u64(), Kind: ReplyKind(d.u8())}
	switch r.Kind {
	case KindOK, KindNotOwned:
	case KindError:
		r.Err = d.str()
	case KindJob:
		r.Status = store.Status(d.u8())
		r.Execution = int64(d.u64())
	case KindJobs:
		n := d.u32()
		// Each job takes at least 13 bytes: bound the allocation by the input.
		if uint64(n)*13 > uint64(len(d.b)) {
			return Reply{}, fmt.Errorf("reply: %w: %d jobs in %d bytes", ErrMalformed, n, len(d.b))
		}
		if n > 0 {
			r.Jobs = make([]JobLine, 0, n)
		}
		for i := uint32(0); i < n && d.err == nil; i++ {
			j := JobLine{ID: d.str(), Status: store.Status(d.u8()), Execution: int64(d.u64())}
			r.Jobs = append(r.Jobs, j)
		}
	case KindStat:
		s := &r.Stat
		for _, v := range [...]*int64{&s.JobsTotal, &s.JobsPlanned, &s.JobsTriggered, &s.JobsExecuted,
			&s.JobsFailed, &s.ExecutionsPending, &s.ExecutionsInflight} {
			*v = int64(d.u64())
		}
		s.Compression = d.str()
	default:
		return Reply{}, fmt.Errorf("reply: %w: unknown kind %d", ErrMalformed, r.Kind)
	}
	if err := d.finish(); err != nil {
		return Reply{}, fmt.Errorf("reply: %w", err)
	}
	for _, j := range r.Jobs {
		if !j.Status.Valid() {
			return Reply{}, fmt.Errorf("reply: %w: bad status %d", ErrMalformed, j.Status)
		}
	}
	if r.Kind == KindJob && !r.Status.Valid() {
		return Reply{}, fmt.Errorf("reply: %w: bad status %d", ErrMalformed, r.Status)
	}
	return r, nil
}
