package master

import (
	"net/http"
	"strconv"

	"github.com/tockd/tock/httpapi"
)

// Health is GET /healthz's body: {"status":"ok"} or
// {"status":"unavailable","error":"<reason>"}.
type Health struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Cluster is the host's view (persistence = "jetstream"): readiness
	// means serving every shard this host holds a lease for.
	Cluster *ClusterStats `json:"cluster,omitempty"`
}

// HealthOptions choose the check: Live only asks whether the master
// answers (a liveness probe); otherwise every shard must be served by a
// booted worker without errors (readiness, the default).
type HealthOptions struct {
	Live bool
}

// Health builds /healthz's verdict.
func (m *Master) Health(opts HealthOptions) Health {
	if opts.Live {
		return Health{Status: "ok"}
	}
	cs := m.clusterStats()
	if ok, reason := m.Healthy(); !ok {
		return Health{Status: "unavailable", Error: reason, Cluster: cs}
	}
	return Health{Status: "ok", Cluster: cs}
}

// serveHealthz is GET /healthz on the HTTP listener and the control
// socket: 200 when healthy, 503 otherwise. ?live=1 is the liveness probe,
// ?ready=1 (the default) the readiness probe.
func (m *Master) serveHealthz(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	live, err := httpapi.QueryBool(q, "live", false)
	if err != nil {
		return err
	}
	ready, err := httpapi.QueryBool(q, "ready", !live)
	if err != nil {
		return err
	}
	if live == ready {
		return httpapi.BadRequest("ask for live=1 or ready=1, not both or neither")
	}
	h := m.Health(HealthOptions{Live: live})
	status := http.StatusOK
	if h.Status != "ok" {
		status = http.StatusServiceUnavailable
	}
	httpapi.WriteJSON(w, status, h)
	return nil
}

// notBooted names the first worker slot without a booted process, "" when
// every one is booted.
func (m *Master) notBooted() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.slots {
		if s.cur == nil {
			return "worker " + strconv.Itoa(s.index) + " not booted"
		}
		s.cur.mu.Lock()
		booted := s.cur.booted && !s.cur.dead
		s.cur.mu.Unlock()
		if !booted {
			return "worker " + strconv.Itoa(s.index) + " not booted"
		}
	}
	return ""
}
