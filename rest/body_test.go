package rest

import (
	"encoding/json"
	"testing"

	"github.com/tockd/tock/httpapi"
)

// TestParseExecutionIsRFC3339: what RFC 3339 (and docs/rest.md) allow is
// read exactly, offsets applied; what they do not is 400 naming
// "execution", even where Go's time.Parse is lenient (an offset of 24
// hours, more than nine fraction digits, a comma before the fraction).
func TestParseExecutionIsRFC3339(t *testing.T) {
	ok := map[string]int64{
		`"2026-03-30T16:00:00+02:00"`:           1774879200000000000,
		`"2026-03-30T14:00:00Z"`:                1774879200000000000,
		`"2026-03-30T14:00:00.000000001Z"`:      1774879200000000001,
		`"2026-03-30T14:00:00.5-00:00"`:         1774879200500000000,
		`"2026-03-30T14:00:00.123456789+23:59"`: 1774792860123456789,
		`1774879200000000000`:                   1774879200000000000,
		`-1`:                                    -1,
	}
	for in, want := range ok {
		got, err := ParseExecution(json.RawMessage(in))
		if err != nil || got != want {
			t.Errorf("ParseExecution(%s) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{
		`"2026-03-30T14:00:00+24:00"`,       // offset hours are 00-23
		`"2026-03-30T14:00:00-24:00"`,       //
		`"2026-03-30T14:00:00.1234567891Z"`, // a fraction of a ns
		`"2026-03-30T14:00:00,5Z"`,          // RFC 3339 fractions start with "."
		`"2026-03-30T14:00:00."`,            //
		`"2026-03-30T14:00:00"`,             // no offset
		`"2026-12-31T23:59:60Z"`,            // a leap second: not representable
		`"0000-01-01T00:00:00Z"`,            // outside int64 ns
		`1.5`, `1e3`, `9223372036854775808`, `"tomorrow"`, `true`,
	} {
		_, err := ParseExecution(json.RawMessage(in))
		if err == nil || httpapi.StatusOf(err) != 400 {
			t.Errorf("ParseExecution(%s) = %v, want a 400", in, err)
		}
	}
}

// TestBodyKeysAreExact: encoding/json matches keys case-insensitively
// (Unicode folding too: "ſ" is "s") and lets a repeated key overwrite the
// first, so {"pattern": "a.", "PATTERN": "b."} would be read as pattern
// "b." by tock while another reader of the same body (a proxy, an audit
// log) sees "a.". Bodies must spell each key exactly, once.
func TestBodyKeysAreExact(t *testing.T) {
	for _, body := range []string{
		`{"execution": 1, "execution": 2}`,
		`{"EXECUTION": 1}`,
		`{"Execution": 1}`,
		`{"execution": 1, "ID": "x"}`,
	} {
		_, _, err := ParseJobBody([]byte(body))
		if err == nil || httpapi.StatusOf(err) != 400 {
			t.Errorf("ParseJobBody(%s) = %v, want a 400", body, err)
		}
	}
	for _, body := range []string{
		`{"pattern": "a.", "pattern": "b.", "runner": {"type": "shell", "command": "x"}}`,
		`{"pattern": "a.", "PATTERN": "b.", "runner": {"type": "shell", "command": "x"}}`,
		`{"pattern": "a.", "runner": {"type": "shell", "command": "x", "command": "y"}}`,
		`{"pattern": "a.", "runner": {"type": "shell", "Command": "x"}}`,
		`{"pattern": "a.", "runner": {"type": "redi\u017f", "url": "redis://h", "command": "SET", "key": "k"}}`,
		"{\"pattern\": \"a.\", \"runner\": {\"type\": \"redis\", \"url\": \"redis://h\", \"command\": \"SET\", \"\u212aey\": \"k\"}}",
		`{"pattern": "a.", "runner": {"type": "shell", "command": "x"}, "runner": {"type": "shell", "command": "y"}}`,
	} {
		_, err := ParseRuleBody([]byte(body), "a.x")
		if err == nil || httpapi.StatusOf(err) != 400 {
			t.Errorf("ParseRuleBody(%s) = %v, want a 400", body, err)
		}
	}
	if _, err := ParseRuleBody([]byte(`{"pattern": "a.", "runner": {"type": "direct", "executable": "x", "args": ["{\"A\": 1, \"A\": 2}"]}}`), "a.x"); err != nil {
		t.Errorf("keys inside strings are text: %v", err)
	}
}

// TestBodyIsUTF8: JSON text is UTF-8 (RFC 8259); encoding/json would turn
// each bad byte into U+FFFD, so a rule's pattern or command would silently
// be other bytes than the client sent. Such a body is 400.
func TestBodyIsUTF8(t *testing.T) {
	for _, body := range []string{
		"{\"pattern\": \"a.\xff\", \"runner\": {\"type\": \"shell\", \"command\": \"x\"}}",
		"{\"pattern\": \"a.\", \"runner\": {\"type\": \"shell\", \"command\": \"echo \xc3\"}}",
	} {
		_, err := ParseRuleBody([]byte(body), "a.x")
		if err == nil || httpapi.StatusOf(err) != 400 {
			t.Errorf("ParseRuleBody(%q) = %v, want a 400", body, err)
		}
	}
	if _, _, err := ParseJobBody([]byte("{\"execution\": \"2026-03-30T14:00:00Z\xfe\"}")); err == nil {
		t.Error("a job body with a bad byte was accepted")
	}
	if _, err := ParseRuleBody([]byte(`{"pattern": "a.\u00e9", "runner": {"type": "shell", "command": "echo \ufffd"}}`), "a.x"); err != nil {
		t.Errorf("valid UTF-8 refused: %v", err)
	}
}
