package protocol

import (
	"strconv"

	"github.com/tockd/tock/store"
)

// Info is what `<rid> INFO <job>` reports of one job.
type Info struct {
	Status    store.Status
	Execution int64
	Shard     int
	// Rule is the id of the rule whose pattern matches the job id now, ""
	// when none does.
	Rule string
	// Outcome is the last execution's outcome, nil before the first one.
	Outcome *store.Outcome
}

// AppendInfo appends INFO's reply on one line:
//
//	<rid> OK <status> <ns> shard=<n> rule=<id> [started_at=<ns> duration_ns=<n>
//	  exit_code=<n> http_status=<n> attempt=<n> error=<text> output=<tail>]
//
// GET's two fields come first so a GET parser reads it too; every later
// field is one key=value token (quoted when needed), the outcome's only
// when the job has run. exit_code is -1 for a network runner, http_status
// 0 for anything but the http runner, error "" on success.
func AppendInfo(dst []byte, rid string, in Info) []byte {
	dst = append(appendRID(dst, rid), "OK "...)
	dst = append(dst, in.Status.String()...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, in.Execution, 10)
	dst = append(dst, " shard="...)
	dst = strconv.AppendInt(dst, int64(in.Shard), 10)
	dst = appendPair(dst, "rule=", in.Rule)
	if o := in.Outcome; o != nil {
		dst = appendPair(dst, "started_at=", strconv.FormatInt(o.StartedAt, 10))
		dst = appendPair(dst, "duration_ns=", strconv.FormatInt(o.Duration, 10))
		dst = appendPair(dst, "exit_code=", strconv.FormatInt(int64(o.ExitCode), 10))
		dst = appendPair(dst, "http_status=", strconv.FormatInt(int64(o.HTTPStatus), 10))
		dst = appendPair(dst, "attempt=", strconv.FormatUint(uint64(o.Attempt), 10))
		dst = appendPair(dst, "error=", o.Error)
		dst = appendPair(dst, "output=", o.Output)
	}
	return append(dst, '\n')
}

// appendPair appends ` key=value` as one token.
func appendPair(dst []byte, key, value string) []byte {
	return AppendToken(append(dst, ' '), key+value)
}
