package cluster

import (
	"context"
	"errors"
	"time"
)

// KV is what the lease manager needs of a key-value bucket. Every call is
// bounded by its context; an error that is neither ErrConflict nor
// ErrNotFound is ambiguous (the write may or may not have happened).
type KV interface {
	// Create writes key only if it is absent (never written, deleted or
	// expired); ErrConflict if it exists.
	Create(ctx context.Context, key string, value []byte) (uint64, error)
	// Update writes key only if its last revision is rev; ErrConflict if not.
	Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error)
	// Put writes key unconditionally.
	Put(ctx context.Context, key string, value []byte) (uint64, error)
	// Delete deletes key if its last revision is rev (0: whatever it is);
	// ErrConflict if not.
	Delete(ctx context.Context, key string, rev uint64) error
	// Get reads key's latest value; ErrNotFound when absent or deleted.
	Get(ctx context.Context, key string) (Entry, error)
	// Watch streams every key's current value, then nil (the initial
	// values are all delivered), then every change, deletions and
	// expiries included, until ctx ends or the watch breaks (the channel
	// is closed).
	Watch(ctx context.Context) (<-chan *Entry, error)
}

// Errors a KV returns.
var (
	// ErrConflict: the key exists (Create) or its revision is not the one
	// given (Update, Delete).
	ErrConflict = errors.New("revision conflict")
	// ErrNotFound: no such key.
	ErrNotFound = errors.New("key not found")
)

// Op is what a watched entry is.
type Op uint8

const (
	// OpPut is a value.
	OpPut Op = iota
	// OpDelete is a deletion (a planned release).
	OpDelete
	// OpExpire is an expiry (the key outlived the bucket's TTL) or a purge.
	OpExpire
)

func (o Op) String() string {
	switch o {
	case OpDelete:
		return "delete"
	case OpExpire:
		return "expire"
	}
	return "put"
}

// Entry is one revision of a key.
type Entry struct {
	Key      string
	Value    []byte
	Revision uint64
	Op       Op
	// Created is the server's (wall clock) time of the revision.
	Created time.Time
}
