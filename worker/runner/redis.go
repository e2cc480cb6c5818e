package runner

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/tockd/tock/store"
)

// RedisRunner runs store.RunnerRedis executions (args: [url, command, key]):
// `<COMMAND> <key> <job id>` with COMMAND one of PUBLISH, RPUSH, LPUSH, SET,
// on redis://[user[:password]@]host[:port][/db]. Any non-error reply is
// success (PUBLISH to no subscriber included).
//
// One go-redis client (with its small connection pool) is kept per URL, at
// most MaxClients of them (least recently used evicted); Close closes them.
type RedisRunner struct {
	// Timeout bounds dialing and each socket read/write; the execution's
	// context deadline applies as well.
	Timeout time.Duration
	// MaxClients bounds the cached clients; 0 means 64.
	MaxClients int

	log   hclog.Logger
	cache lazyCache[*redis.Client]
}

var _ Runner = (*RedisRunner)(nil)

// NewRedisRunner returns a RedisRunner; log may be nil.
//
// go-redis has one process-wide logger (by default printing to stderr); the
// first NewRedisRunner with a logger redirects it to that logger at DEBUG,
// so that pool dial retries and the like go where tock's logs go. go-redis
// logs addresses, never credentials.
func NewRedisRunner(timeout time.Duration, log hclog.Logger) *RedisRunner {
	if log != nil {
		redisLoggerOnce.Do(func() { redis.SetLogger(redisLogger{log.Named("go-redis")}) })
	}
	return &RedisRunner{Timeout: timeout, log: log}
}

var redisLoggerOnce sync.Once

// redisLogger adapts an hclog.Logger to go-redis's logging interface.
type redisLogger struct{ log hclog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug(strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
}

var redisCommands = map[string]bool{"PUBLISH": true, "RPUSH": true, "LPUSH": true, "SET": true}

// Run sends the command of ex.
func (r *RedisRunner) Run(ctx context.Context, ex Execution) store.Outcome {
	if len(ex.Runner.Args) != 3 {
		return failf("redis runner: want 3 arguments (url, command, key), got %d", len(ex.Runner.Args))
	}
	rawURL, command, key := ex.Runner.Args[0], strings.ToUpper(ex.Runner.Args[1]), ex.Runner.Args[2]
	if !redisCommands[command] {
		return failf("redis runner: unsupported command %q (PUBLISH, RPUSH, LPUSH, SET)", ex.Runner.Args[1])
	}
	if _, err := parseRedisURL(rawURL, r.timeout()); err != nil {
		return failf("redis runner: %s: %v", redact(rawURL), err)
	}
	cache := r.cache.get(r.MaxClients, func(key string) (*redis.Client, error) {
		opt, err := parseRedisURL(key, r.timeout())
		if err != nil {
			return nil, err
		}
		return redis.NewClient(opt), nil
	})
	e, err := cache.acquire(rawURL)
	if err != nil {
		return failf("redis runner: %s: %v", redact(rawURL), err)
	}
	defer cache.release(e)
	if err := e.client.Do(ctx, command, key, ex.JobID).Err(); err != nil {
		msg := scrub(fmt.Sprintf("redis runner: %s %s on %s: %v", command, key, redact(rawURL), err), rawURL)
		if r.log != nil {
			r.log.Debug("redis command failed", "job", ex.JobID, "url", redact(rawURL), "error", msg)
		}
		return withCause(ctx, store.Outcome{ExitCode: -1, Error: msg})
	}
	return store.Outcome{ExitCode: -1}
}

func (r *RedisRunner) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return DefaultNetworkTimeout
}

// Close closes the cached clients (busy ones when their execution ends).
func (r *RedisRunner) Close() error { return r.cache.close() }

// parseRedisURL turns redis://[user[:password]@]host[:port][/db] into client
// options: empty user or password parts count as absent, a bare user sends no
// AUTH, port defaults to 6379, db to 0. Errors never quote the URL.
func parseRedisURL(raw string, timeout time.Duration) (*redis.Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid redis URL")
	}
	if u.Scheme != "redis" {
		return nil, fmt.Errorf("invalid redis URL: scheme must be redis://")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return nil, fmt.Errorf("invalid redis URL: missing host")
	}
	if port == "" {
		port = "6379"
	}
	opt := &redis.Options{
		Addr:                     net.JoinHostPort(host, port),
		Protocol:                 2,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		ContextTimeoutEnabled:    true,
		DialTimeout:              timeout,
		DialerRetries:            1,
		ReadTimeout:              timeout,
		WriteTimeout:             timeout,
		PoolTimeout:              timeout,
		// One retry on a connection that turned out dead; a retried push
		// may be delivered twice, which at-least-once delivery allows.
		MaxRetries:      1,
		PoolSize:        16,
		MaxIdleConns:    4,
		ConnMaxIdleTime: 5 * time.Minute,
	}
	if u.User != nil {
		opt.Username = u.User.Username()
		if pw, ok := u.User.Password(); ok {
			opt.Password = pw
		}
		if opt.Password == "" {
			// A bare user (or an empty password) authenticates nothing.
			opt.Username = ""
		}
	}
	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		db, err := strconv.Atoi(p)
		if err != nil || db < 0 || db > 255 {
			return nil, fmt.Errorf("invalid redis URL: db must be 0..255")
		}
		opt.DB = db
	}
	return opt, nil
}
