// Package jslog keeps shard logs in NATS JetStream: one replicated stream
// per shard, appends fenced by the stream's expected last sequence, so that
// several tock hosts can share the shards and take a dead host's shards
// over without two of them ever writing one shard (docs/scale-out.md,
// "Shard streams").
package jslog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tockd/tock/config"
	"github.com/tockd/tock/ipc"
)

// Config is how to reach the NATS servers and who this host is.
type Config struct {
	URLs     []string
	Cluster  string // stream name prefix (jetstream.cluster_name)
	Replicas int
	Host     string // this tock host's name, in every message it writes
	TLSCA    string
	TLSCert  string
	TLSKey   string
	Creds    string
	User     string
	Password string
	Token    string
}

// ConfigFrom is the worker's view of the [jetstream] section.
func ConfigFrom(s *ipc.JetStreamSettings) Config {
	if s == nil {
		return Config{}
	}
	return Config{URLs: s.URLs, Cluster: s.ClusterName, Replicas: s.Replicas, Host: s.HostName,
		TLSCA: s.TLSCA, TLSCert: s.TLSCert, TLSKey: s.TLSKey, Creds: s.Creds, User: s.User, Password: s.Password, Token: s.Token}
}

// ConfigFromFile is the master's view of the [jetstream] section.
func ConfigFromFile(j config.JetStream) Config {
	return Config{URLs: j.URLs, Cluster: j.ClusterName, Replicas: j.Replicas, Host: j.HostName,
		TLSCA: j.TLSCA, TLSCert: j.TLSCert, TLSKey: j.TLSKey, Creds: j.Creds, User: j.User, Password: j.Password, Token: j.Token}
}

// Client settings tuned for failover: nats.go's defaults (a 2 s reconnect
// wait, a ping every 2 min) would notice a dead server after minutes.
const (
	reconnectWait = 100 * time.Millisecond
	pingInterval  = time.Second
	maxPingsOut   = 3
	// asyncAckTimeout: an async publish with no ack by then is ambiguous
	// and is re-sent with its Msg-Id (see ShardLog.Sync).
	asyncAckTimeout = 5 * time.Second
	// maxInflight bounds the async publishes in flight per connection
	// (all shards of a worker share one); a Write beyond it waits up to
	// stallWait, then the message is left to Sync to send.
	maxInflight = 1024
	stallWait   = 5 * time.Second
)

// Engine is one connection to NATS and its JetStream handle, shared by
// every shard log of a process.
type Engine struct {
	cfg Config
	nc  *nats.Conn
	js  jetstream.JetStream
	log hclog.Logger
}

// Connect connects to the servers in cfg.URLs. If none answers yet the
// connection keeps trying in the background (RetryOnFailedConnect), so a
// tock host can boot before NATS is up; the calls that need JetStream
// retry until their context ends.
func Connect(cfg Config, log hclog.Logger) (*Engine, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("jetstream: no NATS URLs")
	}
	if cfg.Cluster == "" {
		cfg.Cluster = config.DefaultJetStreamCluster
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = config.DefaultJetStreamReplicas
	}
	if cfg.Host == "" {
		return nil, errors.New("jetstream: no host name")
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	opts := []nats.Option{
		nats.Name("tock " + cfg.Host),
		nats.ReconnectWait(reconnectWait),
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("disconnected from NATS", "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted())
		}),
	}
	if cfg.TLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCA))
	}
	if cfg.TLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	switch {
	case cfg.Creds != "":
		opts = append(opts, nats.UserCredentials(cfg.Creds))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	nc, err := nats.Connect(strings.Join(cfg.URLs, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("jetstream: connect: %w", err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(maxInflight), jetstream.WithPublishAsyncTimeout(asyncAckTimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Engine{cfg: cfg, nc: nc, js: js, log: log}, nil
}

// JetStream is the handle, for the KV buckets (cluster/).
func (e *Engine) JetStream() jetstream.JetStream { return e.js }

// Conn is the NATS connection.
func (e *Engine) Conn() *nats.Conn { return e.nc }

// Config is the engine's configuration, defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// Close drains nothing: the shard logs sync before they close, so what is
// still in flight here was never acknowledged.
func (e *Engine) Close() { e.nc.Close() }

// retryPause is the pause between attempts of a call that must outlast a
// NATS leader election (4–9 s): short, so a takeover is not delayed.
const retryPause = 100 * time.Millisecond

// pause waits retryPause or until ctx ends.
func pause(ctx context.Context) error {
	t := time.NewTimer(retryPause)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
