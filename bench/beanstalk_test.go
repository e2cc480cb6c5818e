package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestBeanstalkCodec(t *testing.T) {
	c := &beanstalkCodec{prefix: "b."}
	got := string(c.appendRequest(nil, 1, kindSet, 42))
	if want := "put 1024 1000000000 60 4\r\nb.42\r\n"; got != want {
		t.Fatalf("put %q, want %q", got, want)
	}
	r := bufio.NewReader(strings.NewReader("INSERTED 7\r\nBURIED 8\r\nINSERTED \r\nINSERTED x\r\nJOB_TOO_BIG\r\nINSERTED 18446744073709551615\r\n"))
	for i, want := range []outcome{outOK, outError, outError, outError, outError, outOK} {
		o, line, err := c.readReply(r, 0, kindSet)
		if err != nil || o != want {
			t.Fatalf("reply %d: %v %q %v, want %v", i, o, line, err, want)
		}
	}
	if _, _, err := c.readReply(r, 0, kindSet); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last reply: %v, want EOF", err)
	}
}

func TestBeanstalkOnlySet(t *testing.T) {
	for _, op := range []string{"get", "mixed"} {
		_, err := Run(context.Background(), Config{Addr: "127.0.0.1:1", Protocol: "beanstalk", Op: op})
		if err == nil || !strings.Contains(err.Error(), "supports only set") {
			t.Fatalf("op %s: %v", op, err)
		}
	}
}

// FuzzBeanstalkReply: any byte stream read as replies is classified or
// reported as an I/O error, never a panic, and each read consumes input.
func FuzzBeanstalkReply(f *testing.F) {
	for _, s := range []string{"INSERTED 1\r\n", "BURIED 3\r\n", "INSERTED \r\n", "DRAINING\r\n", "INSERTED 1", "\r\n\n", "INSERTED 99999999999999999999999\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &beanstalkCodec{prefix: "f."}
		r := bufio.NewReaderSize(bytes.NewReader(data), 16)
		for range len(data) + 1 {
			o, line, err := c.readReply(r, 0, kindSet)
			if err != nil {
				return
			}
			if o == outOK && !bytes.HasPrefix(line, inserted) {
				t.Fatalf("%q accepted as INSERTED", line)
			}
		}
		t.Fatalf("%d reads of %d bytes without reaching the end", len(data)+1, len(data))
	})
}
