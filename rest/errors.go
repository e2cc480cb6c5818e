package rest

import (
	"errors"
	"net/http"

	"github.com/tockd/tock/httpapi"
)

// errorf is an error answered with status; its text is the message of the
// API's one error shape, {"error": "<message>"}.
func errorf(status int, msg string) error { return &httpapi.Error{Status: status, Msg: msg} }

// apiError gives every error its status: an *httpapi.Error keeps its own,
// ErrNotFound is 404, and anything else comes from the backend and means
// the cluster cannot serve the request now (503: shard unavailable, worker
// crashed, a write failed, a rule change not applied in time).
func apiError(err error) error {
	var he *httpapi.Error
	switch {
	case errors.As(err, &he):
		return err
	case errors.Is(err, ErrNotFound):
		return errorf(http.StatusNotFound, err.Error())
	}
	return errorf(http.StatusServiceUnavailable, err.Error())
}

// writeError answers err through the listener's one error writer.
func writeError(w http.ResponseWriter, err error) {
	err = apiError(err)
	if httpapi.StatusOf(err) == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tock"`)
	}
	httpapi.WriteError(w, err)
}

// writeJSON writes a successful reply.
func writeJSON(w http.ResponseWriter, status int, v any) { httpapi.WriteJSON(w, status, v) }
