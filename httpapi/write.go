package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// WriteJSON writes v indented (for people and curl), with an exact
// Content-Length, and flushes it, so the reply is complete on the wire
// before an action that may end the process.
func WriteJSON(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v, true) }

// WriteCompactJSON writes v as one line: Puma's stats readers split the
// body on newlines.
func WriteCompactJSON(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v, false) }

// WriteError is the one place errors reach the wire: {"error": "..."} with
// the error's status (see StatusOf).
func WriteError(w http.ResponseWriter, err error) {
	WriteJSON(w, StatusOf(err), map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any, indent bool) {
	var b []byte
	var err error
	if indent {
		b, err = json.MarshalIndent(v, "", "  ")
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":` + strconv.Quote("encode reply: "+err.Error()) + `}`)
	}
	b = append(b, '\n')
	WriteBody(w, status, "application/json", b)
}

// WriteBody writes a complete body of the given type. JSON and text are
// readable from any origin (Access-Control-Allow-Origin: *): monitoring
// pages and dashboards on other hosts poll these endpoints.
func WriteBody(w http.ResponseWriter, status int, contentType string, b []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Cache-Control", "no-store")
	h.Set("Access-Control-Allow-Origin", "*")
	w.WriteHeader(status)
	// The client may have gone; there is no one left to tell.
	_, _ = w.Write(b)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}
