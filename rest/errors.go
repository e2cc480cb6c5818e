package rest

import (
	"encoding/json"
	"errors"
	"net/http"
)

// errorBody is the one error shape of the API: {"error": "<message>"}.
type errorBody struct {
	Error string `json:"error"`
}

// apiError is an error with the status it is answered with.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, msg string) *apiError { return &apiError{status: status, msg: msg} }

// writeError is the one writer of errors: an *apiError keeps its status,
// ErrNotFound is 404, anything else comes from the backend and means the
// cluster could not serve the request now (503).
func writeError(w http.ResponseWriter, err error) {
	status := http.StatusServiceUnavailable
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		status = ae.status
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tock"`)
	}
	writeJSON(w, status, errorBody{Error: err.Error()})
}

// writeJSON writes v as the response body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own types are written; this is a bug, not bad input.
		status, b = http.StatusInternalServerError, []byte(`{"error":"cannot encode the response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, errorf(http.StatusMethodNotAllowed, "method not allowed"))
}
