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
