package master

import (
	"net/http"

	"github.com/tockd/tock/httpapi"
)

// serveStats is GET /stats on the HTTP listener and the control socket:
// the stats tree, indented for people, or on one line with ?compact=1 and
// for HTTP/1.0 requests: Puma's stats readers send raw HTTP/1.0 requests
// and take the body as the last line of the reply.
func (m *Master) serveStats(w http.ResponseWriter, r *http.Request) error {
	compact, err := httpapi.QueryBool(r.URL.Query(), "compact", r.ProtoMajor == 1 && r.ProtoMinor == 0)
	if err != nil {
		return err
	}
	if compact {
		httpapi.WriteCompactJSON(w, http.StatusOK, m.Stats())
	} else {
		httpapi.WriteJSON(w, http.StatusOK, m.Stats())
	}
	return nil
}
