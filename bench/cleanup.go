package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// cleanupConns bounds the connections Cleanup opens: removal is not
// measured, and a few pipelined connections saturate a server anyway.
const cleanupConns = 4

var notFoundReply = []byte("ERROR not found")

// Cleanup removes the jobs a line-protocol run of cfg may have written, ids
// Prefix+0 to Prefix+(KeySpace-1), so that a benchmark leaves the server's
// store as it found it. It returns how many jobs were removed; a job that
// was never written answers "not found" and is not counted. Any other
// error reply stops it with an error.
func Cleanup(ctx context.Context, cfg Config) (int64, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return 0, err
	}
	if cfg.Protocol != "line" {
		return 0, fmt.Errorf("cleanup speaks the line protocol only, not %q", cfg.Protocol)
	}
	n := min(cfg.Clients, cleanupConns, cfg.KeySpace)
	var (
		removed atomic.Int64
		wg      sync.WaitGroup
		errs    = make([]error, n)
	)
	d := net.Dialer{Timeout: cfg.Timeout}
	for i := range n {
		nc, err := d.DialContext(ctx, "tcp", cfg.Addr)
		if err != nil {
			return removed.Load(), fmt.Errorf("%w to %s: %v", ErrConnect, cfg.Addr, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer nc.Close()
			errs[i] = removeKeys(ctx, nc, cfg, int64(i), int64(n), &removed)
		}()
	}
	wg.Wait()
	return removed.Load(), errors.Join(errs...)
}

// removeKeys removes keys start, start+step, ... below cfg.KeySpace on
// one connection, cfg.Pipeline requests at a time.
func removeKeys(ctx context.Context, nc net.Conn, cfg Config, start, step int64, removed *atomic.Int64) error {
	w := bufio.NewWriterSize(nc, 64<<10)
	r := bufio.NewReaderSize(nc, 64<<10)
	var buf []byte
	window := int64(cfg.Pipeline)
	for key := start; key < int64(cfg.KeySpace); {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := nc.SetDeadline(time.Now().Add(cfg.Timeout)); err != nil {
			return err
		}
		first := key
		for i := int64(0); i < window && key < int64(cfg.KeySpace); i++ {
			buf = strconv.AppendInt(buf[:0], key, 10)
			buf = append(buf, " REMOVE "...)
			buf = append(buf, cfg.Prefix...)
			buf = strconv.AppendInt(buf, key, 10)
			buf = append(buf, '\n')
			if _, err := w.Write(buf); err != nil {
				return err
			}
			key += step
		}
		if err := w.Flush(); err != nil {
			return err
		}
		for k := first; k < key; k += step {
			line, err := readLine(r)
			if err != nil {
				return fmt.Errorf("remove %s%d: %w", cfg.Prefix, k, err)
			}
			rest, ok := bytes.CutPrefix(line, strconv.AppendInt(nil, k, 10))
			switch {
			case ok && bytes.Equal(rest, []byte(" OK")):
				removed.Add(1)
			case ok && bytes.Equal(rest, append([]byte(" "), notFoundReply...)):
			default:
				return fmt.Errorf("remove %s%d: reply %q", cfg.Prefix, k, line)
			}
		}
	}
	return nil
}
