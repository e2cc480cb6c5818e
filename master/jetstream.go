package master

import (
	"context"
	"fmt"

	"github.com/tockd/tock/config"
	"github.com/tockd/tock/store/jslog"
)

// persistence = "jetstream" (docs/scale-out.md): the master connects to
// NATS and makes sure every shard stream exists before any worker opens a
// shard; the workers fence and replay the streams themselves.
//
// Which shards this host serves is decided by the lease manager
// (leases.go): workers boot with none, and each lease acquired opens one.

// startJetStream connects the master's engine and creates or checks the
// shard streams, within the worker boot timeout (a NATS meta-leader
// election takes up to 9 s).
func (m *Master) startJetStream(ctx context.Context) error {
	if m.cfg.Database.Persistence != config.PersistenceJetStream {
		return nil
	}
	e, err := jslog.Connect(jslog.ConfigFromFile(m.cfg.JetStream), m.log.Named("jetstream"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Cluster.WorkerBootTimeout.Duration)
	defer cancel()
	if err := e.EnsureStreams(ctx, m.cfg.Cluster.Shards); err != nil {
		e.Close()
		return fmt.Errorf("jetstream: %w", err)
	}
	m.js = e
	m.log.Info("shard streams ready", "shards", m.cfg.Cluster.Shards, "cluster", e.Config().Cluster, "replicas", e.Config().Replicas)
	return nil
}

// stopJetStream closes the engine after the workers are stopped.
func (m *Master) stopJetStream() {
	if m.js != nil {
		m.js.Close()
		m.js = nil
	}
}
