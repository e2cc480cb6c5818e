package master

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/tockd/tock/httpapi"
	"github.com/tockd/tock/ipc"

	"github.com/hashicorp/go-hclog"
)

// controlRoute is one control endpoint: the methods it takes and its
// handler.
type controlRoute struct {
	methods []string // the first is the one named in a 405's Allow
	handle  func(cs *ControlServer, w http.ResponseWriter, r *http.Request) error
}

var (
	onlyGET  = []string{http.MethodGet}
	onlyPOST = []string{http.MethodPost}
	// pumaAction is an action Puma's pumactl sends as a GET: Puma ignores
	// the method, and so do these paths. A browser cannot be tricked into
	// one: the socket is 0600 and peer-checked, and the TCP listener always
	// wants the token (see docs/operations.md, "Puma's pumactl").
	pumaAction = []string{http.MethodPost, http.MethodGet}
)

// controlRoutes is the control API (docs/operations.md), one entry per
// path.
var controlRoutes = map[string]controlRoute{
	"/stats":             {onlyGET, shared((*Master).serveStats)},
	"/healthz":           {onlyGET, shared((*Master).serveHealthz)},
	"/hosts":             {onlyGET, shared((*Master).serveHosts)},
	"/gc-stats":          {onlyGET, (*ControlServer).serveGCStats},
	"/backtraces":        {onlyGET, (*ControlServer).serveBacktraces},
	"/thread-backtraces": {onlyGET, (*ControlServer).serveBacktraces}, // Puma's name
	"/phased-restart":    {pumaAction, (*ControlServer).servePhasedRestart},
	"/restart":           {pumaAction, (*ControlServer).serveRestart},
	"/stop":              {pumaAction, (*ControlServer).serveStop},
	"/halt":              {pumaAction, (*ControlServer).serveHalt},
	"/workers":           {onlyPOST, (*ControlServer).serveWorkers},
	"/compact":           {onlyPOST, (*ControlServer).serveCompact},
}

// controlError is an error with the HTTP status it is answered with.
type controlError struct {
	status int
	msg    string
}

func (e *controlError) Error() string { return e.msg }

// The token errors are Puma's codes, which pumactl tells apart: 401 when
// no token came, 403 when a wrong one did.
var (
	errUnauthorized = &controlError{status: http.StatusUnauthorized, msg: "unauthorized: a token is required"}
	errForbidden    = &controlError{status: http.StatusForbidden, msg: "forbidden: wrong token"}
	errNoTCPToken   = &controlError{status: http.StatusForbidden, msg: "forbidden: the TCP control listener needs control.token"}
)

func badRequest(format string, args ...any) error {
	return &controlError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// actionError maps the error of a cluster action to 409: the actions refuse
// only while another rollout runs or the master is stopping
// (ErrRestartInProgress, "stopping"); both are states, not bad requests.
func actionError(err error) error {
	return &controlError{status: http.StatusConflict, msg: err.Error()}
}

// writeControlError is the one place control errors reach the wire:
// {"error": "..."} with the error's status (500 when it has none).
func writeControlError(w http.ResponseWriter, log hclog.Logger, err error) {
	status := http.StatusInternalServerError
	var ce *controlError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ce):
		status = ce.status
	case errors.As(err, &mbe):
		status = http.StatusRequestEntityTooLarge
	}
	if status >= 500 {
		log.Error("control request failed", "error", err)
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// writeJSON is the one JSON writer of every HTTP surface (httpapi).
func writeJSON(w http.ResponseWriter, status int, v any) { httpapi.WriteJSON(w, status, v) }

var statusOK = map[string]string{"status": "ok"}

// shared serves a monitoring endpoint with the very handler the HTTP
// listener uses (master/monitor_*.go), so both transports answer alike.
func shared(h func(*Master, http.ResponseWriter, *http.Request) error) func(*ControlServer, http.ResponseWriter, *http.Request) error {
	return func(cs *ControlServer, w http.ResponseWriter, r *http.Request) error {
		if err := h(cs.m, w, r); err != nil {
			var he *httpapi.Error
			if errors.As(err, &he) {
				return &controlError{status: he.Status, msg: he.Msg}
			}
			return err
		}
		return nil
	}
}

// GCStatsReply is GET /gc-stats: the master's figures and each worker's.
type GCStatsReply struct {
	Master  ipc.GCStats        `json:"master"`
	Workers []WorkerCallResult `json:"workers"`
}

func (cs *ControlServer) serveGCStats(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, GCStatsReply{
		Master:  ipc.ReadGCStats(),
		Workers: nonNil(cs.m.CallWorkers("gc-stats", controlWorkerCallWait)),
	})
	return nil
}

// BacktracesReply is GET /backtraces: goroutine dumps of every process.
type BacktracesReply struct {
	Master  ipc.Backtraces     `json:"master"`
	Workers []WorkerCallResult `json:"workers"`
}

func (cs *ControlServer) serveBacktraces(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, BacktracesReply{
		Master:  ipc.ReadBacktraces(),
		Workers: nonNil(cs.m.CallWorkers("backtraces", controlWorkerCallWait)),
	})
	return nil
}

func (cs *ControlServer) servePhasedRestart(w http.ResponseWriter, _ *http.Request) error {
	if err := cs.m.PhasedRestart(); err != nil {
		return actionError(err)
	}
	cs.log.Info("phased restart requested")
	writeJSON(w, http.StatusOK, statusOK)
	return nil
}

// stoppingError is 409 when the master is already stopping.
func (cs *ControlServer) stoppingError() error {
	cs.m.mu.Lock()
	defer cs.m.mu.Unlock()
	if cs.m.stopping || cs.m.restarting {
		return &controlError{status: http.StatusConflict, msg: "tock is already stopping"}
	}
	return nil
}

// replyThen answers 200 and only then runs act, so the client has its reply
// before the process restarts or exits.
func (cs *ControlServer) replyThen(w http.ResponseWriter, what string, act func()) error {
	if err := cs.stoppingError(); err != nil {
		return err
	}
	cs.log.Info(what + " requested")
	writeJSON(w, http.StatusOK, statusOK)
	go act()
	return nil
}

func (cs *ControlServer) serveRestart(w http.ResponseWriter, _ *http.Request) error {
	return cs.replyThen(w, "restart", func() {
		if err := cs.m.Restart(); err != nil {
			cs.log.Warn("restart refused", "error", err)
		}
	})
}

func (cs *ControlServer) serveStop(w http.ResponseWriter, _ *http.Request) error {
	return cs.replyThen(w, "stop", cs.m.Stop)
}

func (cs *ControlServer) serveHalt(w http.ResponseWriter, _ *http.Request) error {
	return cs.replyThen(w, "halt", cs.m.Halt)
}

// WorkersRequest is POST /workers: exactly one of Delta and Count.
type WorkersRequest struct {
	// Delta adds (or, negative, removes) workers.
	Delta *int `json:"delta,omitempty"`
	// Count sets the number of workers.
	Count *int `json:"count,omitempty"`
}

func (cs *ControlServer) serveWorkers(w http.ResponseWriter, r *http.Request) error {
	var req WorkersRequest
	if err := decodeBody(r.Body, &req); err != nil {
		return err
	}
	var target int
	switch {
	case (req.Delta == nil) == (req.Count == nil):
		return badRequest(`want exactly one of {"delta": N} and {"count": N}`)
	case req.Delta != nil:
		if *req.Delta == 0 {
			return badRequest("delta must not be 0")
		}
		target = cs.m.slotCount() + *req.Delta
	default:
		target = *req.Count
	}
	if target < 1 {
		return badRequest("a cluster needs at least one worker, asked for %d", target)
	}
	if max := cs.m.MaxWorkers(); target > max {
		return badRequest("at most %d workers (one per shard), asked for %d", max, target)
	}
	if err := cs.stoppingError(); err != nil {
		return err
	}
	if err := cs.m.Scale(target); err != nil {
		return actionError(err)
	}
	cs.log.Info("scaling requested", "workers", target)
	writeJSON(w, http.StatusOK, statusOK)
	return nil
}

// decodeBody reads one JSON object, rejecting unknown fields and trailing
// data.
func decodeBody(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return badRequest("empty body, want a JSON object")
		}
		return badRequest("bad JSON body: %v", err)
	}
	if dec.More() {
		return badRequest("bad JSON body: more than one value")
	}
	return nil
}

// CompactReply is POST /compact: each worker's answer.
type CompactReply struct {
	Status  string             `json:"status"`
	Workers []WorkerCallResult `json:"workers"`
}

func (cs *ControlServer) serveCompact(w http.ResponseWriter, _ *http.Request) error {
	res := nonNil(cs.m.CallWorkers("compact", controlWorkerCallWait))
	var failed []string
	for _, r := range res {
		if r.Error != "" {
			failed = append(failed, fmt.Sprintf("worker %d (pid %d): %s", r.Index, r.PID, r.Error))
		}
	}
	if len(failed) > 0 {
		return &controlError{status: http.StatusBadGateway, msg: "compact: " + strings.Join(failed, "; ")}
	}
	cs.log.Info("compaction requested", "workers", len(res))
	writeJSON(w, http.StatusOK, CompactReply{Status: "ok", Workers: res})
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
