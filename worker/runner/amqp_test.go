package runner

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tockd/tock/store"
)

// amqpFixture declares a direct exchange and an exclusive queue bound to it
// with routing key "rk", and consumes the queue.
type amqpFixture struct {
	exchange string
	queue    string
	msgs     <-chan amqp.Delivery
}

func newAMQPFixture(t *testing.T, url string) *amqpFixture {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	f := &amqpFixture{exchange: fmt.Sprintf("tock.test.%s.%d", t.Name(), time.Now().UnixNano())}
	f.exchange = strings.ReplaceAll(f.exchange, "/", ".")
	if err := ch.ExchangeDeclare(f.exchange, "direct", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.queue = q.Name
	if err := ch.QueueBind(q.Name, "rk", f.exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	if f.msgs, err = ch.Consume(q.Name, "", true, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *amqpFixture) receive(t *testing.T) amqp.Delivery {
	t.Helper()
	select {
	case m := <-f.msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message received in 10s")
	}
	return amqp.Delivery{}
}

func amqpExec(dsn, exchange, key, job string) Execution {
	return exec1(store.RunnerAMQP, job, dsn, exchange, key)
}

func TestAMQPPublish(t *testing.T) {
	t.Parallel()
	url := rabbit.Need(t)
	f := newAMQPFixture(t, url)
	d := New(Config{}, nil)
	t.Cleanup(func() { d.Close() })
	ctx := ctxT(t, 30*time.Second)

	before := time.Now()
	o := d.Run(ctx, amqpExec(url, f.exchange, "rk", "job.amqp.1"))
	mustSucceed(t, o)
	checkTiming(t, o, before)
	if o.ExitCode != -1 || o.HTTPStatus != 0 {
		t.Errorf("exit %d http %d", o.ExitCode, o.HTTPStatus)
	}
	m := f.receive(t)
	if string(m.Body) != "job.amqp.1" || m.Exchange != f.exchange || m.RoutingKey != "rk" {
		t.Errorf("got body %q exchange %q key %q", m.Body, m.Exchange, m.RoutingKey)
	}

	// Default exchange, routing key = queue name.
	mustSucceed(t, d.Run(ctx, amqpExec(url, "", f.queue, "job.amqp.2")))
	if m := f.receive(t); string(m.Body) != "job.amqp.2" {
		t.Errorf("got %q", m.Body)
	}

	// Unroutable (no binding for the key) is still accepted by the broker.
	mustSucceed(t, d.Run(ctx, amqpExec(url, f.exchange, "nobody", "job.amqp.3")))

	// Many concurrent publishes share one connection.
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mustSucceed(t, d.Run(ctx, amqpExec(url, f.exchange, "rk", fmt.Sprintf("job.c.%d", i))))
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := 0; i < 40; i++ {
		seen[string(f.receive(t).Body)] = true
	}
	if len(seen) != 40 {
		t.Errorf("received %d distinct messages, want 40", len(seen))
	}
	if n := d.amqp.cache.c.len(); n != 1 {
		t.Errorf("%d cached connections, want 1", n)
	}
}

func TestAMQPUnknownExchange(t *testing.T) {
	t.Parallel()
	url := rabbit.Need(t)
	f := newAMQPFixture(t, url)
	d := New(Config{}, nil)
	t.Cleanup(func() { d.Close() })
	ctx := ctxT(t, 30*time.Second)
	o := d.Run(ctx, amqpExec(url, "tock.no-such-exchange", "rk", "job.lost"))
	mustFail(t, o, "NOT_FOUND")
	// Only that execution's channel died: the connection serves the next.
	mustSucceed(t, d.Run(ctx, amqpExec(url, f.exchange, "rk", "job.after")))
	if m := f.receive(t); string(m.Body) != "job.after" {
		t.Errorf("got %q", m.Body)
	}
}

func TestAMQPWrongPasswordRedacted(t *testing.T) {
	t.Parallel()
	url := rabbit.Need(t)
	log, logs := traceLogger()
	d := New(Config{}, log)
	t.Cleanup(func() { d.Close() })
	ctx := ctxT(t, 30*time.Second)
	const password = "Wr0ng-Pa55word"
	bad := strings.Replace(url, "guest:guest@", "guest:"+password+"@", 1)
	o := d.Run(ctx, amqpExec(bad, "amq.direct", "rk", "job.denied"))
	mustFail(t, o, "403")
	if strings.Contains(o.Error, password) || strings.Contains(logs.String(), password) {
		t.Errorf("password leaked: error %q\nlogs:\n%s", o.Error, logs.String())
	}
	if !strings.Contains(o.Error, "guest:xxxxx@127.0.0.1") {
		t.Errorf("error %q lacks the redacted DSN", o.Error)
	}
	t.Logf("%v: %s", time.Duration(o.Duration), o.Error)

	// Unparsable DSN and closed port: failures, no password either.
	for _, dsn := range []string{
		"amqp://guest:" + password + "@127.0.0.1:notaport/",
		fmt.Sprintf("amqp://guest:%s@127.0.0.1:%d/", password, closedPort(t)),
	} {
		o := d.Run(ctx, amqpExec(dsn, "amq.direct", "rk", "job.denied"))
		t.Logf("%v: %s", time.Duration(o.Duration), o.Error)
		if o.Succeeded() || strings.Contains(o.Error, password) {
			t.Errorf("%s: outcome %+v", redact(dsn), o)
		}
	}
	if strings.Contains(logs.String(), password) {
		t.Errorf("password in logs:\n%s", logs.String())
	}
}

func TestAMQPReconnect(t *testing.T) {
	t.Parallel()
	url := rabbit.Need(t)
	f := newAMQPFixture(t, url)
	r := NewAMQPRunner(10*time.Second, nil)
	t.Cleanup(func() { r.Close() })
	ctx := ctxT(t, 30*time.Second)
	mustSucceed(t, r.Run(ctx, amqpExec(url, f.exchange, "rk", "job.r1")))
	f.receive(t)

	// Break the cached connection behind the runner's back.
	e, err := r.cache.c.acquire(url)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := e.client.current()
	r.cache.c.release(e)
	if old == nil {
		t.Fatal("no cached connection")
	}
	old.Close()

	mustSucceed(t, r.Run(ctx, amqpExec(url, f.exchange, "rk", "job.r2")))
	if m := f.receive(t); string(m.Body) != "job.r2" {
		t.Errorf("got %q", m.Body)
	}
	e, _ = r.cache.c.acquire(url)
	now, _ := e.client.current()
	r.cache.c.release(e)
	if now == nil || now == old {
		t.Error("connection was not redialled")
	}
}

func TestAMQPTimeout(t *testing.T) {
	t.Parallel()
	// A TCP listener that never speaks AMQP: the handshake hangs.
	port := freePort(t)
	l, err := listenLoopback(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	d := New(Config{NetworkTimeout: 300 * time.Millisecond}, nil)
	t.Cleanup(func() { d.Close() })
	before := time.Now()
	o := d.Run(context.Background(), amqpExec(fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", port), "x", "rk", "j"))
	if o.Error != "timeout after 300ms" {
		t.Errorf("error %q, want \"timeout after 300ms\"", o.Error)
	}
	if el := time.Since(before); el > 5*time.Second {
		t.Errorf("took %v", el)
	}
}
