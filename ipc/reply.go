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
	// KindInfo carries one job's Status, Execution and Outcome (INFO).
	KindInfo ReplyKind = 6
	// KindPage carries one page of a listing (OpList): Jobs in id order,
	// and More when the shard has more matching jobs after the last one.
	KindPage ReplyKind = 7
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
	// Outcome is the job's last outcome (KindInfo), nil when it never ran.
	Outcome *store.Outcome
	// More: the listed shard has further matching jobs (KindPage).
	More bool
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
		dst = appendJobLines(dst, r.Jobs)
	case KindPage:
		dst = append(dst, boolByte(r.More))
		dst = appendJobLines(dst, r.Jobs)
	case KindInfo:
		dst = append(dst, byte(r.Status))
		dst = binary.BigEndian.AppendUint64(dst, uint64(r.Execution))
		dst = appendOutcome(dst, r.Outcome)
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
		if err := d.jobLines(&r.Jobs); err != nil {
			return Reply{}, err
		}
	case KindPage:
		switch b := d.u8(); b {
		case 0, 1:
			r.More = b == 1
		default:
			return Reply{}, fmt.Errorf("reply: %w: more flag %d", ErrMalformed, b)
		}
		if err := d.jobLines(&r.Jobs); err != nil {
			return Reply{}, err
		}
	case KindInfo:
		r.Status = store.Status(d.u8())
		r.Execution = int64(d.u64())
		o, err := d.outcome()
		if err != nil {
			return Reply{}, err
		}
		r.Outcome = o
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
	if (r.Kind == KindJob || r.Kind == KindInfo) && !r.Status.Valid() {
		return Reply{}, fmt.Errorf("reply: %w: bad status %d", ErrMalformed, r.Status)
	}
	return r, nil
}

func appendJobLines(dst []byte, jobs []JobLine) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(jobs)))
	for _, j := range jobs {
		dst = appendStr(dst, j.ID)
		dst = append(dst, byte(j.Status))
		dst = binary.BigEndian.AppendUint64(dst, uint64(j.Execution))
	}
	return dst
}

func (d *decoder) jobLines(out *[]JobLine) error {
	n := d.u32()
	// Each job takes at least 13 bytes: bound the allocation by the input.
	if uint64(n)*13 > uint64(len(d.b)) {
		return fmt.Errorf("reply: %w: %d jobs in %d bytes", ErrMalformed, n, len(d.b))
	}
	if n > 0 {
		*out = make([]JobLine, 0, n)
	}
	for i := uint32(0); i < n && d.err == nil; i++ {
		j := JobLine{ID: d.str(), Status: store.Status(d.u8()), Execution: int64(d.u64())}
		*out = append(*out, j)
	}
	return nil
}

// appendOutcome: has u8 (0 or 1), then started_at i64 | duration i64 |
// exit_code i32 | http_status i32 | error str | output str | attempt u32.
func appendOutcome(dst []byte, o *store.Outcome) []byte {
	if o == nil {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	dst = binary.BigEndian.AppendUint64(dst, uint64(o.StartedAt))
	dst = binary.BigEndian.AppendUint64(dst, uint64(o.Duration))
	dst = binary.BigEndian.AppendUint32(dst, uint32(o.ExitCode))
	dst = binary.BigEndian.AppendUint32(dst, uint32(o.HTTPStatus))
	dst = appendStr(dst, o.Error)
	dst = appendStr(dst, o.Output)
	return binary.BigEndian.AppendUint32(dst, o.Attempt)
}

func (d *decoder) outcome() (*store.Outcome, error) {
	switch has := d.u8(); {
	case d.err != nil:
		return nil, fmt.Errorf("reply: %w", d.err)
	case has == 0:
		return nil, nil
	case has != 1:
		return nil, fmt.Errorf("reply: %w: outcome flag %d", ErrMalformed, has)
	}
	o := &store.Outcome{StartedAt: int64(d.u64()), Duration: int64(d.u64()),
		ExitCode: int32(d.u32()), HTTPStatus: int32(d.u32())}
	o.Error = d.str()
	o.Output = d.str()
	o.Attempt = d.u32()
	return o, nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}
