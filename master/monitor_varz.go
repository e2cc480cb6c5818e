package master

import (
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/tockd/tock/httpapi"
	"github.com/tockd/tock/ipc"
)

// Varz is GET /varz: the server in nats-server's field names and JSON
// types (so nats-top and prometheus-nats-exporter decode it), plus tock's
// own figures. docs/monitoring.md describes every field.
type Varz struct {
	ID             string            `json:"server_id"`
	Name           string            `json:"server_name"`
	Version        string            `json:"version"`
	Proto          int               `json:"proto"`
	GoVersion      string            `json:"go"`
	Host           string            `json:"host"`
	Port           int               `json:"port"`
	AuthRequired   bool              `json:"auth_required"`
	TLSRequired    bool              `json:"tls_required"`
	MaxConn        int               `json:"max_connections"`
	PingInterval   time.Duration     `json:"ping_interval"`
	MaxPingsOut    int               `json:"ping_max"`
	HTTPHost       string            `json:"http_host"`
	HTTPPort       int               `json:"http_port"`
	HTTPBasePath   string            `json:"http_base_path"`
	HTTPSPort      int               `json:"https_port"`
	AuthTimeout    float64           `json:"auth_timeout"`     // seconds
	MaxControlLine int32             `json:"max_control_line"` // = controller.max_line_bytes
	MaxPayload     int               `json:"max_payload"`
	MaxPending     int64             `json:"max_pending"`
	TLSTimeout     float64           `json:"tls_timeout"`    // seconds
	WriteDeadline  time.Duration     `json:"write_deadline"` // ns
	Start          time.Time         `json:"start"`
	Now            time.Time         `json:"now"`
	Uptime         string            `json:"uptime"`
	Mem            int64             `json:"mem"` // RSS of the master and its workers
	Cores          int               `json:"cores"`
	MaxProcs       int               `json:"gomaxprocs"`
	CPU            float64           `json:"cpu"` // percent of one core, master and workers
	Connections    int               `json:"connections"`
	TotalConns     uint64            `json:"total_connections"`
	Routes         int               `json:"routes"`
	Remotes        int               `json:"remotes"`
	Leafs          int               `json:"leafnodes"`
	InMsgs         int64             `json:"in_msgs"`  // request lines read
	OutMsgs        int64             `json:"out_msgs"` // reply lines written
	InBytes        int64             `json:"in_bytes"`
	OutBytes       int64             `json:"out_bytes"`
	InClientMsgs   int64             `json:"in_client_msgs"`
	InClientBytes  int64             `json:"in_client_bytes"`
	OutClientMsgs  int64             `json:"out_client_msgs"`
	OutClientBytes int64             `json:"out_client_bytes"`
	SlowConsumers  int64             `json:"slow_consumers"`
	Subscriptions  uint32            `json:"subscriptions"`
	HTTPReqStats   map[string]uint64 `json:"http_req_stats"`
	ConfigLoadTime time.Time         `json:"config_load_time"`
	SlowConsStats  SlowConsumerStats `json:"slow_consumer_stats"`

	// tock's own.
	Workers     int             `json:"workers"`
	Phase       int             `json:"phase"`
	Shards      int             `json:"shards"`
	Jobs        JobCounts       `json:"jobs"`
	Rules       int             `json:"rules"`
	Executions  ExecutionCounts `json:"executions"`
	Persistence string          `json:"persistence"`
	Fsync       string          `json:"fsync"`
	// Hosts is this host's view of the tock cluster (persistence =
	// "jetstream" only): not nats-server's "cluster", which is its routes.
	Hosts *ClusterStats `json:"hosts,omitempty"`
}

// SlowConsumerStats is nats-server's slow_consumer_stats: only clients
// apply to tock.
type SlowConsumerStats struct {
	Clients  uint64 `json:"clients"`
	Routes   uint64 `json:"routes"`
	Gateways uint64 `json:"gateways"`
	Leafs    uint64 `json:"leafs"`
}

// JobCounts are the cluster's jobs by status (from the heartbeats).
type JobCounts struct {
	Total     int64 `json:"total"`
	Planned   int64 `json:"planned"`
	Triggered int64 `json:"triggered"`
	Executed  int64 `json:"executed"`
	Failed    int64 `json:"failed"`
}

// ExecutionCounts are the cluster's executions: waiting for a slot,
// running, and finished since start by result.
type ExecutionCounts struct {
	Pending  int64            `json:"pending"`
	Inflight int64            `json:"inflight"`
	Total    map[string]int64 `json:"total"` // "success", "failure"
}

// connFigures are the traffic totals of every connection since start.
type connFigures struct {
	inMsgs, outMsgs, inBytes, outBytes int64
	results                            [numOpSlots][2]int64
}

func (m *Master) connFigures() connFigures {
	m.conns.mu.Lock()
	defer m.conns.mu.Unlock()
	t := &m.connTotals
	f := connFigures{inMsgs: t.inMsgs.Load(), outMsgs: t.outMsgs.Load(), inBytes: t.inBytes.Load(), outBytes: t.outBytes.Load()}
	for op := range t.results {
		for res := range t.results[op] {
			f.results[op][res] = t.results[op][res].Load()
		}
	}
	for cc := range m.conns.conns {
		s := &cc.stats
		f.inMsgs += s.inMsgs.Load()
		f.outMsgs += s.outMsgs.Load()
		f.inBytes += s.inBytes.Load()
		f.outBytes += s.outBytes.Load()
		for op := range s.results {
			for res := range s.results[op] {
				f.results[op][res] += s.results[op][res].Load()
			}
		}
	}
	return f
}

// Varz builds /varz.
func (m *Master) Varz() *Varz {
	now := time.Now().UTC()
	st := m.Stats()
	wm := m.clusterMetrics()
	cf := m.connFigures()
	v := &Varz{
		Hosts: st.Cluster,
		ID:    m.serverID, Name: m.serverName(), Version: Version, GoVersion: runtime.Version(),
		AuthRequired: m.cfg.Controller.AuthFile != "", TLSRequired: m.tls != nil,
		MaxConn: m.cfg.Controller.MaxConnections, HTTPBasePath: "/",
		AuthTimeout: time.Duration(authTimeout).Seconds(), MaxControlLine: int32(m.cfg.Controller.MaxLineBytes),
		MaxPending: maxPendingBytes, TLSTimeout: 5, WriteDeadline: m.writeDeadline(),
		Start: m.started.UTC(), Now: now, Uptime: natsDuration(now.Sub(m.started)),
		Cores: runtime.NumCPU(), MaxProcs: runtime.GOMAXPROCS(0),
		Connections: int(st.Connections), TotalConns: m.conns.total(),
		InMsgs: cf.inMsgs, OutMsgs: cf.outMsgs, InBytes: cf.inBytes, OutBytes: cf.outBytes,
		InClientMsgs: cf.inMsgs, OutClientMsgs: cf.outMsgs, InClientBytes: cf.inBytes, OutClientBytes: cf.outBytes,
		SlowConsumers: m.slowConsumers.Load(), HTTPReqStats: m.httpMux.RequestCounts(),
		ConfigLoadTime: m.configTime.UTC(),
		Workers:        st.Workers, Phase: st.Phase, Shards: st.Shards, Rules: m.rules.count(),
		Executions:  ExecutionCounts{Total: map[string]int64{"success": 0, "failure": 0}},
		Persistence: m.cfg.Database.Persistence, Fsync: m.cfg.Database.Fsync,
	}
	v.SlowConsStats.Clients = uint64(v.SlowConsumers)
	if m.listener != nil {
		v.Host, v.Port = hostPort(m.listener.Addr())
	}
	if a := m.HTTPAddr(); a != nil {
		v.HTTPHost, v.HTTPPort = hostPort(a)
	}
	v.Mem = ipc.RSSBytes()
	for _, w := range st.WorkerStatus {
		ls := w.LastStatus
		v.Mem += ls.RSSBytes
		v.Jobs.Total += ls.JobsTotal
		v.Jobs.Planned += ls.JobsPlanned
		v.Jobs.Triggered += ls.JobsTriggered
		v.Jobs.Executed += ls.JobsExecuted
		v.Jobs.Failed += ls.JobsFailed
		v.Executions.Pending += ls.ExecutionsPending
		v.Executions.Inflight += ls.ExecutionsInflight
	}
	for _, e := range wm.Executions {
		v.Executions.Total[e.Result] += e.Count
	}
	v.CPU = m.cpuPercent(wm.CPUNs)
	return v
}

// serverName is the host name (nats-server shows it when it differs from
// the id).
func (m *Master) serverName() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return m.serverID
}

func hostPort(a net.Addr) (string, int) {
	host, p, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String(), 0
	}
	port, _ := strconv.Atoi(p)
	return host, port
}

// serveVarz is GET /varz.
func (m *Master) serveVarz(w http.ResponseWriter, _ *http.Request) error {
	httpapi.WriteJSON(w, http.StatusOK, m.Varz())
	return nil
}
