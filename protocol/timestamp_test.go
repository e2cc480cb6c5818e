package protocol

import (
	"math"
	"strings"
	"testing"
)

// TestParseTimestamp covers ztick's forms plus tock's fix (anything that is
// not a timestamp is an error naming the accepted forms, instead of 0) and
// extension (RFC 3339 with offsets).
func TestParseTimestamp(t *testing.T) {
	tests := []struct {
		name   string
		tokens []string
		want   int64
		err    string // substring of the error; "" = must succeed
	}{
		{"ztick datetime example", []string{"2026-03-30", "14:00:00"}, 1774879200000000000, ""},
		{"ztick integer example", []string{"1711612800000000000"}, 1711612800000000000, ""},
		{"quoted datetime one token", []string{"2026-03-30 14:00:00"}, 1774879200000000000, ""},
		{"extra tokens after integer left to the caller", []string{"123", "foo"}, 123, ""},
		{"extra tokens after datetime left to the caller", []string{"2026-03-30", "14:00:00", "x"}, 1774879200000000000, ""},
		{"rfc3339 utc", []string{"2030-01-01T00:00:00Z"}, 1893456000000000000, ""},
		{"rfc3339 lower case", []string{"2030-01-01t00:00:00z"}, 1893456000000000000, ""},
		{"rfc3339 positive offset", []string{"2030-01-01T02:00:00+02:00"}, 1893456000000000000, ""},
		{"rfc3339 negative offset", []string{"2029-12-31T19:00:00-05:00"}, 1893456000000000000, ""},
		{"rfc3339 nanoseconds", []string{"2030-01-01T00:00:00.000000001Z"}, 1893456000000000001, ""},
		{"rfc3339 before epoch", []string{"1969-12-31T23:59:59Z"}, -1e9, ""},
		{"zero", []string{"0"}, 0, ""},
		{"plus sign", []string{"+42"}, 42, ""},
		{"negative", []string{"-42"}, -42, ""},
		{"underscores", []string{"1_700_000_000_000_000_000"}, 1700000000000000000, ""},
		{"double underscore as zig", []string{"1__0"}, 10, ""},
		{"max int64", []string{"9223372036854775807"}, math.MaxInt64, ""},
		{"min int64", []string{"-9223372036854775808"}, math.MinInt64, ""},
		{"epoch", []string{"1970-01-01", "00:00:00"}, 0, ""},
		{"before epoch", []string{"1969-12-31", "23:59:59"}, -1e9, ""},
		{"leap day 2024", []string{"2024-02-29", "00:00:00"}, 1709164800000000000, ""},
		{"leap day 2000", []string{"2000-02-29", "12:00:00"}, 951825600000000000, ""},
		{"end of day", []string{"2026-12-31", "23:59:59"}, 1798761599000000000, ""},
		{"latest representable second", []string{"2262-04-11", "23:47:16"}, 9223372036000000000, ""},
		{"earliest representable second", []string{"1677-09-21", "00:12:44"}, -9223372036000000000, ""},

		{"missing", nil, 0, "missing timestamp: " + TimestampForms},
		{"garbage", []string{"abc"}, 0, `invalid timestamp "abc": ` + TimestampForms},
		{"empty token", []string{""}, 0, `invalid timestamp ""`},
		{"sign only", []string{"-"}, 0, `invalid timestamp "-"`},
		{"leading underscore", []string{"_1"}, 0, `invalid timestamp "_1"`},
		{"trailing underscore", []string{"1_"}, 0, `invalid timestamp "1_"`},
		{"underscore after sign", []string{"+_1"}, 0, `invalid timestamp "+_1"`},
		{"double sign", []string{"--1"}, 0, `invalid timestamp "--1"`},
		{"float", []string{"1.5"}, 0, `invalid timestamp "1.5"`},
		{"hex", []string{"0x10"}, 0, `invalid timestamp "0x10"`},
		{"trailing CR", []string{"123\r"}, 0, `invalid timestamp "123\r"`},
		{"overflow", []string{"9223372036854775808"}, 0, `invalid timestamp "9223372036854775808"`},
		{"negative overflow", []string{"-9223372036854775809"}, 0, "invalid timestamp"},
		{"huge", []string{"99999999999999999999999"}, 0, "invalid timestamp"},
		{"date without time", []string{"2026-03-30"}, 0, `invalid timestamp "2026-03-30": missing time of day: want "YYYY-MM-DD HH:MM:SS" (UTC)`},
		{"bad time shape", []string{"2026-03-30", "14:00"}, 0, `invalid timestamp "2026-03-30 14:00"`},
		{"non digit in date", []string{"2026-0x-30", "14:00:00"}, 0, `want "YYYY-MM-DD HH:MM:SS" (UTC)`},
		{"non digit in time", []string{"2026-03-30", "1a:00:00"}, 0, `want "YYYY-MM-DD HH:MM:SS" (UTC)`},
		{"month 0", []string{"2026-00-10", "00:00:00"}, 0, "month out of range"},
		{"month 13", []string{"2026-13-10", "00:00:00"}, 0, "month out of range"},
		{"day 0", []string{"2026-03-00", "00:00:00"}, 0, "day out of range"},
		{"day 32", []string{"2026-01-32", "00:00:00"}, 0, "day out of range"},
		{"april 31", []string{"2026-04-31", "00:00:00"}, 0, "day out of range"},
		{"feb 29 non leap", []string{"2026-02-29", "00:00:00"}, 0, "day out of range"},
		{"feb 29 1900 not leap", []string{"1900-02-29", "00:00:00"}, 0, "day out of range"},
		{"feb 30 leap year", []string{"2024-02-30", "00:00:00"}, 0, "day out of range"},
		{"hour 24", []string{"2026-03-30", "24:00:00"}, 0, "hour out of range"},
		{"minute 60", []string{"2026-03-30", "10:60:00"}, 0, "minute out of range"},
		{"second 60", []string{"2026-03-30", "10:00:60"}, 0, "second out of range"},
		{"year 0", []string{"0000-01-01", "00:00:00"}, 0, "year out of range"},
		{"year 1 overflows ns", []string{"0001-01-01", "00:00:00"}, 0, "out of range for int64 nanoseconds"},
		{"year 9999 overflows ns", []string{"9999-12-31", "23:59:59"}, 0, "out of range for int64 nanoseconds"},
		{"just past int64", []string{"2262-04-11", "23:47:17"}, 0, "out of range for int64 nanoseconds"},
		{"just before int64", []string{"1677-09-21", "00:12:43"}, 0, "out of range for int64 nanoseconds"},
		{"rfc3339 without zone", []string{"2026-03-30T14:00:00"}, 0, "want RFC 3339, like 2030-01-01T00:00:00Z"},
		{"rfc3339 bad month", []string{"2026-13-30T14:00:00Z"}, 0, "month out of range"},
		{"rfc3339 hour 24", []string{"2026-03-30T24:00:00Z"}, 0, "hour out of range"},
		{"rfc3339 past int64", []string{"2262-04-11T23:47:17Z"}, 0, "out of range for int64 nanoseconds"},
		{"rfc3339 before int64", []string{"1677-09-21T00:12:43Z"}, 0, "out of range for int64 nanoseconds"},
		{"rfc3339 offset moves past int64", []string{"2262-04-11T23:47:16-01:00"}, 0, "out of range for int64 nanoseconds"},
		{"rfc3339 junk after", []string{"2030-01-01T00:00:00Zjunk"}, 0, "want RFC 3339"},
		{"quoted datetime with two spaces", []string{"2026-03-30  14:00:00"}, 0, "invalid timestamp"},
		{"timezone suffix", []string{"2026-03-30", "14:00:00Z"}, 0, "invalid timestamp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, used, err := ParseTimestamp(tt.tokens)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseTimestamp(%q) = %d, %v; want error containing %q", tt.tokens, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseTimestamp(%q) = %d, %v; want %d", tt.tokens, got, err, tt.want)
			}
			wantUsed := 1
			if isDateShape(tt.tokens[0]) {
				wantUsed = 2
			}
			if used != wantUsed {
				t.Fatalf("ParseTimestamp(%q) used %d tokens, want %d", tt.tokens, used, wantUsed)
			}
		})
	}
}
