package cluster

import (
	"slices"
	"strings"
	"time"
)

// ShardView is one shard this host holds or is moving, for monitoring.
type ShardView struct {
	Shard int    `json:"shard"`
	State string `json:"state"`
	// Epoch the shard is open at (or will be); Revision is the lease's.
	Epoch    uint64 `json:"epoch"`
	Revision uint64 `json:"revision"`
	// LeaseAge is the time since the last renewal known to have landed
	// was sent; DeadlineIn is the time left before this host must stop
	// serving the shard without a new one (negative: past it).
	LeaseAge   time.Duration `json:"lease_age_ns"`
	DeadlineIn time.Duration `json:"deadline_in_ns"`
}

// View is this host's picture of the cluster.
type View struct {
	Host   string `json:"host"`
	Target int    `json:"target"`
	// Synced: both watches have delivered the buckets' contents.
	Synced bool `json:"synced"`
	// Shards are the shards this host holds or is moving, by number.
	Shards []ShardView `json:"shards"`
	// Routes is every shard's owner as the owners bucket says.
	Routes []Route `json:"routes"`
	// Members are the live hosts, by name.
	Members []Member `json:"members"`
}

// View returns the machine's state for monitoring.
func (m *Machine) View(now time.Time) View {
	v := View{Host: m.cfg.Host, Target: m.Target(), Synced: m.leasesSynced && m.membersSynced}
	for i := range m.shards {
		sh := &m.shards[i]
		v.Routes = append(v.Routes, sh.routed)
		if sh.st == stFree {
			continue
		}
		sv := ShardView{Shard: sh.n, State: sh.st.String(), Epoch: max(sh.epoch, sh.sentEpoch), Revision: sh.rev}
		if !sh.renewed.IsZero() {
			sv.LeaseAge = now.Sub(sh.renewed)
			sv.DeadlineIn = sh.renewed.Add(m.cfg.TTL - m.cfg.Margin).Sub(now)
		}
		v.Shards = append(v.Shards, sv)
	}
	for _, mem := range m.members {
		v.Members = append(v.Members, mem)
	}
	slices.SortFunc(v.Members, func(a, b Member) int { return strings.Compare(a.Host, b.Host) })
	return v
}

// Serving lists the shards this host serves now (open and within their
// deadline), for readiness.
func (m *Machine) Serving() []int {
	var out []int
	for i := range m.shards {
		if m.shards[i].st == stServing {
			out = append(out, i)
		}
	}
	return out
}
