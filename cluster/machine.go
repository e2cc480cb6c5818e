package cluster

import (
	"errors"
	"time"
)

// Config is one host's part in the cluster.
type Config struct {
	// Host is this host's name, unique in the cluster; Addr is where other
	// hosts forward its shards' requests.
	Host, Addr string
	// Shards is the cluster's shard count.
	Shards int
	// TTL is the lease time-to-live (the buckets' TTL).
	TTL time.Duration
	// Margin is taken off a lease's lifetime for the local deadline: past
	// lastRenewalSent + TTL − Margin this host stops serving the shard.
	// Default 500 ms (at most TTL/4).
	Margin time.Duration
	// ContendDelay is how long a host waits before taking a lease that
	// expired while the bucket had trouble, so that its previous owner
	// gets it back first. Default 1 s.
	ContendDelay time.Duration
	// JoinDelay is how long after its watches are in sync a host waits
	// before taking free shards, so that hosts started together see each
	// other and split the shards at once rather than by rebalancing.
	// Default TTL/3.
	JoinDelay time.Duration
	// Member is this host's entry in the hosts bucket.
	Member Member
}

func (c *Config) defaults() {
	if c.Margin == 0 {
		c.Margin = min(500*time.Millisecond, c.TTL/4)
	}
	if c.ContendDelay == 0 {
		c.ContendDelay = time.Second
	}
	if c.JoinDelay == 0 {
		c.JoinDelay = c.TTL / 3
	}
	c.Member.Host, c.Member.Addr = c.Host, c.Addr
}

// ActionKind is what an Action asks for.
type ActionKind uint8

const (
	// ActCreate, ActUpdate, ActDelete and ActGet are requests to the
	// owners bucket; their answer comes back as a Result with the same ID.
	ActCreate ActionKind = iota + 1
	ActUpdate
	ActDelete
	ActGet
	// ActMemberPut and ActMemberDelete write this host's member entry.
	ActMemberPut
	ActMemberDelete
	// ActOpen: the lease is held; open Shard at an epoch of at least
	// Epoch and answer Opened with the epoch used.
	ActOpen
	// ActClose: stop serving Shard now (Why says why) and answer Closed.
	ActClose
	// ActRoute: the owner other hosts see for a shard changed.
	ActRoute
)

var actionNames = [...]string{"", "create", "update", "delete", "get", "member-put", "member-delete", "open", "close", "route"}

func (k ActionKind) String() string {
	if int(k) < len(actionNames) {
		return actionNames[k]
	}
	return "?"
}

// Action is one thing the machine wants done.
type Action struct {
	Kind ActionKind
	// ID matches a KV request's Result.
	ID    uint64
	Shard int
	Key   string
	Value []byte
	Rev   uint64
	Epoch uint64
	Why   string
	Route Route
}

// Result answers a KV Action.
type Result struct {
	ID    uint64
	Rev   uint64
	Entry Entry // ActGet
	Err   error
}

// Route is a shard's owner as every host sees it in the owners bucket.
type Route struct {
	Shard int
	// Host "" = no owner known (the lease is absent).
	Host, Addr string
	Epoch      uint64
}

// shardState is where this host is with one shard's lease.
type shardState uint8

const (
	// stFree: this host neither holds nor wants the lease.
	stFree shardState = iota
	// stAcquiring: a Create is in flight.
	stAcquiring
	// stOpening: the lease is held; the master opens the shard.
	stOpening
	// stServing: the lease is held and the shard is open.
	stServing
	// stLapsed: the local deadline passed before a renewal succeeded; the
	// shard is closed, renewals go on, and one that succeeds reopens it.
	stLapsed
	// stReleasing: handing the shard over (rebalancing, shutdown, a
	// failed open, a fence): the master closes it, then the lease is deleted.
	stReleasing
	// stDeleting: the Delete is in flight.
	stDeleting
)

var stateNames = [...]string{"free", "acquiring", "opening", "serving", "lapsed", "releasing", "deleting"}

func (s shardState) String() string { return stateNames[s] }

// held: the state counts as one of this host's shards for balancing.
func (s shardState) held() bool {
	return s == stAcquiring || s == stOpening || s == stServing || s == stLapsed
}

// renewing: the lease is (or may be) held and must be renewed.
func (s shardState) renewing() bool {
	return s == stOpening || s == stServing || s == stLapsed || s == stReleasing
}

// opKind is what a shard's KV request in flight is for.
type opKind uint8

const (
	opNone opKind = iota
	opCreate
	opUpdate
	opDelete
	opGetAfterCreate
	opGetAfterUpdate
	// opPoll reads another host's lease whose renewals the watch has not
	// shown for longer than the TTL (a stalled watch).
	opPoll
)

// pollEvery bounds how often a lease that looks stale is read.
const pollEvery = 500 * time.Millisecond

type shard struct {
	n  int
	st shardState
	// rev and epoch are this host's lease (while it holds one).
	rev   uint64
	epoch uint64
	// sentEpoch is the epoch in the value of the last write.
	sentEpoch uint64
	// renewed is the send time of the last write known to have landed:
	// the lease lives at least until renewed + TTL.
	renewed time.Time
	since   time.Time // when st was entered
	// The KV request in flight (at most one per shard).
	op      opKind
	opID    uint64
	opSent  time.Time
	lastTry time.Time
	// closed: the master has closed the shard (stReleasing waits for it).
	closed bool
	// backoff: do not acquire before this (after a failed open or a fence).
	backoff time.Time

	// The watched view of the lease.
	seen      *LeaseValue
	seenRev   uint64
	seenAt    time.Time // when the watch (or a poll) last showed a write
	freeSince time.Time
	expired   bool   // it became free by expiry, not a planned delete
	prevHost  string // the last owner seen
	maxEpoch  uint64 // the highest epoch seen in its lease
	routed    Route
}

// Machine is one host's lease state machine. It is not safe for
// concurrent use; every method takes the current (monotonic) time and
// returns what to do.
type Machine struct {
	cfg    Config
	start  time.Time
	shards []shard
	nextID uint64

	members       map[string]Member
	memberAt      map[string]time.Time // when each member entry was last seen
	gone          map[string]time.Time // members expired in an outage (liveHosts)
	now           time.Time            // the time of the input being handled
	memberOp      uint64
	memberSent    time.Time
	memberPutAt   time.Time
	memberDeleted bool

	leasesSynced, membersSynced bool
	leasesResync, membersResync map[string]bool // keys confirmed since a watch restart
	syncedAt                    time.Time
	kvTrouble                   time.Time // last ambiguous KV answer
	stopping                    bool
	out                         []Action
	trans                       []Transition
}

// NewMachine makes the machine of a host that owns nothing yet.
func NewMachine(cfg Config, now time.Time) *Machine {
	cfg.defaults()
	m := &Machine{cfg: cfg, start: now, shards: make([]shard, cfg.Shards), members: map[string]Member{}, memberAt: map[string]time.Time{}, gone: map[string]time.Time{}, now: now}
	for i := range m.shards {
		m.shards[i] = shard{n: i, since: now, freeSince: now}
		m.shards[i].routed = Route{Shard: i}
	}
	return m
}

func (m *Machine) emit(a Action) { m.out = append(m.out, a) }

func (m *Machine) flush() []Action {
	out := m.out
	m.out = nil
	return out
}

func (m *Machine) kv(kind ActionKind, sh *shard, op opKind, now time.Time, value []byte, rev uint64) {
	m.nextID++
	sh.op, sh.opID, sh.opSent, sh.lastTry = op, m.nextID, now, now
	m.emit(Action{Kind: kind, ID: m.nextID, Shard: sh.n, Key: ShardKey(sh.n), Value: value, Rev: rev})
}

func (m *Machine) value(epoch uint64) []byte {
	return LeaseValue{Host: m.cfg.Host, Epoch: epoch, Addr: m.cfg.Addr}.Encode()
}

// Transition is one shard's change of state, for the log.
type Transition struct {
	Shard    int
	From, To string
}

// set moves a shard to st: the one place a shard's state changes. The
// Manager logs each (TakeTransitions).
func (m *Machine) set(sh *shard, st shardState, now time.Time) {
	if sh.st != st {
		m.trans = append(m.trans, Transition{Shard: sh.n, From: sh.st.String(), To: st.String()})
		sh.st, sh.since = st, now
	}
}

// TakeTransitions returns the transitions since the last call.
func (m *Machine) TakeTransitions() []Transition {
	t := m.trans
	m.trans = nil
	return t
}

// hint is the epoch to open a shard at: above every epoch seen for it.
func (sh *shard) hint() uint64 { return max(sh.maxEpoch, sh.epoch) + 1 }

// lose closes a shard this host serves (or opens) and forgets the lease.
func (m *Machine) lose(sh *shard, now time.Time, why string) {
	// A releasing shard had its Close sent already, a lapsed one is closed.
	if sh.st == stOpening || sh.st == stServing {
		m.emit(Action{Kind: ActClose, Shard: sh.n, Why: why})
	}
	sh.op, sh.opID = opNone, 0
	sh.rev, sh.closed = 0, false
	m.set(sh, stFree, now)
}

// release starts a planned hand-over: close, then delete the lease.
func (m *Machine) release(sh *shard, now time.Time, why string) {
	switch sh.st {
	case stOpening, stServing:
		m.emit(Action{Kind: ActClose, Shard: sh.n, Why: why})
		sh.closed = false
	case stLapsed:
		sh.closed = true // closed when it lapsed
	default:
		return
	}
	m.set(sh, stReleasing, now)
	m.maybeDelete(sh, now)
}

func (m *Machine) maybeDelete(sh *shard, now time.Time) {
	if sh.st == stReleasing && sh.closed && sh.op == opNone {
		m.set(sh, stDeleting, now)
		m.kv(ActDelete, sh, opDelete, now, nil, sh.rev)
	}
}

// Tick advances time: local deadlines, renewals, membership, balancing.
func (m *Machine) Tick(now time.Time) []Action {
	m.now = now
	ttl := m.cfg.TTL
	for i := range m.shards {
		sh := &m.shards[i]
		if (sh.st == stOpening || sh.st == stServing) && now.After(sh.renewed.Add(ttl-m.cfg.Margin)) {
			m.emit(Action{Kind: ActClose, Shard: sh.n, Why: "lease deadline passed before a renewal succeeded"})
			m.set(sh, stLapsed, now)
		}
		if sh.st == stLapsed && now.After(sh.renewed.Add(ttl+m.cfg.ContendDelay)) {
			// Surely expired in the bucket by now: stop renewing; its
			// expiry (or its absence after a watch restart) makes it
			// free, and this host, its previous owner, takes it first.
			sh.prevHost = m.cfg.Host
			m.lose(sh, now, "lease expired")
			continue
		}
		if sh.st.renewing() && sh.op == opNone {
			due := sh.renewed.Add(ttl / 3)
			if sh.lastTry.After(sh.renewed) {
				due = sh.lastTry.Add(ttl / 10) // retrying after a failure
			}
			if sh.epoch != sh.sentEpoch && sh.st == stServing {
				due = now // the route must show the epoch opened at
			}
			if !now.Before(due) {
				sh.sentEpoch = sh.epoch
				m.kv(ActUpdate, sh, opUpdate, now, m.value(sh.epoch), sh.rev)
			}
		}
		m.maybeDelete(sh, now)
		// A lease is renewed every TTL/3, and each renewal comes through
		// the watch. None for longer than the TTL: the lease has expired,
		// or the watch is stalled (it is re-created through NATS's meta
		// leader, which may be electing for seconds) and would show the
		// expiry late. Look. (This host's own lease it no longer holds
		// too: it lost it in an outage and must see it free to take it
		// back.)
		if sh.st == stFree && sh.op == opNone && sh.seen != nil &&
			now.Sub(sh.seenAt) > ttl+pollEvery && now.Sub(sh.lastTry) >= pollEvery {
			m.kv(ActGet, sh, opPoll, now, nil, 0)
		}
	}
	m.tickMember(now)
	m.balance(now)
	m.routes()
	return m.flush()
}

func (m *Machine) tickMember(now time.Time) {
	if m.memberOp != 0 {
		return
	}
	if m.stopping {
		// The member entry goes first: the others' target rises at once,
		// so they take each shard as soon as its lease is deleted.
		if !m.memberDeleted {
			m.nextID++
			m.memberOp, m.memberSent = m.nextID, now
			m.emit(Action{Kind: ActMemberDelete, ID: m.nextID, Key: m.cfg.Host})
		}
		return
	}
	if m.memberPutAt.IsZero() || now.Sub(m.memberPutAt) >= m.cfg.TTL/3 {
		m.nextID++
		m.memberOp, m.memberSent, m.memberPutAt = m.nextID, now, now
		m.emit(Action{Kind: ActMemberPut, ID: m.nextID, Key: m.cfg.Host, Value: m.cfg.Member.Encode()})
	}
}

// quiet: no shard is held or being released.
func (m *Machine) quiet() bool {
	for i := range m.shards {
		if m.shards[i].st != stFree {
			return false
		}
	}
	return true
}

// Result feeds the answer to a KV action.
func (m *Machine) Result(now time.Time, r Result) []Action {
	m.now = now
	if r.ID != 0 && r.ID == m.memberOp {
		m.memberOp = 0
		if r.Err != nil && !errors.Is(r.Err, ErrNotFound) {
			m.kvTrouble = now
			m.memberPutAt = time.Time{} // try again at the next tick
		} else if m.stopping {
			m.memberDeleted = true
		}
		return m.flush()
	}
	var sh *shard
	for i := range m.shards {
		if m.shards[i].opID == r.ID && r.ID != 0 {
			sh = &m.shards[i]
		}
	}
	if sh == nil {
		return m.flush() // an answer for a request given up on
	}
	op, sent := sh.op, sh.opSent
	sh.op, sh.opID = opNone, 0
	ambiguous := r.Err != nil && !errors.Is(r.Err, ErrConflict) && !errors.Is(r.Err, ErrNotFound)
	if ambiguous {
		m.kvTrouble = now
	}
	switch op {
	case opCreate:
		switch {
		case r.Err == nil:
			m.acquired(sh, now, r.Rev, sent)
		case ambiguous:
			// It may have landed: look before deciding.
			m.kv(ActGet, sh, opGetAfterCreate, now, nil, 0)
			sh.opSent = sent
		default:
			m.set(sh, stFree, now)
			// An adoption (an update at the revision seen) that lost: the
			// view is stale; read the key before trying again.
			if sh.seen != nil && sh.seen.Host == m.cfg.Host {
				sh.seenAt = time.Time{}
			}
		}
	case opGetAfterCreate:
		v, err := DecodeLease(r.Entry.Value)
		if r.Err == nil && err == nil && v.Host == m.cfg.Host && v.Epoch == sh.sentEpoch {
			m.acquired(sh, now, r.Entry.Revision, sent)
			return m.flush()
		}
		m.set(sh, stFree, now)
	case opUpdate:
		switch {
		case r.Err == nil:
			sh.rev, sh.renewed = r.Rev, sent
			if sh.st == stLapsed {
				m.set(sh, stOpening, now)
				m.emit(Action{Kind: ActOpen, Shard: sh.n, Epoch: sh.hint()})
			}
		case errors.Is(r.Err, ErrConflict):
			// Someone else's revision, or this host's own earlier update
			// that timed out but landed: look.
			m.kv(ActGet, sh, opGetAfterUpdate, now, nil, 0)
		}
		// Ambiguous: retried from Tick; a landed one shows as a conflict.
	case opGetAfterUpdate:
		v, err := DecodeLease(r.Entry.Value)
		switch {
		case r.Err == nil && err == nil && v.Host == m.cfg.Host && v.Epoch == sh.sentEpoch:
			// Ours landed after all: renew on its revision at once (the
			// deadline stays that of the last renewal known to be sent
			// and landed).
			sh.rev = r.Entry.Revision
			m.kv(ActUpdate, sh, opUpdate, now, m.value(sh.epoch), sh.rev)
		case r.Err == nil || errors.Is(r.Err, ErrNotFound):
			sh.prevHost = m.cfg.Host
			if r.Err == nil && err == nil {
				sh.prevHost = v.Host
			}
			m.lose(sh, now, "lease lost: its revision changed")
		default:
			m.kvTrouble = now // could not look; renewal retries
		}
	case opDelete:
		sh.rev = 0
		m.set(sh, stFree, now)
	case opPoll:
		switch {
		case r.Err == nil && r.Entry.Revision > sh.seenRev:
			return m.Seen(now, Owners, r.Entry)
		case r.Err == nil:
			sh.seenAt = now // the same write: the watch's view holds
			m.adopt(sh, now)
		case errors.Is(r.Err, ErrNotFound) && sh.seen != nil:
			m.leaseGone(sh, now, OpExpire)
			m.routes()
		}
	}
	m.maybeDelete(sh, now)
	return m.flush()
}

func (m *Machine) acquired(sh *shard, now time.Time, rev uint64, sent time.Time) {
	sh.rev, sh.renewed, sh.epoch = rev, sent, sh.sentEpoch
	sh.lastTry = sent
	if m.stopping {
		sh.closed = true
		m.set(sh, stReleasing, now)
		m.maybeDelete(sh, now)
		return
	}
	m.set(sh, stOpening, now)
	m.emit(Action{Kind: ActOpen, Shard: sh.n, Epoch: sh.epoch})
}

// Opened answers ActOpen: the shard is open at epoch (err nil), or could
// not be opened.
func (m *Machine) Opened(now time.Time, n int, epoch uint64, err error) []Action {
	if n < 0 || n >= len(m.shards) {
		return nil
	}
	sh := &m.shards[n]
	if sh.st != stOpening {
		return m.flush() // given up meanwhile; its Close follows the Open
	}
	if err != nil {
		sh.backoff = now.Add(2 * m.cfg.TTL)
		sh.closed = true
		m.set(sh, stReleasing, now)
		m.maybeDelete(sh, now)
		return m.flush()
	}
	sh.epoch = max(sh.epoch, epoch)
	sh.maxEpoch = max(sh.maxEpoch, sh.epoch)
	m.set(sh, stServing, now)
	return m.Tick(now)
}

// Reopened: a shard this host serves was opened again at epoch (its
// worker was replaced); the next renewal carries it.
func (m *Machine) Reopened(now time.Time, n int, epoch uint64) []Action {
	if n < 0 || n >= len(m.shards) {
		return nil
	}
	sh := &m.shards[n]
	if sh.st == stServing && epoch > sh.epoch {
		sh.epoch = epoch
		sh.maxEpoch = max(sh.maxEpoch, epoch)
	}
	return m.Tick(now)
}

// Closed answers ActClose.
func (m *Machine) Closed(now time.Time, n int) []Action {
	if n < 0 || n >= len(m.shards) {
		return nil
	}
	sh := &m.shards[n]
	if sh.st == stReleasing {
		sh.closed = true
		m.maybeDelete(sh, now)
	}
	return m.flush()
}

// Fenced reports that the shard's stream refused this host's write:
// another host opened it. Stop serving it and drop the lease.
func (m *Machine) Fenced(now time.Time, n int) []Action {
	if n < 0 || n >= len(m.shards) {
		return nil
	}
	sh := &m.shards[n]
	sh.backoff = now.Add(m.cfg.TTL)
	switch sh.st {
	case stOpening, stServing, stLapsed:
		m.release(sh, now, "fenced: another host opened the shard")
	}
	return m.flush()
}

// Stop releases every lease (a graceful shutdown): the member entry is
// deleted, shards are closed and their leases deleted. Done reports the end.
func (m *Machine) Stop(now time.Time) []Action {
	m.stopping = true
	for i := range m.shards {
		m.release(&m.shards[i], now, "shutting down")
	}
	return m.Tick(now)
}

// Done: after Stop, every lease and the member entry are gone.
func (m *Machine) Done() bool { return m.stopping && m.quiet() && m.memberOp == 0 && m.memberDeleted }
