package rest

import (
	"net/http"
	"strings"
	"time"

	"github.com/tockd/tock/store"
)

// timeLayout is RFC 3339 in UTC with all nine fraction digits, so a time
// read back parses to the same ns.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

func formatNs(ns int64) string { return time.Unix(0, ns).UTC().Format(timeLayout) }

// jobView is a job in responses.
type jobView struct {
	ID          string       `json:"id"`
	Execution   string       `json:"execution"`
	ExecutionNs int64        `json:"execution_ns"`
	Status      string       `json:"status"`
	Shard       int          `json:"shard"`
	Rule        *string      `json:"rule"`
	LastOutcome *outcomeView `json:"last_outcome"`
}

// putJobView is PUT's answer: the job as planned, without last_outcome.
type putJobView struct {
	ID          string  `json:"id"`
	Execution   string  `json:"execution"`
	ExecutionNs int64   `json:"execution_ns"`
	Status      string  `json:"status"`
	Shard       int     `json:"shard"`
	Rule        *string `json:"rule"`
}

// outcomeView is a job's last outcome: exit_code for a process runner,
// http_status for the http runner, error "" on success.
type outcomeView struct {
	StartedAt   string `json:"started_at"`
	StartedAtNs int64  `json:"started_at_ns"`
	DurationNs  int64  `json:"duration_ns"`
	Succeeded   bool   `json:"succeeded"`
	ExitCode    *int32 `json:"exit_code,omitempty"`
	HTTPStatus  *int32 `json:"http_status,omitempty"`
	Error       string `json:"error"`
	OutputTail  string `json:"output_tail"`
	Attempt     uint32 `json:"attempt"`
}

func viewOutcome(o *store.Outcome) *outcomeView {
	if o == nil {
		return nil
	}
	v := &outcomeView{StartedAt: formatNs(o.StartedAt), StartedAtNs: o.StartedAt, DurationNs: o.Duration,
		Succeeded: o.Succeeded(), Error: o.Error, OutputTail: o.Output, Attempt: o.Attempt}
	if o.ExitCode >= 0 {
		code := o.ExitCode
		v.ExitCode = &code
	}
	if o.HTTPStatus != 0 {
		st := o.HTTPStatus
		v.HTTPStatus = &st
	}
	return v
}

func optString(s string, ok bool) *string {
	if !ok {
		return nil
	}
	return &s
}

// listedJob is one job of GET /jobs.
type listedJob struct {
	ID          string `json:"id"`
	Execution   string `json:"execution"`
	ExecutionNs int64  `json:"execution_ns"`
	Status      string `json:"status"`
}

type jobList struct {
	Jobs       []listedJob `json:"jobs"`
	NextCursor *string     `json:"next_cursor"`
}

func (s *Server) deleteJob(w http.ResponseWriter, r *http.Request, _ Identity, id string) {
	if err := s.b.RemoveJob(r.Context(), id); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request, _ Identity, id string) {
	j, err := s.b.GetJob(r.Context(), id)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, jobView{ID: j.ID, Execution: formatNs(j.Execution), ExecutionNs: j.Execution,
		Status: j.Status.String(), Shard: j.Shard, Rule: optString(j.Rule, j.Rule != ""), LastOutcome: viewOutcome(j.Outcome)})
}

func (s *Server) putJob(w http.ResponseWriter, r *http.Request, _ Identity, id string) {
	b, err := readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	jb, ns, err := ParseJobBody(b)
	if err != nil {
		writeError(w, err)
		return
	}
	if jb.ID != nil && *jb.ID != id {
		writeError(w, errorf(http.StatusConflict, `"id" in the body differs from the id in the path`))
		return
	}
	shard, err := s.b.SetJob(r.Context(), id, ns)
	if err != nil {
		writeError(w, err)
		return
	}
	rule, ok := s.b.MatchRule(id)
	writeJSON(w, http.StatusOK, putJobView{ID: id, Execution: formatNs(ns), ExecutionNs: ns,
		Status: store.Planned.String(), Shard: shard, Rule: optString(rule, ok)})
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request, who Identity) {
	q, err := ParseListQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, err)
		return
	}
	out := jobList{Jobs: []listedJob{}}
	prefix, ok := narrow(q.Prefix, who)
	if !ok {
		writeJSON(w, http.StatusOK, out) // nothing of that prefix is in the namespace
		return
	}
	q.Prefix = prefix
	jobs, more, err := s.b.ListJobs(r.Context(), q)
	if err != nil {
		writeError(w, err)
		return
	}
	out.Jobs = make([]listedJob, len(jobs))
	for i, j := range jobs {
		out.Jobs[i] = listedJob{ID: j.ID, Execution: formatNs(j.Execution), ExecutionNs: j.Execution, Status: j.Status.String()}
	}
	if more && len(jobs) > 0 {
		c := EncodeCursor(jobs[len(jobs)-1].ID)
		out.NextCursor = &c
	}
	writeJSON(w, http.StatusOK, out)
}

// narrow intersects a listing's prefix with the namespace: a prefix inside
// the namespace stays, one the namespace extends becomes the namespace,
// and any other selects nothing (ok false). The listing then shows exactly
// the namespace's part, as QUERY does.
func narrow(prefix string, who Identity) (string, bool) {
	switch ns := who.Namespace; {
	case ns == "*" || strings.HasPrefix(prefix, ns):
		return prefix, true
	case strings.HasPrefix(ns, prefix):
		return ns, true
	}
	return "", false
}
