package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"time"
	"unicode/utf8"
)

// MaxBody is the largest request body accepted (413 beyond).
const MaxBody = 1 << 20

// readBody reads the whole body, at most MaxBody bytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, errorf(http.StatusRequestEntityTooLarge, "body larger than 1 MiB")
	case err != nil:
		return nil, errorf(http.StatusBadRequest, fmt.Sprintf("cannot read body: %v", err))
	}
	return b, nil
}

// decodeStrict decodes one JSON object into v: unknown fields and
// anything after the object are errors, numbers stay json.Number.
func decodeStrict(b []byte, v any) error {
	// JSON text is UTF-8; encoding/json would read each bad byte as
	// U+FFFD, storing other bytes than the client sent.
	if !utf8.Valid(b) {
		return errorf(http.StatusBadRequest, "invalid body: not UTF-8")
	}
	if err := checkKeys(b); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errorf(http.StatusBadRequest, "invalid body: empty, want a JSON object")
		}
		return errorf(http.StatusBadRequest, "invalid body: "+jsonReason(err))
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "invalid body: data after the JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, "invalid body: data after the JSON object")
	}
	return nil
}

// checkKeys refuses what encoding/json would read leniently: a key
// repeated in one object (the last one wins) and a key that is not spelled
// exactly as a field (it matches case-insensitively, with Unicode folding:
// "PATTERN", "ſ" for "s", the Kelvin sign for "k"). Another reader of the
// same body could see other values. Every key of the API's bodies is lower
// case ASCII with underscores. A body that is not JSON passes, for the
// decoder to word its error.
func checkKeys(b []byte) error {
	type frame struct {
		keys    map[string]bool // nil in an array
		wantKey bool            // in an object, the next token is a key
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var open []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		var top *frame
		if len(open) > 0 {
			top = open[len(open)-1]
		}
		if top != nil && top.keys != nil && top.wantKey {
			key, _ := tok.(string) // in an object a key, or its closing }
			if tok != json.Delim('}') {
				switch {
				case top.keys[key]:
					return errorf(http.StatusBadRequest, fmt.Sprintf("invalid body: field %q given more than once", key))
				case !plainKey(key):
					return errorf(http.StatusBadRequest, fmt.Sprintf("invalid body: unknown field %q", key))
				}
				top.keys[key], top.wantKey = true, false
				continue
			}
		}
		if top != nil && top.keys != nil {
			top.wantKey = true // this token is (or opens) a value
		}
		switch tok {
		case json.Delim('{'):
			open = append(open, &frame{keys: map[string]bool{}, wantKey: true})
		case json.Delim('['):
			open = append(open, &frame{})
		case json.Delim('}'), json.Delim(']'):
			open = open[:len(open)-1]
		}
		if len(open) == 0 {
			return nil // the first value is done
		}
	}
}

// plainKey reports whether k is spelled as the API's field names are.
func plainKey(k string) bool {
	for i := 0; i < len(k); i++ {
		if c := k[i]; (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return k != ""
}

// jsonReason words a decoding error for a client, naming the field.
func jsonReason(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("%q must be %s, not %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
	}
	return trimJSONPrefix(err.Error())
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	}
	return k
}

func trimJSONPrefix(s string) string {
	if len(s) > 6 && s[:6] == "json: " {
		return s[6:]
	}
	return s
}

// JobBody is PUT /jobs/{id}'s body.
type JobBody struct {
	// ID, when given, must be the path's id (409 otherwise).
	ID        *string         `json:"id"`
	Execution json.RawMessage `json:"execution"`
}

// ParseJobBody decodes a job body and its execution time in ns.
func ParseJobBody(b []byte) (JobBody, int64, error) {
	var jb JobBody
	if err := decodeStrict(b, &jb); err != nil {
		return JobBody{}, 0, err
	}
	ns, err := ParseExecution(jb.Execution)
	return jb, ns, err
}

// Representable times: what fits in int64 ns since the epoch.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// rfc3339 is RFC 3339's date-time with at most nine fraction digits:
// time.Parse also takes offsets of 24 hours, a comma before the fraction
// and more digits than a ns (dropping them), which the API refuses.
var rfc3339 = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$`)

// ParseExecution reads "execution": an RFC 3339 time (its offset applied:
// 12:00:00+02:00 is 10:00:00Z) or an integer of ns since the Unix epoch.
func ParseExecution(raw json.RawMessage) (int64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, errorf(http.StatusBadRequest, `missing "execution"`)
	}
	bad := func(why string) error {
		return errorf(http.StatusBadRequest, fmt.Sprintf(`invalid "execution" %s: %s`, truncate(string(raw), 80), why))
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, bad("not a JSON string")
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || !rfc3339.MatchString(s) {
			return 0, bad("want an RFC 3339 time such as 2026-03-30T14:00:00Z or 2026-03-30T16:00:00+02:00")
		}
		if t.Before(minTime) || t.After(maxTime) {
			return 0, bad("outside the years 1678 to 2262")
		}
		return t.UnixNano(), nil
	}
	ns, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, bad("want an RFC 3339 string or an integer of ns since the Unix epoch")
	}
	return ns, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
