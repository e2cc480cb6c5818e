package e2e

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestProtocol_EveryCommand exercises each command of docs/protocol.md against a
// two-worker cluster.
func TestProtocol_EveryCommand(t *testing.T) {
	c := startCluster(t, t.TempDir(), clusterConfig(t.TempDir(), ""))
	cl := dial(t, c.addr)
	far := "4102444800000000000" // 2100-01-01
	cl.expect("r1 SET backup.daily "+far, "r1 OK")
	cl.expect("r2 GET backup.daily", "r2 OK planned "+far)
	cl.expect("r3 SET backup.weekly 2100-01-01 00:00:00", "r3 OK")
	cl.expect("r4 GET backup.weekly", "r4 OK planned "+far)
	cl.expect(`r5 SET "deploy x" "2100-01-01 00:00:00"`, "r5 OK")
	body, end := cl.list("q1", "q1 QUERY backup.")
	if end != "q1 OK" || len(body) != 2 || body[0] != "q1 backup.daily planned "+far || body[1] != "q1 backup.weekly planned "+far {
		t.Fatalf("QUERY backup.: %q %q", body, end)
	}
	body, _ = cl.list("q2", "q2 QUERY")
	if len(body) != 3 {
		t.Fatalf("QUERY all: %q", body)
	}
	cl.expect("r6 REMOVE backup.weekly", "r6 OK")
	cl.expect("r7 GET backup.weekly", "r7 ERROR not found")
	cl.expect("r8 REMOVE backup.weekly", "r8 ERROR not found")
	cl.expect(`r9 RULE SET rule.backup backup. shell "echo hi"`, "r9 OK")
	cl.expect("r10 RULE SET rule.hook hook. http POST http://127.0.0.1:1/x", "r10 OK")
	body, end = cl.list("l1", "l1 LISTRULES")
	if end != "l1 OK" || len(body) != 2 || body[0] != `l1 rule.backup backup. shell "echo hi"` ||
		body[1] != "l1 rule.hook hook. http POST http://127.0.0.1:1/x" {
		t.Fatalf("LISTRULES: %q", body)
	}
	cl.expect("r11 REMOVERULE rule.hook", "r11 OK")
	cl.expect("r12 REMOVERULE rule.hook", "r12 ERROR not found")
	body, end = cl.list("s1", "s1 STAT")
	keys := []string{"uptime_ns", "connections", "jobs_total", "jobs_planned", "jobs_triggered", "jobs_executed",
		"jobs_failed", "rules_total", "executions_pending", "executions_inflight", "persistence", "compression",
		"auth_enabled", "tls_enabled", "framerate"}
	if end != "s1 OK" || len(body) != len(keys) {
		t.Fatalf("STAT: %q %q", body, end)
	}
	stat := map[string]string{}
	for i, l := range body {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "s1" || f[1] != keys[i] {
			t.Fatalf("STAT line %d: %q, want key %s", i, l, keys[i])
		}
		stat[f[1]] = f[2]
	}
	if stat["jobs_total"] != "2" || stat["jobs_planned"] != "2" || stat["rules_total"] != "1" ||
		stat["persistence"] != "logfile" || stat["framerate"] != "200" || stat["connections"] != "1" {
		t.Fatalf("STAT values: %v", stat)
	}
	cl.expect("AUTH anything", "OK")
}

// TestProtocol_Errors: every bad line is answered and the connection stays
// usable (docs/protocol.md).
func TestProtocol_Errors(t *testing.T) {
	c := startCluster(t, t.TempDir(), clusterConfig(t.TempDir(), ""))
	cl := dial(t, c.addr)
	cases := []struct{ line, want string }{
		{"r1 FOO bar", `r1 ERROR unknown command "FOO": want SET, GET, QUERY, REMOVE, RULE SET, REMOVERULE, LISTRULES, STAT, AUTH or INFO`},
		{"r2 SET job abc", `r2 ERROR invalid timestamp "abc": want nanoseconds since the epoch, "YYYY-MM-DD HH:MM:SS" (UTC) or RFC 3339`},
		{"r3 SET job", `r3 ERROR missing timestamp: want nanoseconds since the epoch, "YYYY-MM-DD HH:MM:SS" (UTC) or RFC 3339`},
		{"r4 GET", "r4 ERROR missing job id: want <rid> GET <job>"},
		{"r5", "r5 ERROR missing command: want <rid> <command> [<args>], commands: SET, GET, QUERY, REMOVE, RULE SET, REMOVERULE, LISTRULES, STAT, AUTH or INFO"},
		{"", "ERROR empty line"},
		{"r6 RULE SET x y. http PATCH http://a", ""},
		{"r7 SET job 2100-02-30 00:00:00", ""},
		{"r8 set job 1", `r8 ERROR unknown command "set": commands are upper case, did you mean "SET"?`},
		{"SET foo 0", "ERROR missing request id: want <rid> SET <job> <timestamp>"},
		{"r8b SET job 1 extra", `r8b ERROR unexpected token "extra" after the command: want <rid> SET <job> <timestamp>`},
		{"r8c SET rfc.job 2030-01-01T02:00:00+02:00", "r8c OK"},
		{"r8d GET rfc.job", "r8d OK planned 1893456000000000000"},
		{`r9 SET "unterminated 1`, ""},
	}
	for _, tc := range cases {
		got := cl.do(tc.line)
		if tc.want == "" {
			if !strings.Contains(got, " ERROR ") && !strings.HasPrefix(got, "ERROR ") {
				t.Errorf("%q: got %q, want an ERROR", tc.line, got)
			}
			continue
		}
		if got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.line, got, tc.want)
		}
	}
	// Over-long line: answered, skipped to the newline, connection usable.
	cl.send("r10 SET " + strings.Repeat("x", 10000) + " 1")
	if got := cl.line(); got != "r10 ERROR line too long (limit 4096 bytes)" {
		t.Fatalf("long line: %q", got)
	}
	cl.send(strings.Repeat("x", 10000) + " 1")
	if got := cl.line(); got != "ERROR line too long (limit 4096 bytes)" {
		t.Fatalf("long line without a readable request id: %q", got)
	}
	// CRLF.
	cl.send("r11 SET crlf.job 4102444800000000000\r")
	if got := cl.line(); got != "r11 OK" {
		t.Fatalf("CRLF: %q", got)
	}
	cl.expect("r12 GET crlf.job", "r12 OK planned 4102444800000000000")
}

// TestProtocol_PipelinedInOrder: 1000 pipelined requests on one connection
// across shards come back in request order (docs/protocol.md).
func TestProtocol_PipelinedInOrder(t *testing.T) {
	c := startCluster(t, t.TempDir(), clusterConfig(t.TempDir(), ""))
	cl := dial(t, c.addr)
	var lines []string
	for i := 0; i < 1000; i++ {
		if i%2 == 0 {
			lines = append(lines, fmt.Sprintf("s%d SET pipe.%d %d", i, i, 4102444800000000000+int64(i)))
		} else {
			lines = append(lines, fmt.Sprintf("g%d GET pipe.%d", i, i-1))
		}
	}
	cl.send(lines...)
	for i := 0; i < 1000; i++ {
		want := fmt.Sprintf("s%d OK", i)
		if i%2 == 1 {
			want = fmt.Sprintf("g%d OK planned %d", i, 4102444800000000000+int64(i-1))
		}
		if got := cl.line(); got != want {
			t.Fatalf("reply %d: got %q, want %q", i, got, want)
		}
	}
}

// TestProtocol_ConcurrentConnections: 50 connections at once.
func TestProtocol_ConcurrentConnections(t *testing.T) {
	c := startCluster(t, t.TempDir(), clusterConfig(t.TempDir(), ""))
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for n := 0; n < 50; n++ {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			conn := dialNoT(c.addr)
			if conn == nil {
				errs <- fmt.Errorf("conn %d: dial failed", n)
				return
			}
			defer conn.close()
			for i := 0; i < 20; i++ {
				id := fmt.Sprintf("conc.%d.%d", n, i)
				if got := conn.do(fmt.Sprintf("r%d SET %s 4102444800000000000", i, id)); got != fmt.Sprintf("r%d OK", i) {
					errs <- fmt.Errorf("conn %d SET: %q", n, got)
					return
				}
				if got := conn.do(fmt.Sprintf("g%d GET %s", i, id)); got != fmt.Sprintf("g%d OK planned 4102444800000000000", i) {
					errs <- fmt.Errorf("conn %d GET: %q", n, got)
					return
				}
			}
		}(n)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	cl := dial(t, c.addr)
	body, _ := cl.list("q", "q QUERY conc.")
	if len(body) != 1000 {
		t.Fatalf("QUERY after concurrent SETs: %d jobs, want 1000", len(body))
	}
}

// TestProtocol_RuleThenJobPipelined: a RULE SET pipelined with the job it
// is for takes effect before that job is routed (effects follow the order
// of the lines on a connection, not only the replies).
func TestProtocol_RuleThenJobPipelined(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	cl.send(`r1 RULE SET rule.p pipe. direct /bin/true`, "r2 SET pipe.now 0", "r3 LISTRULES")
	for _, want := range []string{"r1 OK", "r2 OK", "r3 rule.p pipe. direct /bin/true", "r3 OK"} {
		if got := cl.line(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	waitStatus(t, cl, "pipe.now", "executed", 20*time.Second)
}

// TestProtocol_SlowReaderBounded: a client that pipelines QUERYs and reads
// nothing cannot grow the master's memory without bound (docs/protocol.md).
func TestProtocol_SlowReaderBounded(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	writeJobs(t, cl, "mem", 5000)
	hog := dial(t, c.addr)
	var lines []string
	for i := 0; i < 2000; i++ {
		lines = append(lines, fmt.Sprintf("q%d QUERY mem.", i))
	}
	go hog.conn.Write([]byte(strings.Join(lines, "\n") + "\n")) // blocks once the server stops reading
	rss := func() int {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmRSS:") {
				var kb int
				fmt.Sscanf(strings.TrimPrefix(l, "VmRSS:"), "%d", &kb)
				return kb
			}
		}
		return 0
	}
	// Other clients are still served while the hog is stuck.
	for i := 0; i < 50; i++ {
		cl.expect(fmt.Sprintf("g%d GET mem.%d", i, i), fmt.Sprintf("g%d OK planned %d", i, 4102444800000000000+int64(i)))
	}
	// Sample the master's memory while the hog's queries would pile up
	// (unbounded, 2000 replies of 5000 lines are about 450 MB).
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if kb := rss(); kb > 200<<10 {
			t.Fatalf("master RSS %d KiB with a non-reading client", kb)
		}
	}
}
