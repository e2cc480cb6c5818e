package runner

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tockd/tock/store"
)

func redisExec(url, command, key, job string) Execution {
	return exec1(store.RunnerRedis, job, url, command, key)
}

// testClient is a plain go-redis client to inspect the server.
func testClient(t *testing.T, addr, password string, db int) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, Password: password, DB: db, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRedisCommands(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	d := New(Config{}, nil)
	t.Cleanup(func() { d.Close() })
	ctx := ctxT(t, 30*time.Second)
	c := testClient(t, srv.Addr, "", 0)
	url := "redis://" + srv.Addr

	t.Run("PUBLISH", func(t *testing.T) {
		sub := c.Subscribe(ctx, "deploy:events")
		defer sub.Close()
		if _, err := sub.Receive(ctx); err != nil { // subscription confirmed
			t.Fatal(err)
		}
		before := time.Now()
		o := d.Run(ctx, redisExec(url, "PUBLISH", "deploy:events", "job.pub.1"))
		mustSucceed(t, o)
		checkTiming(t, o, before)
		if o.ExitCode != -1 || o.HTTPStatus != 0 {
			t.Errorf("exit %d http %d", o.ExitCode, o.HTTPStatus)
		}
		msg, err := sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if msg.Channel != "deploy:events" || msg.Payload != "job.pub.1" {
			t.Errorf("received %s %q", msg.Channel, msg.Payload)
		}
		// No subscriber is still success.
		mustSucceed(t, d.Run(ctx, redisExec(url, "publish", "nobody:listens", "job.pub.2")))
	})

	t.Run("RPUSH_LPUSH", func(t *testing.T) {
		mustSucceed(t, d.Run(ctx, redisExec(url, "RPUSH", "q", "job.b")))
		mustSucceed(t, d.Run(ctx, redisExec(url, "RPUSH", "q", "job.c")))
		mustSucceed(t, d.Run(ctx, redisExec(url, "LPUSH", "q", "job.a")))
		got, err := c.LRange(ctx, "q", 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, ",") != "job.a,job.b,job.c" {
			t.Errorf("LRANGE q = %v", got)
		}
	})

	t.Run("SET", func(t *testing.T) {
		mustSucceed(t, d.Run(ctx, redisExec(url, "SET", "last:job", "job.set")))
		if v, err := c.Get(ctx, "last:job").Result(); err != nil || v != "job.set" {
			t.Errorf("GET last:job = %q, %v", v, err)
		}
	})

	t.Run("server error reply", func(t *testing.T) {
		// RPUSH on a string key: WRONGTYPE error reply → failure.
		o := d.Run(ctx, redisExec(url, "RPUSH", "last:job", "job.x"))
		mustFail(t, o, "WRONGTYPE")
	})

	t.Run("bad arguments", func(t *testing.T) {
		mustFail(t, d.Run(ctx, redisExec(url, "DEL", "k", "j")), `unsupported command "DEL"`)
		mustFail(t, d.Run(ctx, redisExec("http://"+srv.Addr, "SET", "k", "j")), "scheme must be redis://")
		mustFail(t, d.Run(ctx, redisExec(url+"/abc", "SET", "k", "j")), "db must be")
		mustFail(t, d.Run(ctx, exec1(store.RunnerRedis, "j", url)), "want 3 arguments")
	})

	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				mustSucceed(t, d.Run(ctx, redisExec(url, "RPUSH", "many", fmt.Sprintf("job.%d", i))))
			}()
		}
		wg.Wait()
		if n, err := c.LLen(ctx, "many").Result(); err != nil || n != 50 {
			t.Errorf("LLEN many = %d, %v", n, err)
		}
		if n := d.redis.cache.c.len(); n != 1 {
			t.Errorf("%d cached clients for one URL, want 1", n)
		}
	})
}

func TestRedisDBSelection(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	d := New(Config{}, nil)
	t.Cleanup(func() { d.Close() })
	ctx := ctxT(t, 30*time.Second)
	mustSucceed(t, d.Run(ctx, redisExec("redis://"+srv.Addr+"/5", "SET", "k", "in-db-5")))
	mustSucceed(t, d.Run(ctx, redisExec("redis://"+srv.Addr+"/", "SET", "k", "in-db-0")))
	if v, _ := testClient(t, srv.Addr, "", 5).Get(ctx, "k").Result(); v != "in-db-5" {
		t.Errorf("db 5: k = %q", v)
	}
	if v, _ := testClient(t, srv.Addr, "", 0).Get(ctx, "k").Result(); v != "in-db-0" {
		t.Errorf("db 0: k = %q", v)
	}
}

func TestRedisPasswordAuthAndRedaction(t *testing.T) {
	t.Parallel()
	const password = "Sup3r-Secret-Pa55"
	srv := startRedis(t, "--requirepass", password)
	log, logs := traceLogger()
	d := New(Config{}, log)
	t.Cleanup(func() { d.Close() })
	ctx := ctxT(t, 30*time.Second)

	// AUTH <password> (no user), and ACL-style AUTH default <password>.
	mustSucceed(t, d.Run(ctx, redisExec("redis://:"+password+"@"+srv.Addr+"/2", "SET", "k", "job.auth")))
	mustSucceed(t, d.Run(ctx, redisExec("redis://default:"+password+"@"+srv.Addr, "RPUSH", "l", "job.auth2")))
	if v, err := testClient(t, srv.Addr, password, 2).Get(ctx, "k").Result(); err != nil || v != "job.auth" {
		t.Errorf("GET k in db 2 = %q, %v", v, err)
	}

	var errs []string
	// No password, a wrong one, a wrong one for a user, the right one on a
	// closed port: all fail, none may show the password.
	for _, u := range []string{
		"redis://" + srv.Addr,
		"redis://:wrong-" + password + "@" + srv.Addr,
		"redis://bob:" + password + "x@" + srv.Addr,
		fmt.Sprintf("redis://:%s@127.0.0.1:%d", password, closedPort(t)),
		"redis://:" + password + "@" + srv.Addr + "/notadb",
		"redis://:" + password + "@[::1",
	} {
		o := d.Run(ctx, redisExec(u, "SET", "k", "job.denied"))
		if o.Succeeded() {
			t.Fatalf("%s: succeeded", redact(u))
		}
		errs = append(errs, o.Error)
	}
	all := strings.Join(errs, "\n") + "\n" + logs.String()
	t.Logf("errors and logs:\n%s", all)
	if strings.Contains(all, password) {
		t.Errorf("password leaked into errors or logs:\n%s", all)
	}
	for _, want := range []string{"NOAUTH", "WRONGPASS", "connection refused", ":xxxxx@127.0.0.1"} {
		if !strings.Contains(all, want) {
			t.Errorf("errors/logs lack %q:\n%s", want, all)
		}
	}
}

func TestRedisClosedPort(t *testing.T) {
	t.Parallel()
	d := New(Config{}, nil)
	t.Cleanup(func() { d.Close() })
	before := time.Now()
	o := d.Run(context.Background(), redisExec(fmt.Sprintf("redis://127.0.0.1:%d", closedPort(t)), "SET", "k", "j"))
	mustFail(t, o, "connection refused")
	if el := time.Since(before); el > 5*time.Second {
		t.Errorf("took %v", el)
	}
}

func TestRedisClientCacheBoundedAndClosed(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	r := NewRedisRunner(5*time.Second, nil)
	r.MaxClients = 3
	ctx := ctxT(t, 30*time.Second)
	for db := 0; db < 10; db++ {
		mustSucceed(t, r.Run(ctx, redisExec(fmt.Sprintf("redis://%s/%d", srv.Addr, db), "SET", "k", "j")))
		if n := r.cache.c.len(); n > 3 {
			t.Fatalf("%d cached clients, max 3", n)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	mustFail(t, r.Run(ctx, redisExec("redis://"+srv.Addr, "SET", "k", "j")), "runner closed")
	// Close on an unused runner is fine too.
	if err := NewRedisRunner(0, nil).Close(); err != nil {
		t.Fatal(err)
	}
}
