package protocol

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

const nsPerSecond int64 = 1e9

// TimestampForms names the accepted forms, for error reasons.
const TimestampForms = `want nanoseconds since the epoch, "YYYY-MM-DD HH:MM:SS" (UTC) or RFC 3339`

var errMissingTimestamp = errors.New("missing timestamp: " + TimestampForms)

// ParseTimestamp reads the execution time of a SET from the tokens after the
// job id and returns it in ns since the Unix epoch, with the number of
// tokens it took (1, or 2 for a two-token datetime). Accepted forms
// (docs/protocol.md, "Timestamps"):
//
//   - an integer of ns: optional + or -, decimal digits, with `_` allowed
//     between digits as Zig's integer parser does (`1_700_000_000_000_000_000`;
//     `_1` and `1_` are not numbers);
//   - a UTC datetime `YYYY-MM-DD HH:MM:SS`, as two tokens or as one quoted
//     token holding the space;
//   - an RFC 3339 time, `2030-01-01T00:00:00Z` or with an offset
//     (`2030-01-01T02:00:00+02:00`) and optional fractional seconds: tock's
//     extension, which ztick clients never send.
//
// Dates are checked for real (month 1-12, the day exists in that month, leap
// years by the Gregorian rule, hour <= 23, minute and second <= 59, year
// 0001-9999), and the result must fit in int64 ns (years 1678-2262).
// Anything else is an error naming the accepted forms: ztick silently used
// 0, which ran the job at once.
func ParseTimestamp(tokens []string) (ns int64, used int, err error) {
	if len(tokens) == 0 {
		return 0, 0, errMissingTimestamp
	}
	t := tokens[0]
	switch {
	case len(t) == 19 && t[10] == ' ' && isDateShape(t[:10]):
		ns, err := parseDatetime(t[:10], t[11:])
		return ns, 1, err
	case len(t) > 10 && (t[10] == 'T' || t[10] == 't') && isDateShape(t[:10]):
		ns, err := parseRFC3339(t)
		return ns, 1, err
	case isDateShape(t):
		if len(tokens) < 2 {
			return 0, 0, invalidTimestamp(t, `missing time of day: want "YYYY-MM-DD HH:MM:SS" (UTC)`)
		}
		ns, err := parseDatetime(t, tokens[1])
		return ns, 2, err
	}
	ns, ok := parseZigInt(t)
	if !ok {
		return 0, 0, invalidTimestamp(t, TimestampForms)
	}
	return ns, 1, nil
}

func invalidTimestamp(text, why string) error {
	return fmt.Errorf("invalid timestamp %q: %s", text, why)
}

// Bounds of int64 nanoseconds as times.
var (
	minNanoTime = time.Unix(0, math.MinInt64)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

// parseRFC3339 parses an RFC 3339 time; its offset is honoured.
func parseRFC3339(s string) (int64, error) {
	tm, err := time.Parse(time.RFC3339Nano, strings.ToUpper(s))
	if err != nil {
		var pe *time.ParseError
		if errors.As(err, &pe) && strings.Contains(pe.Message, "out of range") {
			return 0, invalidTimestamp(s, strings.TrimPrefix(pe.Message, ": "))
		}
		return 0, invalidTimestamp(s, "want RFC 3339, like 2030-01-01T00:00:00Z or 2030-01-01T02:00:00+02:00")
	}
	if tm.Before(minNanoTime) || tm.After(maxNanoTime) {
		return 0, invalidTimestamp(s, "out of range for int64 nanoseconds")
	}
	return tm.UnixNano(), nil
}

// isDateShape reports whether s looks like YYYY-MM-DD, the shape that makes
// ztick read a second token as the time of day.
func isDateShape(s string) bool { return len(s) == 10 && s[4] == '-' && s[7] == '-' }

// parseDatetime parses date "YYYY-MM-DD" and clock "HH:MM:SS" as UTC.
func parseDatetime(date, clock string) (int64, error) {
	bad := func(why string) error { return invalidTimestamp(date+" "+clock, why) }
	if len(clock) != 8 || clock[2] != ':' || clock[5] != ':' {
		return 0, bad(`want "YYYY-MM-DD HH:MM:SS" (UTC)`)
	}
	y, ok1 := digits(date[0:4])
	mo, ok2 := digits(date[5:7])
	d, ok3 := digits(date[8:10])
	h, ok4 := digits(clock[0:2])
	mi, ok5 := digits(clock[3:5])
	s, ok6 := digits(clock[6:8])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return 0, bad(`want "YYYY-MM-DD HH:MM:SS" (UTC)`)
	}
	switch {
	case y < 1:
		return 0, bad("year out of range")
	case mo < 1 || mo > 12:
		return 0, bad("month out of range")
	case d < 1 || d > daysIn(y, mo):
		return 0, bad("day out of range")
	case h > 23:
		return 0, bad("hour out of range")
	case mi > 59:
		return 0, bad("minute out of range")
	case s > 59:
		return 0, bad("second out of range")
	}
	sec := time.Date(y, time.Month(mo), d, h, mi, s, 0, time.UTC).Unix()
	if sec > math.MaxInt64/nsPerSecond || sec < math.MinInt64/nsPerSecond {
		return 0, bad("out of range for int64 nanoseconds")
	}
	return sec * nsPerSecond, nil
}

// digits parses s, which must be all ASCII digits.
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// parseZigInt parses a base-10 int64 the way Zig's std.fmt.parseInt does:
// an optional sign, then digits, with `_` allowed anywhere except first and
// last (after the sign).
// minInt64Div10 is the least n for which n*10 may still be >= MinInt64.
const minInt64Div10 = math.MinInt64 / 10

func parseZigInt(s string) (int64, bool) {
	neg := false
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' {
		return 0, false
	}
	// Accumulate as a negative number so that MinInt64 parses.
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' {
			continue
		}
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		// n*10 - d >= MinInt64, without a division per digit.
		if n < minInt64Div10 || n == minInt64Div10 && d > -(math.MinInt64%10) {
			return 0, false
		}
		n = n*10 - d
	}
	if !neg {
		if n == math.MinInt64 {
			return 0, false
		}
		n = -n
	}
	return n, true
}
