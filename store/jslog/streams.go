package jslog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamName is shard n's stream: TOCK_<cluster>_S<NNN>.
func StreamName(cluster string, shard int) string {
	return fmt.Sprintf("TOCK_%s_S%03d", cluster, shard)
}

// RecSubject carries shard n's records (packed batches and snapshots).
func RecSubject(cluster string, shard int) string {
	return fmt.Sprintf("tock.%s.s%03d.rec", cluster, shard)
}

// OwnSubject carries shard n's fence records.
func OwnSubject(cluster string, shard int) string {
	return fmt.Sprintf("tock.%s.s%03d.own", cluster, shard)
}

// dedupWindow is how long the stream remembers Msg-Ids: a re-publish after
// an ambiguous timeout within it is recognised as the message already
// stored.
const dedupWindow = 2 * time.Minute

// streamConfig is the configuration of shard n's stream. No limits, and
// DiscardNew: a limit with DiscardOld would drop the oldest records
// silently, which is data loss. DenyDelete: no single record may vanish;
// only a compaction purges, below a complete snapshot.
func (e *Engine) streamConfig(shard int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamName(e.cfg.Cluster, shard),
		Description: fmt.Sprintf("tock shard %d log", shard),
		Subjects:    []string{RecSubject(e.cfg.Cluster, shard), OwnSubject(e.cfg.Cluster, shard)},
		Retention:   jetstream.LimitsPolicy,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		MaxAge:      0,
		Discard:     jetstream.DiscardNew,
		Storage:     jetstream.FileStorage,
		Replicas:    e.cfg.Replicas,
		Duplicates:  dedupWindow,
		DenyDelete:  true,
		AllowDirect: true,
		AllowRollup: true,
	}
}

// EnsureStreams creates every shard stream that is missing and checks the
// ones that exist. It is idempotent. Creating a stream needs the meta
// leader, which may be in an election (4–9 s after a crash): transient
// errors are retried until ctx ends. A stream that exists with another
// configuration is an error, not something to overwrite.
func (e *Engine) EnsureStreams(ctx context.Context, shards int) error {
	for n := 0; n < shards; n++ {
		if err := e.ensureStream(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) ensureStream(ctx context.Context, shard int) error {
	cfg := e.streamConfig(shard)
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := e.js.CreateStream(actx, cfg)
		cancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, jetstream.ErrStreamNameAlreadyInUse):
			return e.checkStream(ctx, cfg)
		}
		e.log.Debug("create shard stream, retrying", "stream", cfg.Name, "error", err)
		if perr := pause(ctx); perr != nil {
			return fmt.Errorf("jetstream: create stream %s: %w (last error: %v)", cfg.Name, perr, err)
		}
	}
}

// checkStream explains how an existing stream differs from what tock
// needs; nats-server reports "name already in use" only then.
func (e *Engine) checkStream(ctx context.Context, want jetstream.StreamConfig) error {
	s, err := e.js.Stream(ctx, want.Name)
	if err != nil {
		return fmt.Errorf("jetstream: stream %s exists with another configuration (and cannot be read: %v)", want.Name, err)
	}
	got := s.CachedInfo().Config
	var diffs []string
	add := func(field string, g, w any) {
		if fmt.Sprint(g) != fmt.Sprint(w) {
			diffs = append(diffs, fmt.Sprintf("%s is %v, tock needs %v", field, g, w))
		}
	}
	add("subjects", got.Subjects, want.Subjects)
	add("replicas", got.Replicas, want.Replicas)
	add("storage", got.Storage, want.Storage)
	add("discard", got.Discard, want.Discard)
	add("max_msgs", got.MaxMsgs, want.MaxMsgs)
	add("max_bytes", got.MaxBytes, want.MaxBytes)
	add("max_age", got.MaxAge, want.MaxAge)
	add("deny_delete", got.DenyDelete, want.DenyDelete)
	add("allow_direct", got.AllowDirect, want.AllowDirect)
	add("deny_purge", got.DenyPurge, false)
	if len(diffs) == 0 {
		return nil // only cosmetic fields differ (description, duplicates)
	}
	return fmt.Errorf("jetstream: stream %s exists with another configuration: %v", want.Name, diffs)
}
