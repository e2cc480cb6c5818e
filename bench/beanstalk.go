package bench

import (
	"bufio"
	"bytes"
	"strconv"
)

// beanstalkDelay is the delay of every put, in seconds (about 30 years):
// like a SET planned in 2100, a job that never becomes ready during a run.
const beanstalkDelay = 1_000_000_000

// beanstalkCodec speaks beanstalkd's protocol with the equivalent of a
// scheduler's SET: `put <pri> <delay> <ttr> <bytes>` of a delayed job whose
// body is the job id `<prefix><key>`, into the default tube. The reply is
// `INSERTED <id>`; anything else (BURIED, EXPECTED_CRLF, JOB_TOO_BIG,
// DRAINING, OUT_OF_MEMORY, an unknown line) is an error. beanstalkd has no
// lookup by a name of ours, so only SET is supported (normalize refuses
// the other ops).
type beanstalkCodec struct {
	prefix string
}

func (c *beanstalkCodec) appendRequest(dst []byte, _ int64, _ kind, key int64) []byte {
	var body [48]byte
	b := strconv.AppendInt(append(body[:0], c.prefix...), key, 10)
	dst = append(dst, "put 1024 "...)
	dst = strconv.AppendInt(dst, beanstalkDelay, 10)
	dst = append(dst, " 60 "...)
	dst = strconv.AppendInt(dst, int64(len(b)), 10)
	dst = append(dst, "\r\n"...)
	dst = append(dst, b...)
	return append(dst, "\r\n"...)
}

var inserted = []byte("INSERTED ")

func (c *beanstalkCodec) readReply(r *bufio.Reader, _ int64, _ kind) (outcome, []byte, error) {
	line, err := readLine(r)
	if err != nil {
		return outError, line, err
	}
	if id, ok := bytes.CutPrefix(line, inserted); ok && len(id) > 0 {
		if _, perr := strconv.ParseUint(string(id), 10, 64); perr == nil {
			return outOK, line, nil
		}
	}
	return outError, line, nil
}
