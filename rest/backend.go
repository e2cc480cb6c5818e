package rest

import (
	"context"
	"errors"
	"strings"

	"github.com/tockd/tock/store"
)

// Identity is what an authenticated request may touch: the token's name
// and namespace, a byte prefix of job and rule ids ("*" = everything).
type Identity struct {
	Name      string
	Namespace string
}

// Allows reports whether id is inside the namespace: the line protocol's
// rule (docs/protocol.md, AUTH).
func (i Identity) Allows(id string) bool {
	return i.Namespace == "*" || strings.HasPrefix(id, i.Namespace)
}

// all is the identity of every request when auth is off.
var all = Identity{Namespace: "*"}

// Errors a Backend returns; anything else is answered 503.
var (
	// ErrNotFound: no such job or rule (404).
	ErrNotFound = errors.New("not found")
	// ErrBadSecret: the bearer token is not in the auth file (401).
	ErrBadSecret = errors.New("invalid secret")
)

// Job is one job as GET /jobs/{id} shows it.
type Job struct {
	ID        string
	Execution int64
	Status    store.Status
	Shard     int
	// Rule is the id of the rule whose pattern matches the id now ("" =
	// none).
	Rule string
	// Outcome of the last execution, nil before the first one.
	Outcome *store.Outcome
}

// ListQuery selects one page of GET /jobs: ids starting with Prefix and
// greater than After, in id order, at most Limit, with a status in
// Statuses (a bit per store.Status, 0 = any).
type ListQuery struct {
	Prefix   string
	After    string
	Limit    int
	Statuses uint8
}

// Backend is what the REST API runs on: the master.
type Backend interface {
	// AuthEnabled reports whether an auth file is configured.
	AuthEnabled() bool
	// Authenticate finds the token of secret (constant time); ErrBadSecret
	// when there is none.
	Authenticate(secret string) (Identity, error)
	// GetJob reads a job and its last outcome.
	GetJob(ctx context.Context, id string) (Job, error)
	// SetJob plans job id at execution (ns since the epoch); it returns
	// once the change is durable, with the job's shard.
	SetJob(ctx context.Context, id string, execution int64) (shard int, err error)
	// RemoveJob deletes a job once durably.
	RemoveJob(ctx context.Context, id string) error
	// ListJobs returns one page in id order and whether more jobs follow.
	ListJobs(ctx context.Context, q ListQuery) (jobs []store.Job, more bool, err error)
	// MatchRule is the id of the rule whose pattern matches job id now.
	MatchRule(id string) (string, bool)
	// Rule reads one rule.
	Rule(id string) (store.Rule, bool)
	// Rules lists the rules whose id starts with prefix, sorted by id.
	Rules(prefix string) []store.Rule
	// SetRule creates or replaces a rule: durable and applied by every
	// booted worker on return (RULE SET's guarantee).
	SetRule(ctx context.Context, r store.Rule) error
	// RemoveRule deletes a rule with the same guarantee.
	RemoveRule(ctx context.Context, id string) error
}
