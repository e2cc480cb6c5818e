package bench

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// EchoServer serves ln until it is closed: every line `<rid> ...` is
// answered `<rid> OK` (an empty line `ERROR empty line`), in order,
// pipelined: replies are buffered and flushed only when no further whole
// request has been received. It is the ceiling the benchmarks compare against — a server that
// does nothing but the protocol's framing. When ln is closed, EchoServer
// closes the connections it accepted, waits for their goroutines and
// returns.
func EchoServer(ln net.Listener) {
	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		wg    sync.WaitGroup
	)
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				break
			}
			// EMFILE and friends: don't spin, keep serving until ln is
			// closed.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			echoConn(c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close()
		}()
	}
	mu.Lock()
	for c := range conns {
		c.Close()
	}
	mu.Unlock()
	wg.Wait()
}

func echoConn(c net.Conn) {
	r := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriterSize(c, 64<<10)
	for {
		line, err := readLine(r)
		if errors.Is(err, errLongReply) {
			w.WriteString("ERROR line too long\n")
		} else if err != nil {
			w.Flush()
			return
		} else {
			rid := line
			for i, b := range line {
				if b == ' ' {
					rid = line[:i]
					break
				}
			}
			if len(rid) == 0 {
				w.WriteString("ERROR empty line\n")
			} else {
				w.Write(rid)
				w.WriteString(" OK\n")
			}
		}
		if !lineBuffered(r) {
			if w.Flush() != nil {
				return
			}
		}
	}
}

// ServeEcho starts EchoServer on a loopback port. It returns the address and
// a stop function that closes the server and its connections and waits for
// them; cancelling ctx stops it too. stop may be called more than once.
func ServeEcho(ctx context.Context) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		EchoServer(ln)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() { ln.Close() })
		<-served
	}
	go func() {
		select {
		case <-ctx.Done():
			stop()
		case <-served:
		}
	}()
	return ln.Addr().String(), stop, nil
}
