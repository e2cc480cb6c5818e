package bench

import (
	"bufio"
	"bytes"
	"errors"
	"strconv"
)

// farFuture is 2100-01-01 00:00:00 UTC in ns: SETs are planned then, so
// nothing the benchmark writes ever fires.
const farFuture int64 = 4102444800_000_000_000

// kind is the instruction of one request.
type kind uint8

const (
	kindSet kind = iota
	kindGet
)

// outcome classifies one reply.
type outcome uint8

const (
	outOK outcome = iota
	outNotFound
	outError
)

// errLongReply is a reply line longer than the read buffer.
var errLongReply = errors.New("reply line longer than 64 KiB")

// codec writes requests and reads their replies for one protocol.
type codec interface {
	// appendRequest appends request idx (a kind on job key) to dst.
	appendRequest(dst []byte, idx int64, k kind, key int64) []byte
	// readReply reads the reply to request idx. line is the reply for an
	// error sample (valid until the next read); err is an I/O error, after
	// which the connection is unusable.
	readReply(r *bufio.Reader, idx int64, k kind) (o outcome, line []byte, err error)
}

// lineCodec speaks the ztick line protocol: `<rid> SET <prefix><key> <ns>`
// and `<rid> GET <prefix><key>`, the request id being idx in decimal.
// Replies must come back in request order, so a reply whose request id is
// not the expected one is an error (a desynchronised connection).
type lineCodec struct {
	prefix string
	rid    []byte // scratch
}

func (c *lineCodec) appendRequest(dst []byte, idx int64, k kind, key int64) []byte {
	dst = strconv.AppendInt(dst, idx, 10)
	if k == kindSet {
		dst = append(dst, " SET "...)
	} else {
		dst = append(dst, " GET "...)
	}
	dst = append(dst, c.prefix...)
	dst = strconv.AppendInt(dst, key, 10)
	if k == kindSet {
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, farFuture+key, 10)
	}
	return append(dst, '\n')
}

func (c *lineCodec) readReply(r *bufio.Reader, idx int64, k kind) (outcome, []byte, error) {
	line, err := readLine(r)
	if err != nil {
		return outError, line, err
	}
	c.rid = append(strconv.AppendInt(c.rid[:0], idx, 10), ' ')
	if !bytes.HasPrefix(line, c.rid) {
		return outError, line, nil
	}
	rest := line[len(c.rid):]
	switch {
	case bytes.Equal(rest, okWord) || bytes.HasPrefix(rest, okSpace):
		return outOK, line, nil
	case k == kindGet && bytes.Equal(rest, notFound):
		return outNotFound, line, nil
	}
	return outError, line, nil
}

var (
	okWord   = []byte("OK")
	okSpace  = []byte("OK ")
	notFound = []byte("ERROR not found")
)

// readLine returns the next line without its LF or CR LF. A line longer than
// the buffer is consumed and reported as errLongReply.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		for err == bufio.ErrBufferFull {
			_, err = r.ReadSlice('\n')
		}
		if err == nil {
			err = errLongReply
		}
		return nil, err
	}
	if err != nil {
		return line, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// respCodec speaks redis's RESP with the equivalent of a scheduler's
// commands on one sorted set `<prefix>jobs`: SET is
// `ZADD <prefix>jobs <ns> <prefix><key>` and GET is
// `ZSCORE <prefix>jobs <prefix><key>` (a nil reply is "not found").
type respCodec struct {
	prefix string
	zkey   string
}

func newRESPCodec(prefix string) *respCodec {
	return &respCodec{prefix: prefix, zkey: prefix + "jobs"}
}

func appendBulk(dst []byte, s []byte) []byte {
	dst = append(dst, '$')
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, "\r\n"...)
	dst = append(dst, s...)
	return append(dst, "\r\n"...)
}

func (c *respCodec) appendRequest(dst []byte, idx int64, k kind, key int64) []byte {
	var member, score [48]byte
	m := strconv.AppendInt(append(member[:0], c.prefix...), key, 10)
	if k == kindSet {
		dst = append(dst, "*4\r\n$4\r\nZADD\r\n"...)
		dst = appendBulk(dst, []byte(c.zkey))
		dst = appendBulk(dst, strconv.AppendInt(score[:0], farFuture+key, 10))
	} else {
		dst = append(dst, "*3\r\n$6\r\nZSCORE\r\n"...)
		dst = appendBulk(dst, []byte(c.zkey))
	}
	return appendBulk(dst, m)
}

func (c *respCodec) readReply(r *bufio.Reader, idx int64, k kind) (outcome, []byte, error) {
	line, err := readLine(r)
	if err != nil {
		return outError, line, err
	}
	if len(line) == 0 {
		return outError, line, nil
	}
	switch line[0] {
	case '+', ':':
		return outOK, line, nil
	case '$':
		n, perr := strconv.Atoi(string(line[1:]))
		if perr != nil {
			return outError, line, nil
		}
		if n < 0 {
			if k == kindGet {
				return outNotFound, line, nil
			}
			return outError, line, nil
		}
		if _, err := r.Discard(n + 2); err != nil {
			return outError, nil, err
		}
		return outOK, line, nil
	}
	return outError, line, nil
}
