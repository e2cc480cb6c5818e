package master

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tockd/tock/config"
	"github.com/tockd/tock/ipc"
)

// monitorState is what the monitoring endpoints keep besides the cluster
// state (docs/monitoring.md).
type monitorState struct {
	serverID   string
	configTime time.Time
	clock      clock // coarse wall clock for connection activity

	slowConsumers atomic.Int64
	connTotals    connTotals // figures of closed connections
	closedConns   closedRing

	// metricsMu orders a dead worker's figures moving into retired with
	// the scrapes that sum live workers' figures (no count twice or lost).
	metricsMu sync.Mutex
	retired   ipc.WorkerMetrics
	restarts  restartCounts

	metricsHandler http.Handler // /metrics (monitor_metrics.go)

	cpuMu             sync.Mutex
	cpuLastNs, cpuAtW int64 // CPU time and wall time (ns) at the last /varz
}

// restartCounts are worker replacements by reason (crash, hang,
// boot_failure).
type restartCounts struct{ crash, hang, bootFailure atomic.Int64 }

// serverIDFile holds the stable server_id in the data dir.
const serverIDFile = "server_id"

// loadServerID reads the data dir's server id, creating it on first use;
// with persistence = memory the id is new each run.
func loadServerID(cfg config.Config) (string, error) {
	if cfg.Database.Persistence == config.PersistenceMemory {
		return newServerID(), nil
	}
	path := filepath.Join(cfg.Database.DataDir, serverIDFile)
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if len(id) == 0 || len(id) > 128 {
			return "", fmt.Errorf("%s: want one server id, got %d bytes", path, len(b))
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read server id: %w", err)
	}
	id := newServerID()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write server id: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("write server id: %w", err)
	}
	return id, nil
}

// newServerID makes an id shaped like nats-server's: "N" and 55 base-32
// characters.
func newServerID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := make([]byte, 56)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[b[i]%32]
	}
	b[0] = 'N'
	return string(b)
}

// writeDeadline is controller.write_deadline.
func (m *Master) writeDeadline() time.Duration {
	if d := m.cfg.Controller.WriteDeadline.Duration; d > 0 {
		return d
	}
	return config.DefaultWriteDeadline
}

// allProcs lists every worker process the master tracks: those in slots
// first, then the ones only m.live knows (booting, or removed by a scale
// down and still draining), each once.
func (m *Master) allProcs() []*proc {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.allProcsLocked()
}

func (m *Master) allProcsLocked() []*proc {
	var out []*proc
	for _, s := range m.slots {
		if s.cur != nil {
			out = append(out, s.cur)
		}
		out = append(out, s.old...)
	}
	for _, p := range append(slices.Clone(m.booting), m.live...) {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// reap waits for a worker process to exit, moves its figures into the
// retired totals and only then forgets it: a scrape sees its figures
// either live or retired, never neither, so counters never go back.
func (m *Master) reap(p *proc) {
	<-p.exited
	m.retireMetrics(p)
	m.mu.Lock()
	m.live = slices.DeleteFunc(m.live, func(q *proc) bool { return q == p })
	m.mu.Unlock()
}

// retireMetrics moves a process's last figures into the cluster's totals
// once it has exited.
func (m *Master) retireMetrics(p *proc) {
	m.metricsMu.Lock()
	defer m.metricsMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.metricsRetired {
		return
	}
	p.metricsRetired = true
	if p.lastMetrics != nil {
		for i := range p.lastMetrics.Shards {
			p.lastMetrics.Shards[i].Owned = false // its sizes are no longer current
		}
		m.retired.Add(p.lastMetrics)
	}
}

// clusterMetrics sums the figures of every worker that ever ran.
func (m *Master) clusterMetrics() ipc.WorkerMetrics {
	procs := m.allProcs()
	m.metricsMu.Lock()
	defer m.metricsMu.Unlock()
	total := m.retired.Clone()
	for i := range total.Shards {
		total.Shards[i].LogBytes = 0
	}
	for _, p := range procs {
		p.mu.Lock()
		if !p.metricsRetired && p.lastMetrics != nil {
			total.Add(p.lastMetrics)
		}
		p.mu.Unlock()
	}
	return total
}

// cpuPercent is the CPU use of the master and its workers since the
// previous call (since start for the first), in percent of one core.
func (m *Master) cpuPercent(workersCPU int64) float64 {
	now := time.Now().UnixNano()
	total := ipc.CPUNs() + workersCPU
	m.cpuMu.Lock()
	defer m.cpuMu.Unlock()
	lastCPU, lastWall := m.cpuLastNs, m.cpuAtW
	if lastWall == 0 {
		lastWall = m.started.UnixNano()
	}
	m.cpuLastNs, m.cpuAtW = total, now
	if now <= lastWall || total <= lastCPU {
		return 0
	}
	pct := float64(total-lastCPU) / float64(now-lastWall) * 100
	return float64(int64(pct*10)) / 10
}
