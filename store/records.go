package store

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// RecordType is a payload's first byte. 0x00–0x03 are ztick's entry types
// and keep ztick's layouts, so ztick's payloads decode unchanged; 0x04 is
// tock's status-change record, which ztick does not have (ztick never
// persisted statuses, so a restart re-ran finished jobs).
type RecordType uint8

const (
	// RecordJob is a SET: str id, i64 execution, u8 status.
	RecordJob RecordType = 0x00
	// RecordRule is a RULE SET: str id, str pattern, u8 runner kind, body.
	RecordRule RecordType = 0x01
	// RecordJobRemoval is a REMOVE: str id.
	RecordJobRemoval RecordType = 0x02
	// RecordRuleRemoval is a REMOVERULE: str id.
	RecordRuleRemoval RecordType = 0x03
	// RecordStatus is a status change of an existing job, with the outcome
	// of its execution when there is one: str id, i64 execution, u8 status,
	// u8 has_outcome, then if has_outcome is 1 or 2: i64 started_at,
	// i64 duration, i32 exit_code, i32 http_status, str error, str output,
	// and if it is 2: u32 attempt (1 is written for an outcome without
	// one, so older logs read unchanged).
	RecordStatus RecordType = 0x04
	// RecordOwner fences a shard file (see owner.go): u64 file id, u64
	// owner epoch. A shard file's first frame is one, naming the file; an
	// owner appends one when it takes the shard at a higher epoch.
	RecordOwner RecordType = 0x05
)

var recordTypeNames = [...]string{"job", "rule", "job_removal", "rule_removal", "status", "owner"}

func (t RecordType) String() string {
	if int(t) < len(recordTypeNames) {
		return recordTypeNames[t]
	}
	return fmt.Sprintf("record(%d)", uint8(t))
}

// Record is one logged mutation. Which fields matter depends on Type:
//
//	RecordJob:          Job.ID, Job.Execution, Job.Status
//	RecordStatus:       Job.ID, Job.Execution, Job.Status, Job.Outcome (nil = none)
//	RecordRule:         Rule
//	RecordJobRemoval,
//	RecordRuleRemoval:  ID
//	RecordOwner:        Owner
//
// The other fields are ignored by the encoder and zero after decoding.
type Record struct {
	Type  RecordType
	Job   Job
	Rule  Rule
	ID    string
	Owner Owner
}

// AppendRecord appends r's payload (type byte and fields, no framing) to
// dst. On error dst is returned unchanged: an invalid record is never half
// encoded. Strings over 65535 bytes are an error, except Outcome.Error and
// Outcome.Output, which are informational and are cut to fit instead.
func AppendRecord(dst []byte, r Record) ([]byte, error) {
	if err := validateRecord(r); err != nil {
		return dst, fmt.Errorf("encode %s record: %w", r.Type, err)
	}
	dst = append(dst, byte(r.Type))
	switch r.Type {
	case RecordJob:
		dst = appendJob(dst, r.Job)
	case RecordStatus:
		dst = appendJob(dst, r.Job)
		dst = appendOutcome(dst, r.Job.Outcome)
	case RecordRule:
		dst = appendStr(dst, r.Rule.ID)
		dst = appendStr(dst, r.Rule.Pattern)
		dst = appendRunner(dst, r.Rule.Runner)
	case RecordJobRemoval, RecordRuleRemoval:
		dst = appendStr(dst, r.ID)
	case RecordOwner:
		dst = binary.BigEndian.AppendUint64(dst, r.Owner.FileID)
		dst = binary.BigEndian.AppendUint64(dst, r.Owner.Epoch)
	}
	return dst, nil
}

// validateRecord checks everything AppendRecord could fail on, so encoding
// itself cannot fail halfway.
func validateRecord(r Record) error {
	switch r.Type {
	case RecordJob, RecordStatus:
		if !r.Job.Status.Valid() {
			return fmt.Errorf("%w: unknown status %d", ErrInvalidRecord, uint8(r.Job.Status))
		}
		return checkStr("job id", r.Job.ID)
	case RecordRule:
		if err := checkStr("rule id", r.Rule.ID); err != nil {
			return err
		}
		if err := checkStr("rule pattern", r.Rule.Pattern); err != nil {
			return err
		}
		return r.Rule.Runner.Validate()
	case RecordJobRemoval, RecordRuleRemoval:
		return checkStr("id", r.ID)
	case RecordOwner:
		return nil
	}
	return fmt.Errorf("%w: unknown record type %d", ErrInvalidRecord, uint8(r.Type))
}

func appendJob(dst []byte, j Job) []byte {
	dst = appendStr(dst, j.ID)
	dst = binary.BigEndian.AppendUint64(dst, uint64(j.Execution))
	return append(dst, uint8(j.Status))
}

func appendOutcome(dst []byte, o *Outcome) []byte {
	if o == nil {
		return append(dst, 0)
	}
	has := byte(1)
	if o.Attempt > 0 {
		has = 2
	}
	dst = append(dst, has)
	dst = binary.BigEndian.AppendUint64(dst, uint64(o.StartedAt))
	dst = binary.BigEndian.AppendUint64(dst, uint64(o.Duration))
	dst = binary.BigEndian.AppendUint32(dst, uint32(o.ExitCode))
	dst = binary.BigEndian.AppendUint32(dst, uint32(o.HTTPStatus))
	dst = appendStr(dst, truncateHead(o.Error, maxString))
	dst = appendStr(dst, truncateTail(o.Output, maxString))
	if has == 2 {
		dst = binary.BigEndian.AppendUint32(dst, o.Attempt)
	}
	return dst
}

// truncateHead keeps the first at most n bytes of s, cut at a UTF-8
// boundary: an error message is read from its start.
func truncateHead(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// truncateTail keeps the last at most n bytes of s, cut at a UTF-8
// boundary: of a process's output the end says most about how it ended.
func truncateTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	start := len(s) - n
	for start < len(s) && !utf8.RuneStart(s[start]) {
		start++
	}
	return s[start:]
}

// DecodeRecord decodes one payload. It rejects unknown types, runner kinds
// and statuses, truncated fields and trailing bytes, so a payload that
// decodes re-encodes to the same bytes. Unlike ztick it does not reject
// invalid UTF-8: ids are bytes to tock, and a record the encoder wrote must
// always be readable again.
func DecodeRecord(p []byte) (Record, error) {
	r := fieldReader{p: p}
	rec := Record{Type: RecordType(r.u8("record type"))}
	switch {
	case r.err != nil:
	case rec.Type == RecordJob:
		rec.Job = r.job()
	case rec.Type == RecordStatus:
		rec.Job = r.job()
		rec.Job.Outcome = r.outcome()
	case rec.Type == RecordRule:
		rec.Rule.ID = r.str("rule id")
		rec.Rule.Pattern = r.str("rule pattern")
		rec.Rule.Runner = r.runner()
	case rec.Type == RecordJobRemoval || rec.Type == RecordRuleRemoval:
		rec.ID = r.str("id")
	case rec.Type == RecordOwner:
		rec.Owner = Owner{FileID: uint64(r.i64("file id")), Epoch: uint64(r.i64("epoch"))}
	default:
		r.fail("unknown record type %d", uint8(rec.Type))
	}
	if err := r.done(); err != nil {
		return Record{}, fmt.Errorf("decode record: %w", err)
	}
	return rec, nil
}

func (r *fieldReader) job() Job {
	j := Job{ID: r.str("job id"), Execution: r.i64("execution")}
	j.Status = Status(r.u8("status"))
	if r.err == nil && !j.Status.Valid() {
		r.fail("unknown status %d", uint8(j.Status))
	}
	return j
}

func (r *fieldReader) outcome() *Outcome {
	has := r.u8("has_outcome")
	switch {
	case r.err != nil || has == 0:
		return nil
	case has != 1 && has != 2:
		r.fail("has_outcome is %d, want 0, 1 or 2", has)
		return nil
	}
	o := &Outcome{
		StartedAt:  r.i64("started_at"),
		Duration:   r.i64("duration"),
		ExitCode:   r.i32("exit_code"),
		HTTPStatus: r.i32("http_status"),
		Error:      r.str("error"),
		Output:     r.str("output"),
	}
	if has == 2 {
		o.Attempt = uint32(r.i32("attempt"))
		if r.err == nil && o.Attempt == 0 {
			r.fail("attempt is 0 with has_outcome 2")
		}
	}
	if r.err != nil {
		return nil
	}
	return o
}
