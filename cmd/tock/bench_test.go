package main

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// benchCLI runs `tock bench args...` in-process and returns its output and
// exit code.
func benchCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	out, errw := newDumpOutput(), newDumpOutput()
	app := &cli.App{
		Name:           "tock",
		Writer:         out,
		ErrWriter:      errw,
		Commands:       []*cli.Command{benchCommand()},
		ExitErrHandler: func(*cli.Context, error) {},
	}
	err := app.RunContext(context.Background(), append([]string{"tock", "bench"}, args...))
	var ec cli.ExitCoder
	switch {
	case err == nil:
	case errors.As(err, &ec):
		code = ec.ExitCode()
		errw.Write([]byte(err.Error()))
	default:
		code = -1
	}
	return out.String(), errw.String(), code
}

func TestBenchProtocolFlag(t *testing.T) {
	for _, args := range [][]string{
		{"--protocol", "memcache"},
		{"--protocol", "beanstalk", "--op", "get"},
		{"--protocol", "resp", "--echo"},
	} {
		if _, stderr, code := benchCLI(t, args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d: %s", args, code, exitUsage, stderr)
		}
	}
	if out, stderr, code := benchCLI(t, "--echo", "-q", "--requests", "500", "--clients", "2"); code != 0 || !strings.Contains(out, "requests    500") {
		t.Fatalf("--echo: exit %d\n%s%s", code, out, stderr)
	}
}

// TestBenchBeanstalk drives a minimal beanstalkd stand-in (every
// `put` and its body answered INSERTED) through --protocol beanstalk.
func TestBenchBeanstalk(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r, w := bufio.NewReader(c), bufio.NewWriter(c)
				for {
					cmd, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(cmd, "put ") {
						return
					}
					w.WriteString("INSERTED 1\r\n")
					if r.Buffered() == 0 && w.Flush() != nil {
						return
					}
				}
			}()
		}
	}()
	out, stderr, code := benchCLI(t, "--addr", ln.Addr().String(), "--protocol", "beanstalk", "-q",
		"--requests", "2000", "--clients", "3", "--pipeline", "8")
	if code != 0 || !strings.Contains(out, "(beanstalk)") || !strings.Contains(out, "errors 0") {
		t.Fatalf("exit %d\n%s%s", code, out, stderr)
	}
}
