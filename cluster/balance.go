package cluster

import (
	"hash/fnv"
	"slices"
	"strconv"
	"time"
)

// Balancing: every host aims at ⌈shards / live hosts⌉. One below it
// creates leases of free shards; one above it releases its surplus one
// shard at a time, and only while another live host is below the target
// and no shard is free (a free shard is taken first).

// Target is the number of shards each host aims at.
func (m *Machine) Target() int {
	live := m.liveHosts()
	return (len(m.shards) + live - 1) / live
}

// liveHosts counts the members seen, this host included, and those whose
// entry expired in a bucket outage not long ago (see memberSeen).
func (m *Machine) liveHosts() int {
	n := 1 // this host
	for host := range m.members {
		if host != m.cfg.Host && m.memberFresh(host) {
			n++
		}
	}
	for host, at := range m.gone {
		if m.now.Sub(at) < m.cfg.TTL {
			n++
		} else {
			delete(m.gone, host)
		}
	}
	return n
}

// troubled: a KV request had an ambiguous answer within the last TTL.
func (m *Machine) troubled(now time.Time) bool {
	return !m.kvTrouble.IsZero() && now.Sub(m.kvTrouble) < m.cfg.TTL
}

func (m *Machine) heldCount() int {
	n := 0
	for i := range m.shards {
		if m.shards[i].st.held() {
			n++
		}
	}
	return n
}

func (m *Machine) balance(now time.Time) {
	if m.stopping || !m.leasesSynced || !m.membersSynced || now.Sub(m.syncedAt) < m.cfg.JoinDelay {
		return
	}
	target, held := m.Target(), m.heldCount()
	if held < target {
		for _, n := range m.candidates(now) {
			if held >= target {
				break
			}
			sh := &m.shards[n]
			sh.sentEpoch = sh.hint()
			m.set(sh, stAcquiring, now)
			m.kv(ActCreate, sh, opCreate, now, m.value(sh.sentEpoch), 0)
			held++
		}
		return
	}
	if held <= target || m.anyFree() || !m.someoneBelow(target) {
		return
	}
	for i := range m.shards {
		if m.shards[i].st == stReleasing || m.shards[i].st == stDeleting {
			return // one at a time
		}
	}
	// Release the shard this host prefers least.
	var pick *shard
	for i := range m.shards {
		sh := &m.shards[i]
		if sh.st == stServing && (pick == nil || m.score(sh.n) < m.score(pick.n)) {
			pick = sh
		}
	}
	if pick != nil {
		m.release(pick, now, "rebalancing: "+strconv.Itoa(held)+" shards, target "+strconv.Itoa(target))
	}
}

// candidates are the free shards this host may create a lease for now,
// best first: its own previous shards, then by its rendezvous score (so
// hosts starting together mostly try different shards).
func (m *Machine) candidates(now time.Time) []int {
	var out []int
	troubled := m.troubled(now)
	for i := range m.shards {
		sh := &m.shards[i]
		if sh.st != stFree || sh.op != opNone || sh.seen != nil || now.Before(sh.backoff) {
			continue
		}
		// After a bucket outage every lease expires at once; its previous
		// owner, if still alive, takes it back first. A lease that
		// expired while the bucket was fine belonged to a dead host:
		// anyone takes it at once.
		if sh.expired && troubled && sh.prevHost != m.cfg.Host && m.isMember(sh.prevHost) &&
			now.Sub(sh.freeSince) < m.cfg.ContendDelay {
			continue
		}
		out = append(out, sh.n)
	}
	slices.SortFunc(out, func(a, b int) int {
		pa, pb := m.shards[a].prevHost == m.cfg.Host, m.shards[b].prevHost == m.cfg.Host
		if pa != pb {
			if pa {
				return -1
			}
			return 1
		}
		sa, sb := m.score(a), m.score(b)
		switch {
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		}
		return a - b
	})
	return out
}

func (m *Machine) isMember(host string) bool {
	_, recent := m.gone[host]
	return m.memberFresh(host) || recent
}

// memberFresh: host's entry is in the bucket and its last renewal (every
// TTL/3) came through the watch within the TTL; an older one is a dead
// host's whose expiry a stalled watch has not shown yet.
func (m *Machine) memberFresh(host string) bool {
	if _, ok := m.members[host]; !ok {
		return false
	}
	return m.now.Sub(m.memberAt[host]) <= m.cfg.TTL+pollEvery
}

func (m *Machine) anyFree() bool {
	for i := range m.shards {
		if m.shards[i].seen == nil && m.shards[i].st == stFree {
			return true
		}
	}
	return false
}

// someoneBelow: a live host other than this one holds fewer than target.
func (m *Machine) someoneBelow(target int) bool {
	counts := map[string]int{}
	for i := range m.shards {
		if s := m.shards[i].seen; s != nil {
			counts[s.Host]++
		}
	}
	for host := range m.members {
		if host != m.cfg.Host && m.memberFresh(host) && counts[host] < target {
			return true
		}
	}
	return false
}

// score is this host's rendezvous weight for shard n.
func (m *Machine) score(n int) uint64 {
	h := fnv.New64a()
	h.Write([]byte(m.cfg.Host))
	h.Write([]byte{0, byte(n), byte(n >> 8)})
	return h.Sum64()
}
