package httpapi

import (
	"math"
	"net/url"
	"strconv"
	"strings"
)

// Query values are parsed strictly: a value that is present but not what
// the parameter takes is a 400 naming the parameter, the value and what is
// allowed; an absent (or empty) value is the default.

// QueryInt parses name as an integer in [lo, hi]; def when absent.
func QueryInt(q url.Values, name string, def, lo, hi int) (int, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		if lo == math.MinInt && hi == math.MaxInt {
			return 0, BadRequest("bad %s %q: want an integer", name, s)
		}
		return 0, BadRequest("bad %s %q: want an integer from %d to %d", name, s, lo, hi)
	}
	return n, nil
}

// QueryUint64 parses name as an unsigned integer; def when absent.
func QueryUint64(q url.Values, name string, def uint64) (uint64, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, BadRequest("bad %s %q: want an unsigned integer", name, s)
	}
	return n, nil
}

// QueryBool parses name as 1/0/true/false (as nats-server does); def when
// absent.
func QueryBool(q url.Values, name string, def bool) (bool, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, BadRequest("bad %s %q: want 1, 0, true or false", name, s)
	}
	return b, nil
}

// QueryEnum parses name as one of allowed; def when absent.
func QueryEnum(q url.Values, name, def string, allowed []string) (string, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	for _, a := range allowed {
		if s == a {
			return s, nil
		}
	}
	return "", BadRequest("bad %s %q: want one of %s", name, s, strings.Join(allowed, ", "))
}
