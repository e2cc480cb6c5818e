package e2e

import (
	"bufio"
	"io"
	"net"
	"strings"
	"time"
)

// rawClient is a client usable from goroutines other than the test's (it
// reports errors instead of failing the test).
type rawClient struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialNoT(addr string) *rawClient {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil
	}
	return &rawClient{conn: conn, r: bufio.NewReader(conn)}
}

// do sends a line and returns the reply line, or "io error: ..." on failure.
func (c *rawClient) do(line string) string {
	c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c.conn, line+"\n"); err != nil {
		return "io error: " + err.Error()
	}
	s, err := c.r.ReadString('\n')
	if err != nil {
		return "io error: " + err.Error()
	}
	return strings.TrimSuffix(s, "\n")
}

func (c *rawClient) close() { c.conn.Close() }
