package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/tockd/tock/internal/testservice"
)

// rabbit is the run's RabbitMQ, booted by the first test that needs it.
var rabbit = testservice.NewRabbit()

// TestRunners_HTTP: the http runner against a real local server: POST sends
// the job as JSON, 2xx is executed, 500 is failed.
func TestRunners_HTTP(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, r.Method+" "+r.URL.Path+" "+string(b))
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/fail") {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	cl.expect("r1 RULE SET rule.ok hook.ok. http POST "+srv.URL+"/ok", "r1 OK")
	cl.expect("r2 RULE SET rule.fail hook.fail. http PUT "+srv.URL+"/fail", "r2 OK")
	cl.expect("r3 SET hook.ok.1 1000", "r3 OK")
	cl.expect("r4 SET hook.fail.1 2000", "r4 OK")
	waitStatus(t, cl, "hook.ok.1", "executed", 20*time.Second)
	waitStatus(t, cl, "hook.fail.1", "failed", 20*time.Second)
	mu.Lock()
	defer mu.Unlock()
	var okBody map[string]any
	for _, b := range bodies {
		if strings.HasPrefix(b, "POST /ok ") {
			if err := json.Unmarshal([]byte(strings.TrimPrefix(b, "POST /ok ")), &okBody); err != nil {
				t.Fatalf("POST body %q: %v", b, err)
			}
		}
	}
	if okBody["job_id"] != "hook.ok.1" || okBody["execution"] != float64(1000) {
		t.Fatalf("webhook bodies: %q", bodies)
	}
}

// startRedis runs a private redis-server on a free loopback port.
func startRedis(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed: run .ci/install-services.sh")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, append([]string{"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir()}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitFor(t, 10*time.Second, "redis", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

// TestRunners_Redis: RPUSH into a real redis with a password; a refused
// port fails; the password never shows in logs or LISTRULES.
func TestRunners_Redis(t *testing.T) {
	addr := startRedis(t, "--requirepass", "s3cr3t-pw")
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	cl.expect(fmt.Sprintf("r1 RULE SET rule.rd rd. redis redis://:s3cr3t-pw@%s/0 RPUSH tock:jobs", addr), "r1 OK")
	cl.expect("r2 RULE SET rule.down down. redis redis://:s3cr3t-pw@127.0.0.1:1/0 PUBLISH chan", "r2 OK")
	cl.expect("r3 SET rd.job 0", "r3 OK")
	cl.expect("r4 SET down.job 0", "r4 OK")
	waitStatus(t, cl, "rd.job", "executed", 20*time.Second)
	waitStatus(t, cl, "down.job", "failed", 40*time.Second)
	rc := redis.NewClient(&redis.Options{Addr: addr, Password: "s3cr3t-pw"})
	defer rc.Close()
	got, err := rc.LRange(context.Background(), "tock:jobs", 0, -1).Result()
	if err != nil || len(got) != 1 || got[0] != "rd.job" {
		t.Fatalf("LRANGE: %q %v", got, err)
	}
	body, _ := cl.list("l", "l LISTRULES")
	for _, line := range append(body, c.logs.String()) {
		if strings.Contains(line, "s3cr3t-pw") {
			t.Fatalf("password leaked: %q", line)
		}
	}
}

// TestRunners_AMQP: the amqp runner through the cluster against a real
// RabbitMQ: the job id is published to the exchange; an unknown exchange
// fails the job; the broker password never shows.
func TestRunners_AMQP(t *testing.T) {
	url := rabbit.Need(t) // amqp://guest:guest@127.0.0.1:PORT/
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("tock.e2e", "direct", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "jobs", "tock.e2e", false, nil); err != nil {
		t.Fatal(err)
	}
	msgs, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	cl.expect("r1 RULE SET rule.mq mq. amqp "+url+" tock.e2e jobs", "r1 OK")
	cl.expect("r2 RULE SET rule.nomq nomq. amqp "+url+" no.such.exchange jobs", "r2 OK")
	cl.expect("r3 SET mq.job 0", "r3 OK")
	cl.expect("r4 SET nomq.job 0", "r4 OK")
	select {
	case m := <-msgs:
		if string(m.Body) != "mq.job" {
			t.Fatalf("published body %q", m.Body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no message published")
	}
	waitStatus(t, cl, "mq.job", "executed", 20*time.Second)
	waitStatus(t, cl, "nomq.job", "failed", 40*time.Second)
	body, _ := cl.list("l", "l LISTRULES")
	if strings.Contains(strings.Join(body, "\n"), "guest:guest") {
		t.Fatalf("password in LISTRULES: %q", body)
	}
}
