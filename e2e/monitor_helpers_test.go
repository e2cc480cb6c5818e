package e2e

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// monitorConfig is clusterConfig with the HTTP listener on a free loopback
// port; extra lines before any section header land in [http].
func monitorConfig(dir, extra string) string {
	return strings.Replace(clusterConfig(dir, extra), "[http]\nlisten = \"\"\n", "[http]\nlisten = \"127.0.0.1:0\"\n", 1)
}

var httpReadyRE = regexp.MustCompile(`tock is ready: listen=\S+ http=(\S+)`)

// httpAddrs lists the HTTP addresses of every ready line so far.
func (c *cluster) httpAddrs() []string {
	var out []string
	for _, m := range httpReadyRE.FindAllStringSubmatch(c.logs.String(), -1) {
		out = append(out, m[1])
	}
	return out
}

// httpAddr is the HTTP listener's address from the latest ready line.
func (c *cluster) httpAddr() string {
	c.t.Helper()
	a := c.httpAddrs()
	if len(a) == 0 || a[len(a)-1] == "off" {
		c.t.Fatalf("no http listener in the ready line:\n%s", tail(c.logs.String(), 20))
	}
	return a[len(a)-1]
}

// httpMonitor talks to the cluster's HTTP listener.
func httpMonitor(t *testing.T, c *cluster) *controlConn {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &controlConn{t: t, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}, base: "http://" + c.httpAddr()}
}
