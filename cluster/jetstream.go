package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// limitMarkerTTL is how long an expiry marker stays in a bucket: long
// enough for every watcher to see it.
const limitMarkerTTL = time.Second

// bucketAttempt bounds one attempt at creating or updating a bucket.
const bucketAttempt = time.Second

// Buckets are the cluster's three key-value buckets.
type Buckets struct {
	Owners, Hosts, Rules KV
}

// OpenBuckets creates (or updates to this configuration) the owners, hosts
// and rules buckets of cluster. It retries until ctx ends while JetStream
// has no meta leader (a NATS server restarting).
func OpenBuckets(ctx context.Context, js jetstream.JetStream, cluster string, replicas int, ttl time.Duration) (Buckets, error) {
	cfgs := []jetstream.KeyValueConfig{
		{Bucket: OwnersBucket(cluster), Description: "tock shard leases", Replicas: replicas, TTL: ttl, LimitMarkerTTL: limitMarkerTTL, History: 1, Storage: jetstream.FileStorage},
		{Bucket: HostsBucket(cluster), Description: "tock live hosts", Replicas: replicas, TTL: ttl, LimitMarkerTTL: limitMarkerTTL, History: 1, Storage: jetstream.FileStorage},
		{Bucket: RulesBucket(cluster), Description: "tock rules", Replicas: replicas, History: 5, Storage: jetstream.FileStorage},
	}
	var kvs [3]KV
	for i, c := range cfgs {
		for {
			// Each attempt is bounded: when hosts start together, the
			// server may leave all but one of their concurrent creations
			// of a new bucket unanswered; the retry finds it created.
			actx, cancel := context.WithTimeout(ctx, bucketAttempt)
			kv, err := js.CreateOrUpdateKeyValue(actx, c)
			cancel()
			if err == nil {
				kvs[i] = &jsKV{kv: kv}
				break
			}
			if ctx.Err() != nil {
				return Buckets{}, fmt.Errorf("create bucket %s: %w", c.Bucket, err)
			}
			select {
			case <-ctx.Done():
				return Buckets{}, fmt.Errorf("create bucket %s: %w", c.Bucket, err)
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
	return Buckets{Owners: kvs[0], Hosts: kvs[1], Rules: kvs[2]}, nil
}

// jsKV is a JetStream key-value bucket as a KV.
type jsKV struct{ kv jetstream.KeyValue }

// NewJetStreamKV wraps a bucket (tests use it on buckets of their own).
func NewJetStreamKV(kv jetstream.KeyValue) KV { return &jsKV{kv: kv} }

func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	var api *jetstream.APIError
	if errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}

func (k *jsKV) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := k.kv.Create(ctx, key, value)
	return rev, mapErr(err)
}

func (k *jsKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	r, err := k.kv.Update(ctx, key, value, rev)
	return r, mapErr(err)
}

func (k *jsKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	r, err := k.kv.Put(ctx, key, value)
	return r, mapErr(err)
}

func (k *jsKV) Delete(ctx context.Context, key string, rev uint64) error {
	var opts []jetstream.KVDeleteOpt
	if rev != 0 {
		opts = append(opts, jetstream.LastRevision(rev))
	}
	return mapErr(k.kv.Delete(ctx, key, opts...))
}

func (k *jsKV) Get(ctx context.Context, key string) (Entry, error) {
	e, err := k.kv.Get(ctx, key)
	if err != nil {
		return Entry{}, mapErr(err)
	}
	return entryOf(e), nil
}

func entryOf(e jetstream.KeyValueEntry) Entry {
	out := Entry{Key: e.Key(), Value: e.Value(), Revision: e.Revision(), Created: e.Created()}
	switch e.Operation() {
	case jetstream.KeyValueDelete:
		out.Op = OpDelete
	case jetstream.KeyValuePurge:
		out.Op = OpExpire // an expiry marker (MaxAge) or a purge
	}
	return out
}

func (k *jsKV) Watch(ctx context.Context) (<-chan *Entry, error) {
	w, err := k.kv.WatchAll(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan *Entry, 64)
	go func() {
		defer close(out)
		// Stop's error says only that the subscription was gone already.
		defer w.Stop() //nolint:errcheck
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				var ent *Entry
				if e != nil {
					v := entryOf(e)
					ent = &v
				}
				select {
				case out <- ent:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}
