package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// connz fetches /connz with query q.
func connz(t *testing.T, hm *controlConn, q string) server.Connz {
	t.Helper()
	var cz server.Connz
	hm.expect("GET", "/connz"+q, "", 200, &cz)
	if cz.Conns == nil {
		t.Fatalf("/connz%s: connections is null", q)
	}
	return cz
}

func cids(cz server.Connz) []uint64 {
	var out []uint64
	for _, c := range cz.Conns {
		out = append(out, c.Cid)
	}
	return out
}

// ordered checks that key(conns) is sorted (desc: non-increasing) with
// ties by ascending cid.
func ordered(t *testing.T, what string, cz server.Connz, desc bool, key func(c *server.ConnInfo) int64) {
	t.Helper()
	for i := 1; i < len(cz.Conns); i++ {
		a, b := cz.Conns[i-1], cz.Conns[i]
		ka, kb := key(a), key(b)
		if ka == kb {
			if a.Cid > b.Cid {
				t.Fatalf("%s: tie at %d not by cid: %d before %d", what, ka, a.Cid, b.Cid)
			}
			continue
		}
		if (ka > kb) != desc {
			t.Fatalf("%s: %d before %d (cids %d, %d)", what, ka, kb, a.Cid, b.Cid)
		}
	}
}

// TestMonitor_ConnzPagingAndSorting: 50 connections with different
// traffic, paged and sorted by every key, filtered by cid and state.
func TestMonitor_ConnzPagingAndSorting(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, monitorConfig(dir, ""))
	hm := httpMonitor(t, c)
	const n = 50
	var clients []*client
	for i := range n {
		cl := dial(t, c.addr)
		for j := range i%7 + 1 {
			cl.do(fmt.Sprintf("g%d GET connz.%s", j, strings.Repeat("x", i)))
		}
		clients = append(clients, cl)
	}
	waitFor(t, 10*time.Second, "every connection's figures", func() bool {
		cz := connz(t, hm, "")
		var msgs int64
		for _, c := range cz.Conns {
			msgs += c.OutMsgs
		}
		want := 0
		for i := range n {
			want += i%7 + 1
		}
		return cz.Total == n && msgs == int64(want)
	})
	all := connz(t, hm, "")
	if all.NumConns != n || all.Total != n || all.Limit != 1024 || all.Offset != 0 {
		t.Fatalf("default page: num %d total %d limit %d offset %d", all.NumConns, all.Total, all.Limit, all.Offset)
	}
	if !slices.IsSorted(cids(all)) {
		t.Fatalf("default order is not by cid: %v", cids(all))
	}
	// Paging.
	page := connz(t, hm, "?offset=45&limit=10")
	if page.NumConns != 5 || page.Total != n || page.Offset != 45 || page.Limit != 10 || !slices.Equal(cids(page), cids(all)[45:]) {
		t.Fatalf("offset=45&limit=10: %v (num %d)", cids(page), page.NumConns)
	}
	page = connz(t, hm, "?offset=10&limit=3")
	if !slices.Equal(cids(page), cids(all)[10:13]) {
		t.Fatalf("offset=10&limit=3: %v", cids(page))
	}
	if page = connz(t, hm, "?offset=1000"); page.NumConns != 0 || page.Total != n {
		t.Fatalf("offset past the end: %+v", page)
	}
	if page = connz(t, hm, "?offset=-5&limit=-1"); page.Offset != 0 || page.Limit != 1024 || page.NumConns != n {
		t.Fatalf("negative offset and limit: offset %d limit %d num %d", page.Offset, page.Limit, page.NumConns)
	}
	if page = connz(t, hm, fmt.Sprintf("?offset=%d&limit=%d", 1<<62, 1<<62)); page.NumConns != 0 {
		t.Fatalf("huge offset+limit: %d", page.NumConns)
	}
	// Sorting.
	desc := func(key string, f func(c *server.ConnInfo) int64) {
		ordered(t, "sort="+key, connz(t, hm, "?sort="+key), true, f)
	}
	desc("msgs_from", func(c *server.ConnInfo) int64 { return c.InMsgs })
	desc("msgs_to", func(c *server.ConnInfo) int64 { return c.OutMsgs })
	desc("bytes_from", func(c *server.ConnInfo) int64 { return c.InBytes })
	desc("bytes_to", func(c *server.ConnInfo) int64 { return c.OutBytes })
	desc("pending", func(c *server.ConnInfo) int64 { return int64(c.Pending) })
	desc("subs", func(c *server.ConnInfo) int64 { return int64(c.NumSubs) })
	desc("rtt", func(c *server.ConnInfo) int64 { return 0 })
	desc("last", func(c *server.ConnInfo) int64 { return c.LastActivity.UnixNano() })
	idle := connz(t, hm, "?sort=idle")
	ordered(t, "sort=idle", idle, true, func(c *server.ConnInfo) int64 { return -c.LastActivity.UnixNano() })
	ordered(t, "sort=uptime", connz(t, hm, "?sort=uptime"), false, func(c *server.ConnInfo) int64 { return -c.Start.UnixNano() })
	for _, key := range []string{"cid", "start"} {
		if got := cids(connz(t, hm, "?sort="+key)); !slices.Equal(got, cids(all)) {
			t.Fatalf("sort=%s: %v", key, got)
		}
	}
	if first := connz(t, hm, "?sort=msgs_from&limit=1"); first.NumConns != 1 || first.Conns[0].InMsgs != 7 {
		t.Fatalf("sort=msgs_from&limit=1: %+v", first.Conns)
	}
	// cid picks one; subs adds the (empty) list.
	want := all.Conns[17].Cid
	one := connz(t, hm, fmt.Sprintf("?cid=%d&subs=1", want))
	if one.NumConns != 1 || one.Conns[0].Cid != want || one.Limit != 1 || one.Conns[0].Subs == nil || len(one.Conns[0].Subs) != 0 {
		t.Fatalf("cid=%d&subs=1: %+v", want, one)
	}
	if none := connz(t, hm, "?cid=999999"); none.NumConns != 0 || none.Total != 0 {
		t.Fatalf("cid of no connection: %+v", none)
	}
	// States: close five; they move to the closed ring.
	for _, cl := range clients[:5] {
		cl.conn.Close()
	}
	waitFor(t, 10*time.Second, "five closed connections", func() bool {
		return connz(t, hm, "?state=closed").Total == 5
	})
	if open := connz(t, hm, "?state=open"); open.Total != n-5 {
		t.Fatalf("state=open: %d", open.Total)
	}
	anyState := connz(t, hm, "?state=any")
	if anyState.Total != n {
		t.Fatalf("state=any: %d", anyState.Total)
	}
	cl := connz(t, hm, "?state=closed&sort=stop")
	for _, ci := range cl.Conns {
		if ci.Stop == nil || ci.Reason != "Client Closed" || ci.InMsgs == 0 {
			t.Fatalf("closed connection: %+v", ci)
		}
	}
	ordered(t, "sort=stop", cl, true, func(c *server.ConnInfo) int64 { return c.Stop.UnixNano() })
	if r := connz(t, hm, "?state=closed&sort=reason"); r.Total != 5 {
		t.Fatalf("sort=reason: %+v", r)
	}
	if got := connz(t, hm, fmt.Sprintf("?state=closed&cid=%d", clientsCid(all, 0))); got.NumConns != 1 || got.Conns[0].Stop == nil {
		t.Fatalf("state=closed&cid: %+v", got)
	}
}

func clientsCid(cz server.Connz, i int) uint64 { return cz.Conns[i].Cid }

// TestMonitor_BadRequests: every bad query value is a 400 naming the
// parameter; unknown paths 404; wrong methods 405.
func TestMonitor_BadRequests(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, monitorConfig(dir, ""))
	hm := httpMonitor(t, c)
	for _, tc := range []struct{ path, mention string }{
		{"/connz?offset=x", "offset"},
		{"/connz?limit=1.5", "limit"},
		{"/connz?cid=-1", "cid"},
		{"/connz?cid=x", "cid"},
		{"/connz?subs=maybe", "subs"},
		{"/connz?auth=2", "auth"},
		{"/connz?state=gone", "state"},
		{"/connz?sort=name", "sort"},
		{"/connz?sort=stop", "state=closed"},
		{"/connz?sort=reason&state=any", "state=closed"},
		{"/connz?offset=99999999999999999999", "offset"},
		{"/healthz?live=x", "live"},
		{"/healthz?ready=x", "ready"},
		{"/healthz?live=1&ready=1", "live=1 or ready=1"},
		{"/stats?compact=yes", "compact"},
	} {
		if msg := hm.expectError("GET", tc.path, "", 400); !strings.Contains(msg, tc.mention) {
			t.Errorf("GET %s: message %q does not mention %q", tc.path, msg, tc.mention)
		}
	}
	for _, p := range []string{"/nope", "/varz/", "/varz/x", "/ui/nope.js", "/ui/index.html", "/debug/pprof/"} {
		hm.expectError("GET", p, "", 404)
	}
	for _, tc := range []struct{ method, path string }{
		{"POST", "/varz"}, {"PUT", "/connz"}, {"DELETE", "/metrics"}, {"POST", "/"}, {"POST", "/healthz"}, {"PATCH", "/stats"},
	} {
		hm.expectError(tc.method, tc.path, "", 405)
	}
}

// tlsClient dials the TLS listener and authenticates with secret.
func tlsClient(t *testing.T, addr string, cfg *tls.Config, secret string) *client {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cl := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	if secret != "" {
		cl.expect("AUTH "+secret, "OK")
	}
	return cl
}

// waitClosed waits for the server to close cl.
func waitClosed(t *testing.T, cl *client) {
	t.Helper()
	cl.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		if _, err := cl.r.ReadString('\n'); err != nil {
			return
		}
	}
}

// TestMonitor_ClosedReasons: connections closed for each reason tock has
// show up in the closed ring with it, and with their token name and TLS
// figures.
func TestMonitor_ClosedReasons(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath, pool := writeCert(t, dir)
	authPath := filepath.Join(dir, "auth.toml")
	copyAuthFixture(t, authPath)
	cfg := strings.Replace(monitorConfig(dir, ""), "[controller]\n", fmt.Sprintf(
		"[controller]\ntls_cert = %q\ntls_key = %q\nauth_file = %q\nwrite_deadline = \"1s\"\nmax_connections = 3\n",
		certPath, keyPath, authPath), 1)
	c := startCluster(t, dir, cfg)
	hm := httpMonitor(t, c)
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	const admin = "sk_admin_d4e5f6"

	// Client Closed, with its token name and TLS figures while open.
	cl := tlsClient(t, c.addr, tc, admin)
	cl.expect("r1 SET reasons.a 4102444800000000000", "r1 OK")
	open := connz(t, hm, "?auth=1")
	if len(open.Conns) != 1 || open.Conns[0].Name != "admin" || open.Conns[0].AuthorizedUser != "admin" ||
		open.Conns[0].Account != "*" || !strings.HasPrefix(open.Conns[0].TLSVersion, "TLS 1.") || open.Conns[0].TLSCipher == "" {
		t.Fatalf("open TLS connection with auth=1: %+v", open.Conns)
	}
	if plain := connz(t, hm, ""); plain.Conns[0].AuthorizedUser != "" || plain.Conns[0].Name != "admin" {
		t.Fatalf("without auth=1: %+v", plain.Conns[0])
	}
	cl.conn.Close()
	// Authentication Failure: a wrong secret first.
	bad := tlsClient(t, c.addr, tc, "")
	if got := bad.do("AUTH wrong"); !strings.HasPrefix(got, "ERROR") {
		t.Fatalf("AUTH wrong: %q", got)
	}
	waitClosed(t, bad)
	// TLS Handshake Error: plaintext on the TLS listener.
	raw, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	raw.Write([]byte("r1 STAT\n"))
	waitClosed(t, &client{t: t, conn: raw, r: bufio.NewReader(raw)})
	// Auth Timeout: nothing sent within 5 s.
	silent := tlsClient(t, c.addr, tc, "")
	waitClosed(t, silent)
	// Max Connections Exceeded: the fourth of three.
	var held []*client
	for range 3 {
		held = append(held, tlsClient(t, c.addr, tc, admin))
	}
	waitFor(t, 10*time.Second, "three open connections", func() bool { return connz(t, hm, "").Total == 3 })
	over, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	overc := &client{t: t, conn: over, r: bufio.NewReader(over)}
	waitClosed(t, overc)
	for _, h := range held[1:] {
		h.conn.Close()
	}
	// Slow Consumer: QUERYs whose replies are never read.
	slow := held[0]
	var lines []string
	for i := range 2000 {
		lines = append(lines, fmt.Sprintf("s%d SET reasons.slow.%04d 4102444800000000000", i, i))
	}
	slow.send(lines...)
	for range 2000 {
		slow.line()
	}
	lines = lines[:0]
	for i := range 400 {
		lines = append(lines, fmt.Sprintf("q%d QUERY reasons.slow.", i))
	}
	slow.send(lines...) // and never read: the server cuts it off after write_deadline

	want := []string{"Client Closed", "Authentication Failure", "TLS Handshake Error", "Auth Timeout",
		"Max Connections Exceeded", "Slow Consumer"}
	var closed server.Connz
	waitFor(t, 30*time.Second, "every reason in the closed ring", func() bool {
		closed = connz(t, hm, "?state=closed&sort=reason")
		var reasons []string
		for _, ci := range closed.Conns {
			reasons = append(reasons, ci.Reason)
		}
		for _, r := range want {
			if !slices.Contains(reasons, r) {
				return false
			}
		}
		return true
	})
	for _, ci := range closed.Conns {
		if ci.Stop == nil || ci.Stop.Before(ci.Start) || ci.Reason == "" {
			t.Errorf("closed connection without stop or reason: %+v", ci)
		}
		if ci.Reason == "Slow Consumer" && ci.Name != "admin" {
			t.Errorf("slow consumer's token name %q", ci.Name)
		}
	}
	var v server.Varz
	hm.expect("GET", "/varz", "", 200, &v)
	if v.SlowConsumers != 1 || !v.AuthRequired || !v.TLSRequired {
		t.Fatalf("varz slow_consumers %d auth_required %v tls_required %v", v.SlowConsumers, v.AuthRequired, v.TLSRequired)
	}
	// Server Shutdown: connections the master closes when it stops say so
	// (in its log: the ring ends with the process).
	last := tlsClient(t, c.addr, tc, admin)
	last.expect("r1 GET reasons.a", "r1 OK planned 4102444800000000000")
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.logs.String(), `reason="Server Shutdown"`) {
		t.Fatalf("no connection closed for Server Shutdown in the log:\n%s", tail(c.logs.String(), 40))
	}
}
