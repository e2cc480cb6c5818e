package runner

import (
	"net/url"
	"sort"
	"strings"
)

// redactedPassword replaces passwords in URLs and error texts.
const redactedPassword = "xxxxx"

// redact returns raw with the password of its userinfo replaced by xxxxx:
// "redis://user:secret@host:6379/2" → "redis://user:xxxxx@host:6379/2".
// A userinfo without ':' (a bare user) is kept. Everything else of raw is
// kept byte for byte (no re-encoding).
//
// For a string url.Parse accepts, the userinfo is exactly what the clients
// (net/http, go-redis options built from url.Parse, amqp091) will use. For a
// string it rejects (e.g. a raw '/', '?' or '#' inside the password), the
// last '@' after the scheme ends the userinfo: this may over-redact a strange
// URL but never leaks its password.
func redact(raw string) string {
	start, end, ok := passwordSpan(raw)
	if !ok {
		return raw
	}
	return raw[:start] + redactedPassword + raw[end:]
}

// passwordSpan locates the password of raw's userinfo as raw[start:end].
func passwordSpan(raw string) (start, end int, ok bool) {
	authStart := 0
	if i := strings.Index(raw, "://"); i >= 0 {
		authStart = i + 3
	}
	rest := raw[authStart:]
	var at int
	if u, err := url.Parse(raw); err == nil && strings.Contains(raw, "://") {
		if u.User == nil {
			return 0, 0, false
		}
		if _, has := u.User.Password(); !has {
			return 0, 0, false
		}
		authEnd := strings.IndexAny(rest, "/?#")
		if authEnd < 0 {
			authEnd = len(rest)
		}
		at = strings.LastIndexByte(rest[:authEnd], '@')
	} else {
		at = strings.LastIndexByte(rest, '@')
	}
	if at < 0 {
		return 0, 0, false
	}
	colon := strings.IndexByte(rest[:at], ':')
	if colon < 0 {
		return 0, 0, false
	}
	return authStart + colon + 1, authStart + at, true
}

// secretsOf lists the forms of raw's password that may show up in an error
// text: as written in raw, percent-decoded, and re-encoded.
func secretsOf(raw string) []string {
	start, end, ok := passwordSpan(raw)
	if !ok || start == end {
		return nil
	}
	written := raw[start:end]
	out := []string{written}
	if dec, err := url.PathUnescape(written); err == nil && dec != written {
		out = append(out, dec)
	}
	if dec, err := url.QueryUnescape(written); err == nil && dec != written {
		out = append(out, dec)
	}
	for _, s := range append([]string(nil), out...) {
		out = append(out, url.QueryEscape(s), url.PathEscape(s), url.UserPassword("u", s).String()[2:])
	}
	return out
}

// scrub removes the credentials of URL raw from text: raw itself is replaced
// by its redacted form and any remaining occurrence of its password (in any
// encoding) by xxxxx. A very short password may garble the text; it never
// leaks. The redacted URL itself is kept intact even when it contains the
// password string elsewhere (guest:guest → guest:xxxxx).
func scrub(text, raw string) string {
	if text == "" || raw == "" {
		return text
	}
	secrets := secretsOf(raw)
	if len(secrets) == 0 {
		return text
	}
	// Longest first so that a form containing another is replaced whole.
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	red := redact(raw)
	parts := strings.Split(strings.ReplaceAll(text, raw, red), red)
	for i, p := range parts {
		for _, s := range secrets {
			if s != "" && s != redactedPassword {
				p = strings.ReplaceAll(p, s, redactedPassword)
			}
		}
		parts[i] = p
	}
	return strings.Join(parts, red)
}
