// Package httpapi is the plumbing shared by tock's HTTP surfaces (the
// master's HTTP listener with the monitoring endpoints and the REST API,
// and the control socket): a route table with exact method and path
// matching, one JSON writer, one error writer, query-value parsers that
// answer 400, and the listener's server with its limits.
//
// It knows nothing about the master: the master owns the listener's
// lifecycle (see master.Options.HTTPRoutes) and every route group adds its
// routes to the one Mux:
//
//	mux.Handle(http.MethodGet, "/jobs/{id}", getJob)   // r.PathValue("id")
//	mux.Handle(http.MethodPut, "/jobs/{id}", putJob)
//
// A handler returns an error to have it answered as {"error": "..."} with
// the status of an *Error (500 otherwise).
package httpapi
