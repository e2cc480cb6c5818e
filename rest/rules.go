package rest

import (
	"fmt"
	"net/http"

	"github.com/tockd/tock/protocol"
	"github.com/tockd/tock/store"
)

// RunnerBody is a runner in requests and responses. Which fields belong to
// which type (docs/rest.md):
//
//	shell:  command
//	direct: executable, args
//	http:   method, url
//	redis:  url, command, key
//	amqp:   url, exchange, routing_key
//	awf:    workflow, inputs ("key=value" each)
//
// In responses URLs have their password removed.
type RunnerBody struct {
	Type       string    `json:"type"`
	Command    *string   `json:"command,omitempty"`
	Executable *string   `json:"executable,omitempty"`
	Args       *[]string `json:"args,omitempty"`
	Method     *string   `json:"method,omitempty"`
	URL        *string   `json:"url,omitempty"`
	Key        *string   `json:"key,omitempty"`
	Exchange   *string   `json:"exchange,omitempty"`
	RoutingKey *string   `json:"routing_key,omitempty"`
	Workflow   *string   `json:"workflow,omitempty"`
	Inputs     *[]string `json:"inputs,omitempty"`
}

// RuleBody is PUT /rules/{id}'s body.
type RuleBody struct {
	// ID, when given, must be the path's id (409 otherwise).
	ID      *string     `json:"id"`
	Pattern *string     `json:"pattern"`
	Runner  *RunnerBody `json:"runner"`
}

// ruleView is a rule in responses.
type ruleView struct {
	ID      string     `json:"id"`
	Pattern string     `json:"pattern"`
	Runner  RunnerBody `json:"runner"`
}

// field is one runner field: its JSON name and where it is.
type field struct {
	name string
	str  **string
	list **[]string
}

func (rb *RunnerBody) fields() []field {
	return []field{
		{name: "command", str: &rb.Command}, {name: "executable", str: &rb.Executable},
		{name: "args", list: &rb.Args}, {name: "method", str: &rb.Method}, {name: "url", str: &rb.URL},
		{name: "key", str: &rb.Key}, {name: "exchange", str: &rb.Exchange},
		{name: "routing_key", str: &rb.RoutingKey}, {name: "workflow", str: &rb.Workflow},
		{name: "inputs", list: &rb.Inputs},
	}
}

// runnerFields are each type's fields, required first; the rest optional.
var runnerFields = map[string]struct {
	required, optional []string
}{
	"shell":  {required: []string{"command"}},
	"direct": {required: []string{"executable"}, optional: []string{"args"}},
	"http":   {required: []string{"method", "url"}},
	"redis":  {required: []string{"url", "command", "key"}},
	"amqp":   {required: []string{"url", "exchange", "routing_key"}},
	"awf":    {required: []string{"workflow"}, optional: []string{"inputs"}},
}

// ParseRuleBody decodes a rule body into the rule id, checking the runner
// exactly as RULE SET does.
func ParseRuleBody(b []byte, id string) (store.Rule, error) {
	var rb RuleBody
	if err := decodeStrict(b, &rb); err != nil {
		return store.Rule{}, err
	}
	if rb.ID != nil && *rb.ID != id {
		return store.Rule{}, errorf(http.StatusConflict, `"id" in the body differs from the id in the path`)
	}
	if rb.Pattern == nil {
		return store.Rule{}, errorf(http.StatusBadRequest, `missing "pattern"`)
	}
	if len(*rb.Pattern) > maxIDLen {
		return store.Rule{}, errorf(http.StatusBadRequest, `invalid "pattern": longer than 65535 bytes`)
	}
	if rb.Runner == nil {
		return store.Rule{}, errorf(http.StatusBadRequest, `missing "runner"`)
	}
	runner, err := rb.Runner.toRunner()
	if err != nil {
		return store.Rule{}, err
	}
	return store.Rule{ID: id, Pattern: *rb.Pattern, Runner: runner}, nil
}

func (rb *RunnerBody) toRunner() (store.Runner, error) {
	bad := func(format string, a ...any) error {
		return errorf(http.StatusBadRequest, "invalid \"runner\": "+fmt.Sprintf(format, a...))
	}
	spec, ok := runnerFields[rb.Type]
	if !ok {
		return store.Runner{}, bad("unknown type %q: want shell, direct, http, redis, amqp or awf", rb.Type)
	}
	allowed := map[string]bool{}
	for _, n := range spec.required {
		allowed[n] = true
	}
	for _, n := range spec.optional {
		allowed[n] = true
	}
	got := map[string]field{}
	for _, f := range rb.fields() {
		set := (f.str != nil && *f.str != nil) || (f.list != nil && *f.list != nil)
		if !set {
			continue
		}
		if !allowed[f.name] {
			return store.Runner{}, bad("%q is not a field of a %s runner", f.name, rb.Type)
		}
		got[f.name] = f
	}
	for _, n := range spec.required {
		if _, ok := got[n]; !ok {
			return store.Runner{}, bad("a %s runner needs %q", rb.Type, n)
		}
	}
	str := func(n string) string { return **got[n].str }
	list := func(n string) []string {
		if f, ok := got[n]; ok {
			return **f.list
		}
		return nil
	}
	// The tokens of a RULE SET line, in its order.
	var args []string
	switch rb.Type {
	case "shell":
		args = []string{str("command")}
	case "direct":
		args = append([]string{str("executable")}, list("args")...)
	case "http":
		args = []string{str("method"), str("url")}
	case "redis":
		args = []string{str("url"), str("command"), str("key")}
	case "amqp":
		args = []string{str("url"), str("exchange"), str("routing_key")}
	case "awf":
		args = []string{str("workflow")}
		for _, kv := range list("inputs") {
			args = append(args, "--input", kv)
		}
	}
	r, err := protocol.ParseRunner(rb.Type, args)
	if err != nil {
		return store.Runner{}, bad("%v", err)
	}
	return r, nil
}

// viewRunner is r as responses show it, passwords removed from URLs.
func viewRunner(r store.Runner) RunnerBody {
	s := func(i int) *string {
		if i >= len(r.Args) {
			v := ""
			return &v
		}
		v := r.Args[i]
		return &v
	}
	redacted := func(i int) *string {
		v := protocol.RedactURL(*s(i))
		return &v
	}
	rest := func() *[]string {
		v := []string{}
		if len(r.Args) > 1 {
			v = append(v, r.Args[1:]...)
		}
		return &v
	}
	rb := RunnerBody{Type: r.Kind.String()}
	switch r.Kind {
	case store.RunnerShell:
		rb.Command = s(0)
	case store.RunnerDirect:
		rb.Executable, rb.Args = s(0), rest()
	case store.RunnerHTTP:
		rb.Method, rb.URL = s(0), redacted(1)
	case store.RunnerRedis:
		rb.URL, rb.Command, rb.Key = redacted(0), s(1), s(2)
	case store.RunnerAMQP:
		rb.URL, rb.Exchange, rb.RoutingKey = redacted(0), s(1), s(2)
	case store.RunnerAWF:
		rb.Workflow, rb.Inputs = s(0), rest()
	}
	return rb
}

func viewRule(r store.Rule) ruleView {
	return ruleView{ID: r.ID, Pattern: r.Pattern, Runner: viewRunner(r.Runner)}
}

type ruleList struct {
	Rules []ruleView `json:"rules"`
}

func (s *Server) listRules(w http.ResponseWriter, r *http.Request, who Identity) {
	q, err := parseQuery(r, "prefix")
	if err != nil {
		writeError(w, err)
		return
	}
	out := ruleList{Rules: []ruleView{}}
	for _, rule := range s.b.Rules(q["prefix"]) {
		if who.Allows(rule.ID) {
			out.Rules = append(out.Rules, viewRule(rule))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getRule(w http.ResponseWriter, r *http.Request, _ Identity, id string) {
	rule, ok := s.b.Rule(id)
	if !ok {
		writeError(w, ErrNotFound)
		return
	}
	writeJSON(w, http.StatusOK, viewRule(rule))
}

func (s *Server) putRule(w http.ResponseWriter, r *http.Request, who Identity, id string) {
	b, err := readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	rule, err := ParseRuleBody(b, id)
	if err != nil {
		writeError(w, err)
		return
	}
	// A token may not make a rule that fires for another namespace's jobs:
	// the pattern is checked too, as RULE SET does.
	if !who.Allows(rule.Pattern) {
		writeError(w, errForbidden)
		return
	}
	if err := s.b.SetRule(r.Context(), rule); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, viewRule(rule))
}

func (s *Server) deleteRule(w http.ResponseWriter, r *http.Request, _ Identity, id string) {
	if err := s.b.RemoveRule(r.Context(), id); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
