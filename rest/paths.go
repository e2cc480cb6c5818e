package rest

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tockd/tock/store"
)

// maxIDLen is the longest id the line protocol (and the logfile) accepts.
const maxIDLen = 65535

// DecodeID percent-decodes a path segment into an id and checks it is one
// the line protocol can carry: not empty, at most 65535 bytes, no line
// feed. A "+" stays a "+" (it means a space only in query strings).
func DecodeID(raw string) (string, error) {
	id, err := url.PathUnescape(raw)
	switch {
	case err != nil:
		return "", errorf(http.StatusBadRequest, fmt.Sprintf("invalid id: %v", err))
	case id == "":
		return "", errorf(http.StatusBadRequest, "missing id")
	case len(id) > maxIDLen:
		return "", errorf(http.StatusBadRequest, "id longer than 65535 bytes")
	case strings.ContainsAny(id, "\n"):
		return "", errorf(http.StatusBadRequest, "id holds a line feed")
	}
	return id, nil
}

// query is a decoded query string: each parameter at most once, and only
// the ones the endpoint knows.
type query map[string]string

// parseQuery decodes r's query string, allowing only the names given.
func parseQuery(r *http.Request, allowed ...string) (query, error) {
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, fmt.Sprintf("invalid query string: %v", err))
	}
	q := query{}
	for name, vs := range vals {
		known := false
		for _, a := range allowed {
			known = known || a == name
		}
		switch {
		case !known:
			return nil, errorf(http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q", name))
		case len(vs) > 1:
			return nil, errorf(http.StatusBadRequest, fmt.Sprintf("query parameter %q given more than once", name))
		}
		q[name] = vs[0]
	}
	return q, nil
}

// Listing limits (docs/rest.md).
const (
	DefaultLimit = 1000
	MaxLimit     = 10000
)

// ParseListQuery decodes GET /jobs's prefix, status, limit and cursor;
// an absent or empty one is the default (docs/rest.md).
func ParseListQuery(raw string) (ListQuery, error) {
	r := &http.Request{URL: &url.URL{RawQuery: raw}}
	q, err := parseQuery(r, "prefix", "status", "limit", "cursor")
	if err != nil {
		return ListQuery{}, err
	}
	// An empty value is the default, as on the monitoring endpoints of the
	// same listener: a client may send ?limit=&cursor= for a first page.
	for name, v := range q {
		if v == "" {
			delete(q, name)
		}
	}
	lq := ListQuery{Prefix: q["prefix"], Limit: DefaultLimit}
	if len(lq.Prefix) > maxIDLen {
		return ListQuery{}, errorf(http.StatusBadRequest, `invalid "prefix": longer than 65535 bytes`)
	}
	if s, ok := q["limit"]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return ListQuery{}, errorf(http.StatusBadRequest, fmt.Sprintf(`invalid "limit" %q: want an integer from 1 to %d`, s, MaxLimit))
		}
		lq.Limit = n
	}
	if s, ok := q["status"]; ok {
		for _, name := range strings.Split(s, ",") {
			st, ok := parseStatus(name)
			if !ok {
				return ListQuery{}, errorf(http.StatusBadRequest, fmt.Sprintf(`invalid "status" %q: want planned, triggered, executed or failed, comma separated`, s))
			}
			lq.Statuses |= store.StatusBit(st)
		}
	}
	if s, ok := q["cursor"]; ok {
		after, err := DecodeCursor(s)
		if err != nil {
			return ListQuery{}, err
		}
		lq.After = after
	}
	return lq, nil
}

func parseStatus(s string) (store.Status, bool) {
	for st := store.Planned; st <= store.Failed; st++ {
		if st.String() == s {
			return st, true
		}
	}
	return 0, false
}

// cursorVersion starts every cursor, so a later encoding can be told apart.
const cursorVersion = 'j'

// EncodeCursor makes the opaque cursor that continues a listing after id.
func EncodeCursor(id string) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{cursorVersion}, id...))
}

// DecodeCursor returns the id a cursor continues after.
func DecodeCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 2 || b[0] != cursorVersion || len(b)-1 > maxIDLen {
		return "", errorf(http.StatusBadRequest, `invalid "cursor": not a cursor this server returned`)
	}
	return string(b[1:]), nil
}
