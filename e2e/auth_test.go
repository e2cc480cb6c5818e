package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// authFixture is the shared auth file: token deploy (secret
// sk_deploy_a1b2c3, namespace "deploy.") and admin (sk_admin_d4e5f6, "*").
const authFixture = "../testdata/auth/tokens.toml"

// copyAuthFixture writes a private copy of the shared auth file to path
// (a copy: SIGHUP tests rewrite it).
func copyAuthFixture(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(authFixture)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func authCluster(t *testing.T) (*cluster, string) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.toml")
	copyAuthFixture(t, path)
	cfg := strings.Replace(clusterConfig(dir, ""), "[controller]\n", fmt.Sprintf("[controller]\nauth_file = %q\n", path), 1)
	return startCluster(t, dir, cfg), path
}

// closed reports whether the server closed the connection.
func closed(cl *client) bool {
	cl.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := cl.r.ReadString('\n')
	return err != nil
}

// TestAuth: AUTH first, namespaces on job and rule ids and rule patterns,
// filtered QUERY and LISTRULES, and no password in LISTRULES (docs/protocol.md).
func TestAuth(t *testing.T) {
	c, _ := authCluster(t)

	// A command before AUTH is refused and the connection closed.
	cl := dial(t, c.addr)
	cl.expect("r1 STAT", "r1 ERROR authentication required: send AUTH <secret> first")
	if !closed(cl) {
		t.Fatal("connection open after a command without AUTH")
	}
	// A wrong secret closes the connection too.
	cl = dial(t, c.addr)
	cl.expect("AUTH nope", "ERROR invalid secret")
	if !closed(cl) {
		t.Fatal("connection open after a bad secret")
	}

	admin := dial(t, c.addr)
	admin.expect("AUTH sk_admin_d4e5f6", "OK")
	admin.expect("a1 SET backup.job1 4102444800000000000", "a1 OK")
	admin.expect("a2 RULE SET backup.r backup. redis redis://u:hunter2@127.0.0.1:1/0 RPUSH k", "a2 OK")

	dep := dial(t, c.addr)
	dep.expect("d0 AUTH sk_deploy_a1b2c3", "d0 OK")
	dep.expect("d1 SET deploy.job1 4102444800000000000", "d1 OK")
	dep.expect("d2 SET backup.daily 4102444800000000000", "d2 ERROR forbidden: outside this token's namespace \"deploy.\"")
	dep.expect("d3 GET backup.job1", "d3 ERROR forbidden: outside this token's namespace \"deploy.\"")
	dep.expect("d4 RULE SET x backup. shell echo", "d4 ERROR forbidden: outside this token's namespace \"deploy.\"")
	dep.expect("d5 RULE SET deploy.r backup. shell echo", "d5 ERROR forbidden: outside this token's namespace \"deploy.\"") // pattern outside
	dep.expect("d6 RULE SET deploy.r deploy. shell echo", "d6 OK")
	dep.expect("d7 REMOVERULE backup.r", "d7 ERROR forbidden: outside this token's namespace \"deploy.\"")
	body, _ := dep.list("d8", "d8 QUERY")
	if len(body) != 1 || !strings.HasPrefix(body[0], "d8 deploy.job1 ") {
		t.Fatalf("QUERY as deploy: %q", body)
	}
	body, _ = dep.list("d9", "d9 LISTRULES")
	if len(body) != 1 || !strings.HasPrefix(body[0], "d9 deploy.r ") {
		t.Fatalf("LISTRULES as deploy: %q", body)
	}
	body, _ = admin.list("a3", "a3 LISTRULES")
	if len(body) != 2 || strings.Contains(strings.Join(body, "\n"), "hunter2") {
		t.Fatalf("LISTRULES as admin: %q", body)
	}
	body, _ = dep.list("d10", "d10 STAT")
	if statMap(body)["auth_enabled"] != "1" {
		t.Fatalf("STAT: %q", body)
	}
}

// TestAuth_Timeout: a connection that sends nothing is closed after 5 s.
func TestAuth_Timeout(t *testing.T) {
	c, _ := authCluster(t)
	conn, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := bufio.NewReader(conn).ReadString('\n'); err == nil {
		t.Fatal("got a line without sending anything")
	}
	if d := time.Since(start); d > 12*time.Second {
		t.Fatalf("closed after %s, want about 5 s", d)
	}
}

// TestAuth_Reload: SIGHUP reloads the auth file; new connections use it.
func TestAuth_Reload(t *testing.T) {
	c, path := authCluster(t)
	os.WriteFile(path, []byte("[token.ops]\nsecret = \"sk_ops\"\nnamespace = \"ops.\"\n"), 0o600)
	c.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "auth reload", func() bool { return strings.Contains(c.logs.String(), "auth file reloaded") })
	cl := dial(t, c.addr)
	cl.expect("AUTH sk_ops", "OK")
	cl.expect("r1 SET ops.a 0", "r1 OK")
	cl = dial(t, c.addr)
	cl.expect("AUTH sk_admin_d4e5f6", "ERROR invalid secret")
}
