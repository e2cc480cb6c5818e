package master

import (
	"maps"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/tockd/tock/ipc"
)

// Stats is the cluster stats tree (docs/stats.md), Puma's cluster shape plus
// tock's fields. It is built from the master's own view and each worker's
// latest heartbeat, so building it never waits on a worker.
type Stats struct {
	// StartedAt is when the master started.
	StartedAt time.Time `json:"started_at"`
	// Version of the master binary.
	Version string `json:"version"`
	// PID of the master.
	PID int `json:"pid"`
	// Workers counts the worker processes the master tracks, booting and
	// draining ones included.
	Workers int `json:"workers"`
	// Phase is the restart generation; each phased restart adds one.
	Phase int `json:"phase"`
	// BootedWorkers are those that reported ready.
	BootedWorkers int `json:"booted_workers"`
	// OldWorkers are those whose phase differs from Phase (0 = rollout done).
	OldWorkers int `json:"old_workers"`
	// Shards is the number of shards of the data dir.
	Shards int `json:"shards"`
	// Connections is the number of open client connections.
	Connections int64 `json:"connections"`
	// RequestsCount is the number of client requests read.
	RequestsCount int64 `json:"requests_count"`
	// HeldRequests are requests waiting for a shard in handoff or recovery.
	HeldRequests int `json:"held_requests"`
	// PhasedRestart is the restart in progress or the last one's error.
	PhasedRestart PhasedRestartStats `json:"phased_restart"`
	// WorkerStatus has one entry per worker slot, by index, then draining
	// old workers.
	WorkerStatus []WorkerStats `json:"worker_status"`
	// Cluster is this host's view of the cluster (persistence =
	// "jetstream" only; docs/scale-out.md, "Monitoring").
	Cluster *ClusterStats `json:"cluster,omitempty"`
}

// PhasedRestartStats describes the phased restart (or scaling) in progress.
type PhasedRestartStats struct {
	InProgress bool       `json:"in_progress"`
	StartedAt  *time.Time `json:"started_at"`
	LastError  *string    `json:"last_error"`
}

// WorkerStats is one worker process.
type WorkerStats struct {
	StartedAt time.Time `json:"started_at"`
	PID       int       `json:"pid"`
	Index     int       `json:"index"`
	Phase     int       `json:"phase"`
	Booted    bool      `json:"booted"`
	// Draining is set on an old worker finishing its executions.
	Draining bool `json:"draining"`
	// LastCheckin is the time of the latest heartbeat.
	LastCheckin time.Time `json:"last_checkin"`
	// Restarts counts replacements of the process at this index after
	// crashes and hangs (not phased restarts).
	Restarts int `json:"restarts"`
	// Shards are the shards this worker owns.
	Shards []int `json:"shards"`
	// LastStatus is the worker's latest heartbeat.
	LastStatus ipc.Status `json:"last_status"`
}

// Stats builds the stats tree.
func (m *Master) Stats() Stats {
	cluster := m.clusterStats() // before m.mu: it reads the router
	m.mu.Lock()
	st := Stats{
		StartedAt: m.started.UTC(), Version: Version, PID: os.Getpid(), Phase: m.phase,
		Shards: m.cfg.Cluster.Shards, Connections: m.connections.Load(), RequestsCount: m.requests.Load(),
		PhasedRestart: PhasedRestartStats{InProgress: m.restart.inProgress},
		Cluster:       cluster,
	}

	if !m.restart.startedAt.IsZero() {
		t := m.restart.startedAt.UTC()
		st.PhasedRestart.StartedAt = &t
	}
	if m.restart.lastError != "" {
		e := m.restart.lastError
		st.PhasedRestart.LastError = &e
	}
	var procs []*proc
	restarts := map[*proc]int{}
	for _, s := range m.slots {
		if s.cur != nil {
			procs = append(procs, s.cur)
			restarts[s.cur] = s.restarts
		}
	}
	for _, s := range m.slots {
		for _, p := range s.old {
			procs = append(procs, p)
			restarts[p] = s.restarts
		}
	}
	// Then the processes no slot holds: booting ones, and those a scale
	// down removed that still finish their executions.
	for _, p := range m.allProcsLocked() {
		if !slices.Contains(procs, p) {
			procs = append(procs, p)
			if p.index < len(m.slots) {
				restarts[p] = m.slots[p.index].restarts
			}
		}
	}
	phase := m.phase
	m.mu.Unlock()
	for _, p := range procs {
		ws := p.stats(restarts[p])
		if ws.LastStatus.MaxThreads == 0 {
			// No heartbeat yet (booting): its whole pool is free, so Puma's
			// readers compute a load of 0, not 0/0.
			ls := &ws.LastStatus
			ls.MaxThreads, ls.PoolCapacity = int64(m.cfg.Execution.MaxInflight), int64(m.cfg.Execution.MaxInflight)
		}
		st.Workers++
		if ws.Booted {
			st.BootedWorkers++
		}
		if ws.Phase != phase {
			st.OldWorkers++
		}
		st.WorkerStatus = append(st.WorkerStatus, ws)
	}
	st.HeldRequests = m.router.Held()
	return st
}

func (p *proc) stats(restarts int) WorkerStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	shards := slices.Clone(p.shards)
	if shards == nil {
		shards = []int{}
	}
	// A worker that has not checked in yet (booting) shows its start, as
	// Puma does, never year 1: readers compute heartbeat ages from it.
	checkin := p.lastCheckin
	if checkin.IsZero() {
		checkin = p.started
	}
	return WorkerStats{
		StartedAt: p.started.UTC(), PID: p.pid, Index: p.index, Phase: p.phase,
		Booted: p.booted && !p.dead, Draining: p.draining, LastCheckin: checkin.UTC(),
		Restarts: restarts, Shards: shards, LastStatus: p.lastStatus,
	}
}

// Healthy reports whether every shard has a ready owner without open
// errors; the reason says what is wrong otherwise (GET /healthz).
func (m *Master) Healthy() (bool, string) {
	for _, ws := range m.Stats().WorkerStatus {
		// The lowest shard first, so the reason is stable between calls.
		shards := slices.Sorted(maps.Keys(ws.LastStatus.ShardErrors))
		for _, shard := range shards {
			return false, "shard " + shard + ": " + ws.LastStatus.ShardErrors[shard]
		}
	}
	if m.hosts != nil {
		if ok, why := m.hostsHealthy(); !ok {
			return false, why
		}
	}
	for s := 0; s < m.cfg.Cluster.Shards && m.hosts == nil; s++ {
		if !m.router.Served(s) {
			return false, "shard " + strconv.Itoa(s) + " has no ready worker"
		}
	}
	if why := m.notBooted(); why != "" {
		return false, why
	}
	return true, "ok"
}
