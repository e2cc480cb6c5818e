package runner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/sync/semaphore"

	"github.com/tockd/tock/store"
)

// amqpMaxIdleChannels bounds the confirm-mode channels kept open per
// connection between executions.
const amqpMaxIdleChannels = 16

// amqpHeartbeat is the heartbeat negotiated on runner connections; it also
// bounds how long a dead broker can keep a blocked operation waiting.
const amqpHeartbeat = 10 * time.Second

// AMQPRunner runs store.RunnerAMQP executions (args: [dsn, exchange,
// routing_key]): it publishes the job id as the message body to exchange
// with routing_key (mandatory=false, persistent delivery mode) and waits for
// the broker's publisher confirm, so success means the broker took the
// message.
//
// One connection is kept per DSN (amqp://user:pass@host:port/vhost, at most
// MaxConnections of them, least recently used closed), redialled on the next
// execution after it broke. Each publish uses a confirm-mode channel of its
// own (pooled), so a channel error such as an unknown exchange (404) fails
// only that execution.
type AMQPRunner struct {
	// Timeout bounds dialing and the AMQP handshake; the execution's context
	// deadline applies to everything.
	Timeout time.Duration
	// MaxConnections bounds the cached connections; 0 means 64.
	MaxConnections int

	log   hclog.Logger
	cache lazyCache[*amqpConn]
}

var _ Runner = (*AMQPRunner)(nil)

// NewAMQPRunner returns an AMQPRunner; log may be nil.
func NewAMQPRunner(timeout time.Duration, log hclog.Logger) *AMQPRunner {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &AMQPRunner{Timeout: timeout, log: log}
}

// Run publishes the job id of ex.
func (r *AMQPRunner) Run(ctx context.Context, ex Execution) store.Outcome {
	if len(ex.Runner.Args) != 3 {
		return failf("amqp runner: want 3 arguments (dsn, exchange, routing key), got %d", len(ex.Runner.Args))
	}
	dsn, exchange, key := ex.Runner.Args[0], ex.Runner.Args[1], ex.Runner.Args[2]
	if _, err := amqp.ParseURI(dsn); err != nil {
		// ParseURI errors may quote the DSN: do not use their text.
		return failf("amqp runner: invalid DSN %s", redact(dsn))
	}
	log := r.log
	if log == nil {
		log = hclog.NewNullLogger()
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultNetworkTimeout
	}
	cache := r.cache.get(r.MaxConnections, func(dsn string) (*amqpConn, error) {
		return &amqpConn{dsn: dsn, timeout: timeout, log: log.With("dsn", redact(dsn)), dialSem: semaphore.NewWeighted(1)}, nil
	})
	e, err := cache.acquire(dsn)
	if err != nil {
		return failf("amqp runner: %s: %v", redact(dsn), err)
	}
	defer cache.release(e)
	if err := e.client.publish(ctx, exchange, key, []byte(ex.JobID)); err != nil {
		msg := scrub(fmt.Sprintf("amqp runner: publish to exchange %q with routing key %q on %s: %v",
			exchange, key, redact(dsn), err), dsn)
		log.Debug("amqp publish failed", "job", ex.JobID, "dsn", redact(dsn), "error", msg)
		return withCause(ctx, store.Outcome{ExitCode: -1, Error: msg})
	}
	return store.Outcome{ExitCode: -1}
}

// Close closes the cached connections (busy ones when their execution ends).
func (r *AMQPRunner) Close() error { return r.cache.close() }

// amqpConn is the cached connection to one DSN.
type amqpConn struct {
	dsn     string
	timeout time.Duration
	log     hclog.Logger
	dialSem *semaphore.Weighted // serialises (re)dials, honouring ctx

	mu     sync.Mutex
	conn   *amqp.Connection
	idle   []*amqpChannel
	closed bool
}

type amqpChannel struct {
	ch     *amqp.Channel
	closes chan *amqp.Error
}

// publish publishes body and waits for the confirm. The broker operations
// that amqp091 does not bound by a context (channel open, frame writes) run
// in a goroutine so that ctx always bounds the execution; such a goroutine
// ends at the latest when heartbeats declare the connection dead.
func (c *amqpConn) publish(ctx context.Context, exchange, key string, body []byte) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("amqp client panic: %v", r)
			}
		}()
		done <- c.publishSync(ctx, exchange, key, body)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *amqpConn) publishSync(ctx context.Context, exchange, key string, body []byte) error {
	ac, err := c.channel(ctx)
	if err != nil {
		return err
	}
	dc, err := ac.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, amqp.Publishing{
		ContentType:  "text/plain",
		DeliveryMode: amqp.Persistent,
		Body:         body,
	})
	if err != nil {
		ac.discard()
		return err
	}
	acked, err := dc.WaitContext(ctx)
	if err != nil {
		// Confirm still pending: the channel's state is unknown, drop it.
		ac.discard()
		return err
	}
	if !acked {
		ac.discard()
		// A broker-closed channel (e.g. 404 NOT_FOUND for an unknown
		// exchange) is notified before its pending confirms are nacked.
		select {
		case e, ok := <-ac.closes:
			if ok && e != nil {
				return e
			}
		default:
		}
		return errors.New("the broker rejected the message (nack)")
	}
	c.putChannel(ac)
	return nil
}

func (ac *amqpChannel) discard() { _ = ac.ch.Close() }

// channel returns an open confirm-mode channel: an idle one, or a new one on
// the connection (dialled or redialled when needed).
func (c *amqpConn) channel(ctx context.Context) (*amqpChannel, error) {
	c.mu.Lock()
	for len(c.idle) > 0 {
		ac := c.idle[len(c.idle)-1]
		c.idle[len(c.idle)-1] = nil
		c.idle = c.idle[:len(c.idle)-1]
		if !ac.ch.IsClosed() {
			c.mu.Unlock()
			return ac, nil
		}
	}
	c.mu.Unlock()
	for attempt := 0; ; attempt++ {
		conn, err := c.connection(ctx)
		if err != nil {
			return nil, err
		}
		ch, err := conn.Channel()
		if err != nil {
			if attempt == 0 && conn.IsClosed() {
				continue // the connection died since it was checked: redial once
			}
			return nil, err
		}
		if err := ch.Confirm(false); err != nil {
			_ = ch.Close()
			return nil, err
		}
		return &amqpChannel{ch: ch, closes: ch.NotifyClose(make(chan *amqp.Error, 1))}, nil
	}
}

func (c *amqpConn) putChannel(ac *amqpChannel) {
	c.mu.Lock()
	if !c.closed && len(c.idle) < amqpMaxIdleChannels && !ac.ch.IsClosed() {
		c.idle = append(c.idle, ac)
		ac = nil
	}
	c.mu.Unlock()
	if ac != nil {
		ac.discard()
	}
}

// connection returns the open connection, dialling a new one if there is
// none or the previous one was closed (broker restart, network error,
// connection-level exception).
func (c *amqpConn) connection(ctx context.Context) (*amqp.Connection, error) {
	if conn, err := c.current(); conn != nil || err != nil {
		return conn, err
	}
	if err := c.dialSem.Acquire(ctx, 1); err != nil {
		return nil, err
	}
	defer c.dialSem.Release(1)
	if conn, err := c.current(); conn != nil || err != nil {
		return conn, err // another execution redialled meanwhile
	}
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = conn.Close()
		return nil, errRunnerClosed
	}
	reconnect := c.conn != nil
	c.conn = conn
	c.idle = nil // channels of the dead connection are dead too
	c.mu.Unlock()
	if reconnect {
		c.log.Debug("amqp reconnected")
	}
	return conn, nil
}

// current is the open connection, or nil.
func (c *amqpConn) current() (*amqp.Connection, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errRunnerClosed
	}
	if c.conn != nil && !c.conn.IsClosed() {
		return c.conn, nil
	}
	return nil, nil
}

func (c *amqpConn) dial(ctx context.Context) (*amqp.Connection, error) {
	timeout := c.timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("tock worker")
	return amqp.DialConfig(c.dsn, amqp.Config{
		Heartbeat:  amqpHeartbeat,
		Locale:     "en_US",
		Properties: props,
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// Deadline for the AMQP handshake; amqp091 clears it once the
			// connection is open.
			if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
				_ = conn.Close()
				return nil, err
			}
			return conn, nil
		},
	})
}

// Close closes the connection (and with it its channels).
func (c *amqpConn) Close() error {
	c.mu.Lock()
	c.closed = true
	conn := c.conn
	c.conn, c.idle = nil, nil
	c.mu.Unlock()
	if conn == nil || conn.IsClosed() {
		return nil
	}
	if err := conn.CloseDeadline(time.Now().Add(c.timeout)); err != nil && !errors.Is(err, amqp.ErrClosed) {
		return err
	}
	return nil
}
