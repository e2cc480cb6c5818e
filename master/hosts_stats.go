package master

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/tockd/tock/httpapi"
	"github.com/tockd/tock/store/jslog"
)

// The host's view of the cluster, in /stats ("cluster"), /varz ("hosts"),
// /healthz ("cluster") and GET /hosts (tock ctl hosts); docs/scale-out.md,
// "Monitoring" says what each field means.

// ClusterStats is this host's view of the cluster.
type ClusterStats struct {
	// Host is this host's name (jetstream.host_name); Cluster the
	// cluster's (jetstream.cluster_name).
	Host    string `json:"host"`
	Cluster string `json:"cluster"`
	// LeaseTTLMs is jetstream.lease_ttl.
	LeaseTTLMs int64 `json:"lease_ttl_ms"`
	// Target is ⌈shards / live hosts⌉, the shards each host aims at.
	Target int `json:"target"`
	// Synced: the lease and member buckets' contents have been read.
	Synced bool `json:"synced"`
	// Owned are the shards this host holds a lease for (or is moving).
	Owned []OwnedShard `json:"owned"`
	// Hosts are the live hosts, this one included, with the shards each
	// holds according to the owners bucket.
	Hosts []HostStats `json:"hosts"`
	// Unowned are shards no host holds a lease for now.
	Unowned []int `json:"unowned"`
}

// OwnedShard is one shard this host holds a lease for.
type OwnedShard struct {
	Shard int `json:"shard"`
	// State is the lease's: acquiring, opening, serving, lapsed,
	// releasing or deleting.
	State string `json:"state"`
	// Served: a local worker has the shard open and gets its requests.
	Served bool `json:"served"`
	// Epoch the shard's stream was fenced at by this host.
	Epoch uint64 `json:"epoch"`
	// LeaseRevision is the lease key's revision this host last wrote.
	LeaseRevision uint64 `json:"lease_revision"`
	// LeaseAgeMs is the time since the last renewal that landed was sent;
	// DeadlineInMs the time left before this host stops serving the
	// shard without another one (lease_ttl − 500 ms after it).
	LeaseAgeMs   float64 `json:"lease_age_ms"`
	DeadlineInMs float64 `json:"deadline_in_ms"`
	// StreamSeq is the last sequence of the shard's stream (read every
	// 2 s; 0 until read).
	StreamSeq uint64 `json:"stream_seq"`
	// OpenedAt is when the shard was opened here.
	OpenedAt *time.Time `json:"opened_at,omitempty"`
}

// HostStats is one live host.
type HostStats struct {
	Host    string    `json:"host"`
	Self    bool      `json:"self"`
	Addr    string    `json:"addr"`
	Client  string    `json:"client,omitempty"`
	HTTP    string    `json:"http,omitempty"`
	Started time.Time `json:"started"`
	Shards  []int     `json:"shards"`
	// Link is this host's forwarding link to it: idle (not needed yet),
	// dialing, connected, backoff (broken, redialed soon) or closed; ""
	// for this host itself. LinkError is the link's last error.
	Link      string `json:"link"`
	LinkError string `json:"link_error,omitempty"`
}

// clusterStats is the host view; nil outside JetStream mode.
func (m *Master) clusterStats() *ClusterStats {
	h := m.hosts
	if h == nil || h.mgr == nil {
		return nil
	}
	v := h.mgr.View()
	cs := &ClusterStats{Host: v.Host, Cluster: h.eng.Config().Cluster, LeaseTTLMs: h.cfg.TTL.Milliseconds(),
		Target: v.Target, Synced: v.Synced, Owned: []OwnedShard{}, Hosts: []HostStats{}, Unowned: []int{}}
	h.mu.Lock()
	for _, s := range v.Shards {
		o := OwnedShard{Shard: s.Shard, State: s.State, Epoch: s.Epoch, LeaseRevision: s.Revision,
			LeaseAgeMs: ms(s.LeaseAge), DeadlineInMs: ms(s.DeadlineIn), StreamSeq: h.seqs[s.Shard]}
		if h.local[s.Shard] == localOpen {
			at := h.opened[s.Shard]
			o.OpenedAt = &at
			o.Epoch = h.epoch[s.Shard]
			o.Served = m.router.Served(s.Shard)
		}
		cs.Owned = append(cs.Owned, o)
	}
	h.mu.Unlock()
	byHost := map[string][]int{}
	for _, r := range v.Routes {
		if r.Host == "" {
			cs.Unowned = append(cs.Unowned, r.Shard)
			continue
		}
		byHost[r.Host] = append(byHost[r.Host], r.Shard)
	}
	seen := map[string]bool{}
	for _, mem := range v.Members {
		seen[mem.Host] = true
		cs.Hosts = append(cs.Hosts, HostStats{Host: mem.Host, Self: mem.Host == v.Host, Addr: mem.Addr, Client: mem.Client,
			HTTP: mem.HTTP, Started: mem.Started, Shards: nonNilInts(byHost[mem.Host])})
	}
	// A host holding leases without a member entry (it is going away).
	for host, shards := range byHost {
		if !seen[host] {
			cs.Hosts = append(cs.Hosts, HostStats{Host: host, Self: host == v.Host, Shards: shards})
		}
	}
	if m.peers != nil {
		links := map[string]PeerStatus{}
		for _, ps := range m.PeerStatuses() {
			links[ps.Host] = ps
		}
		for i := range cs.Hosts {
			if ps, ok := links[cs.Hosts[i].Host]; ok && !cs.Hosts[i].Self {
				cs.Hosts[i].Link, cs.Hosts[i].LinkError = ps.State, ps.LastError
			} else if !cs.Hosts[i].Self {
				cs.Hosts[i].Link = "idle"
			}
		}
	}
	slices.SortFunc(cs.Hosts, func(a, b HostStats) int {
		switch {
		case a.Host < b.Host:
			return -1
		case a.Host > b.Host:
			return 1
		}
		return 0
	})
	return cs
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func nonNilInts(s []int) []int {
	if s == nil {
		return []int{}
	}
	return s
}

// hostsHealthy is readiness in JetStream mode: the buckets are read and
// every shard this host holds a lease for is served by a local worker.
// Shards of other hosts do not count: they are theirs to serve.
func (m *Master) hostsHealthy() (bool, string) {
	h := m.hosts
	if h.mgr == nil {
		return false, "lease manager not started"
	}
	v := h.mgr.View()
	if !v.Synced {
		return false, "lease buckets not read yet"
	}
	for _, s := range v.Shards {
		switch s.State {
		case "acquiring", "releasing", "deleting":
			// Not this host's yet, or handed over: requests are held.
		case "serving":
			if !m.router.Served(s.Shard) {
				return false, "shard " + strconv.Itoa(s.Shard) + " is leased here but has no ready worker"
			}
		default:
			return false, "shard " + strconv.Itoa(s.Shard) + " is leased here and " + s.State
		}
	}
	return true, "ok"
}

// pollSeqs reads the last stream sequence of every shard open here every
// 2 s, for the host view.
func (h *hostLeases) pollSeqs() {
	defer h.wg.Done()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-h.quit:
			return
		case <-t.C:
		}
		h.mu.Lock()
		var open []int
		for n, st := range h.local {
			if st == localOpen {
				open = append(open, n)
			}
		}
		h.mu.Unlock()
		var wg sync.WaitGroup
		for _, n := range open {
			wg.Add(1)
			go func(n int) {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				s, err := h.eng.JetStream().Stream(ctx, jslog.StreamName(h.eng.Config().Cluster, n))
				if err != nil {
					return // shown as the last value read; the stream's trouble shows elsewhere
				}
				h.mu.Lock()
				h.seqs[n] = s.CachedInfo().State.LastSeq
				h.mu.Unlock()
			}(n)
		}
		wg.Wait()
	}
}

// HostsReply is GET /hosts on the control socket (tock ctl hosts).
type HostsReply struct {
	Cluster *ClusterStats `json:"cluster"`
}

func (m *Master) serveHosts(w http.ResponseWriter, r *http.Request) error {
	cs := m.clusterStats()
	if cs == nil {
		return &controlError{status: http.StatusConflict, msg: `not a cluster: database.persistence is not "jetstream"`}
	}
	httpapi.WriteJSON(w, http.StatusOK, HostsReply{Cluster: cs})
	return nil
}
