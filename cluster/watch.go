package cluster

import "time"

// Bucket names a watched bucket.
type Bucket uint8

const (
	// Owners is the lease bucket.
	Owners Bucket = iota
	// Hosts is the member bucket.
	Hosts
)

// WatchRestarted: the bucket's watch was (re)started; its current values
// follow, then WatchSynced. A key not delivered again by then is gone.
func (m *Machine) WatchRestarted(now time.Time, b Bucket) []Action {
	if b == Owners {
		m.leasesResync = map[string]bool{}
	} else {
		m.membersResync = map[string]bool{}
	}
	return m.flush()
}

// WatchSynced: every current value of the bucket has been delivered.
func (m *Machine) WatchSynced(now time.Time, b Bucket) []Action {
	if b == Owners {
		for i := range m.shards {
			sh := &m.shards[i]
			if sh.seen != nil && m.leasesResync != nil && !m.leasesResync[ShardKey(sh.n)] {
				m.leaseGone(sh, now, OpExpire)
			}
		}
		m.leasesResync, m.leasesSynced = nil, true
	} else {
		for host := range m.members {
			if m.membersResync != nil && !m.membersResync[host] {
				delete(m.members, host)
			}
		}
		m.membersResync, m.membersSynced = nil, true
	}
	if m.leasesSynced && m.membersSynced && m.syncedAt.IsZero() {
		m.syncedAt = now
	}
	return m.Tick(now)
}

// Seen feeds one watched entry of bucket b.
func (m *Machine) Seen(now time.Time, b Bucket, e Entry) []Action {
	m.now = now
	if b == Hosts {
		m.memberSeen(now, e)
		return m.flush()
	}
	n, ok := ParseShardKey(e.Key, len(m.shards))
	if !ok {
		return m.flush() // not a lease key: ignored
	}
	if m.leasesResync != nil {
		m.leasesResync[e.Key] = true
	}
	sh := &m.shards[n]
	if e.Revision <= sh.seenRev {
		return m.flush() // seen already (a restarted watch, a poll), or older
	}
	sh.seenRev = e.Revision
	if e.Op != OpPut {
		m.leaseGone(sh, now, e.Op)
		m.routes()
		return m.flush()
	}
	v, err := DecodeLease(e.Value)
	if err != nil {
		// Not a lease any host writes: treat the shard as held by
		// nobody known; it is not free either (its key exists).
		v = LeaseValue{Host: "?"}
	}
	sh.seen, sh.seenAt = &v, now
	sh.prevHost = v.Host
	sh.maxEpoch = max(sh.maxEpoch, v.Epoch)
	if v.Host != m.cfg.Host {
		switch sh.st {
		case stOpening, stServing, stLapsed, stReleasing:
			// Only possible once this host's lease expired: another
			// created it.
			m.lose(sh, now, "lease taken by "+v.Host)
		}
	} else {
		m.adopt(sh, now)
	}
	m.routes()
	return m.flush()
}

// adopt takes over a lease of this host's it does not know of: a Create
// that timed out but landed, or this host's previous run (a hot restart,
// or a crash before it could release). At its revision, so the shard
// stays here rather than moving, or waiting for the TTL. (A host name is
// one host: see docs/scale-out.md.)
func (m *Machine) adopt(sh *shard, now time.Time) {
	if sh.st != stFree || sh.op != opNone || m.stopping || sh.seen == nil || sh.seen.Host != m.cfg.Host {
		return
	}
	sh.sentEpoch = sh.hint()
	m.set(sh, stAcquiring, now)
	m.kv(ActUpdate, sh, opCreate, now, m.value(sh.sentEpoch), sh.seenRev)
}

// leaseGone: shard's key was deleted or expired.
func (m *Machine) leaseGone(sh *shard, now time.Time, op Op) {
	if sh.seen != nil {
		sh.prevHost = sh.seen.Host
	}
	sh.seen = nil
	sh.freeSince, sh.expired = now, op == OpExpire
	switch sh.st {
	case stOpening, stServing, stLapsed:
		m.lose(sh, now, "lease "+op.String()+"d")
	case stReleasing:
		// Its lease went first; close and forget.
		sh.op, sh.opID, sh.rev = opNone, 0, 0
		m.set(sh, stFree, now)
	}
}

func (m *Machine) memberSeen(now time.Time, e Entry) {
	if m.membersResync != nil {
		m.membersResync[e.Key] = true
	}
	if e.Op != OpPut {
		if _, ok := m.members[e.Key]; ok && e.Op == OpExpire && m.troubled(now) {
			// Every entry expires in a bucket outage: the host is likely
			// alive and puts its entry again once the bucket is back.
			m.gone[e.Key] = now
		}
		delete(m.members, e.Key)
		delete(m.memberAt, e.Key)
		return
	}
	delete(m.gone, e.Key)
	mem, err := DecodeMember(e.Value)
	if err != nil {
		return
	}
	m.members[e.Key] = mem
	m.memberAt[e.Key] = now
}

// routes emits an ActRoute for every shard whose watched owner changed.
func (m *Machine) routes() {
	for i := range m.shards {
		sh := &m.shards[i]
		r := Route{Shard: sh.n}
		if sh.seen != nil {
			r.Host, r.Addr, r.Epoch = sh.seen.Host, sh.seen.Addr, sh.seen.Epoch
		}
		if r != sh.routed {
			sh.routed = r
			m.emit(Action{Kind: ActRoute, Shard: sh.n, Route: r})
		}
	}
}
