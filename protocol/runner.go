package protocol

import (
	"fmt"
	"strings"

	"github.com/tockd/tock/store"
)

// maxAMQPName is AMQP's shortstr limit for exchange and routing key.
const maxAMQPName = 255

// runnerList names every runner, for error reasons.
const runnerList = "shell, amqp, direct, awf, http or redis"

// parseRunner checks RULE SET's runner grammar (reference ztick.md §1.7) and
// returns the runner with its arguments in store.Runner order, or a reason.
func parseRunner(kind string, args []string) (store.Runner, string) {
	k, ok := store.ParseRunnerKind(kind)
	if !ok {
		return store.Runner{}, fmt.Sprintf("unknown runner %q: want %s", kind, runnerList)
	}
	var (
		out []string
		why string
	)
	switch k {
	case store.RunnerShell:
		out, why = shellArgs(args)
	case store.RunnerAMQP:
		out, why = amqpArgs(args)
	case store.RunnerDirect:
		out, why = directArgs(args)
	case store.RunnerAWF:
		out, why = awfArgs(args)
	case store.RunnerHTTP:
		out, why = httpArgs(args)
	case store.RunnerRedis:
		out, why = redisArgs(args)
	}
	if why == "" {
		why = checkArgSizes(out)
	}
	if why != "" {
		return store.Runner{}, "invalid runner: " + why
	}
	return store.Runner{Kind: k, Args: out}, ""
}

// shellArgs joins every token into the command, so `shell echo hi` runs
// `echo hi` (ztick kept only the first token) and a quoted command is one
// token as in ztick.
func shellArgs(args []string) ([]string, string) {
	cmd := strings.Join(args, " ")
	if cmd == "" {
		return nil, "shell needs a command"
	}
	return []string{cmd}, ""
}

func amqpArgs(args []string) ([]string, string) {
	switch {
	case len(args) < 3:
		return nil, "amqp needs a dsn, an exchange and a routing key"
	case !strings.HasPrefix(args[0], "amqp://"):
		return nil, "amqp dsn must start with amqp://"
	case len(args[1]) > maxAMQPName:
		return nil, "amqp exchange is longer than 255 bytes"
	case len(args[2]) > maxAMQPName:
		return nil, "amqp routing key is longer than 255 bytes"
	case len(args) > 3:
		return nil, fmt.Sprintf("unexpected token %q: amqp takes a dsn, an exchange and a routing key", args[3])
	}
	return clone(args[:3]), ""
}

func directArgs(args []string) ([]string, string) {
	if len(args) == 0 || args[0] == "" {
		return nil, "direct needs an executable"
	}
	return clone(args), ""
}

// awfArgs reads `<workflow> [--input k=v]...` and keeps the workflow and the
// k=v values.
func awfArgs(args []string) ([]string, string) {
	if len(args) == 0 || args[0] == "" {
		return nil, "awf needs a workflow"
	}
	rest := args[1:]
	if len(rest)%2 != 0 {
		return nil, "awf inputs must be pairs of --input key=value"
	}
	out := make([]string, 1, 1+len(rest)/2)
	out[0] = args[0]
	for i := 0; i < len(rest); i += 2 {
		if rest[i] != "--input" {
			return nil, fmt.Sprintf("awf expects --input, got %q", rest[i])
		}
		out = append(out, rest[i+1])
	}
	return out, ""
}

func httpArgs(args []string) ([]string, string) {
	if len(args) < 2 {
		return nil, "http needs a method and a url"
	}
	switch args[0] {
	case "GET", "POST", "PUT", "DELETE":
	default:
		return nil, fmt.Sprintf("http method %q is not one of GET, POST, PUT, DELETE", args[0])
	}
	if !strings.HasPrefix(args[1], "http://") && !strings.HasPrefix(args[1], "https://") {
		return nil, "http url must start with http:// or https://"
	}
	if len(args) > 2 {
		return nil, fmt.Sprintf("unexpected token %q: http takes a method and a url", args[2])
	}
	return clone(args[:2]), ""
}

func redisArgs(args []string) ([]string, string) {
	if len(args) < 3 {
		return nil, "redis needs a url, a command and a key"
	}
	if !strings.HasPrefix(args[0], "redis://") {
		return nil, "redis url must start with redis://"
	}
	switch args[1] {
	case "PUBLISH", "RPUSH", "LPUSH", "SET":
	default:
		return nil, fmt.Sprintf("redis command %q is not one of PUBLISH, RPUSH, LPUSH, SET", args[1])
	}
	if len(args) > 3 {
		return nil, fmt.Sprintf("unexpected token %q: redis takes a url, a command and a key", args[3])
	}
	return clone(args[:3]), ""
}

// checkArgSizes enforces the on-disk limits: u16 lengths and a u16 count.
func checkArgSizes(args []string) string {
	if len(args) > MaxIDLen+1 {
		return "too many arguments"
	}
	for _, a := range args {
		if len(a) > MaxIDLen {
			return "argument too long"
		}
	}
	return ""
}

func clone(s []string) []string { return append([]string(nil), s...) }

// appendRunner writes `<type> <args...>` as RULE SET takes them (awf inputs
// get their `--input` back). With redact, credentials are removed from the
// URL or DSN of http, amqp and redis runners.
func appendRunner(dst []byte, r store.Runner, redact bool) []byte {
	dst = append(dst, r.Kind.String()...)
	for i, a := range r.Args {
		dst = append(dst, ' ')
		if r.Kind == store.RunnerAWF && i > 0 {
			dst = append(dst, "--input "...)
		}
		if redact && isURLArg(r.Kind, i) {
			a = RedactURL(a)
		}
		dst = AppendToken(dst, a)
	}
	return dst
}

func isURLArg(k store.RunnerKind, i int) bool {
	switch k {
	case store.RunnerHTTP:
		return i == 1
	case store.RunnerAMQP, store.RunnerRedis:
		return i == 0
	}
	return false
}

// RedactURL removes the password from a URL or DSN:
// `redis://user:secret@host/0` becomes `redis://user@host/0`, and
// `redis://:secret@host` becomes `redis://host`. Text that is not of the form
// scheme://... is returned unchanged. When it is unclear whether a `:` starts
// a port or a password (a password holding `/` or `?`), the text after it is
// treated as a password: showing too little beats leaking a secret.
func RedactURL(s string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	scheme, rest := s[:i+3], s[i+3:]
	end := strings.IndexAny(rest, ":@/?#")
	first := strings.IndexByte(rest, '@')
	switch {
	case end < 0 || first < 0 || first < end:
		return s // no userinfo
	case rest[end] == '/' || rest[end] == '?' || rest[end] == '#':
		return s // the authority ends before any @: no userinfo
	case rest[end] == ':' && isPortThenPath(rest[end+1:first]):
		return s // host:port/path@..., the @ is in the path
	}
	// The userinfo ends at the last @ before the path of what follows the
	// first @, as url.Parse (and so every runner's client) reads it: an @
	// in the password, or in the user before the password's colon
	// (u@x:secret@host), is covered; one in the path is not.
	authEnd := len(rest)
	if j := strings.IndexAny(rest[first:], "/?#"); j >= 0 {
		authEnd = first + j
	}
	at := strings.LastIndexByte(rest[:authEnd], '@')
	colon := strings.IndexByte(rest[:at], ':')
	if colon < 0 {
		return s // a user without password
	}
	user := rest[:colon]
	if user == "" {
		return scheme + rest[at+1:]
	}
	return scheme + user + "@" + rest[at+1:]
}

// isPortThenPath reports whether s, the text between the first `:` and the
// first `@`, starts with a port number ended by a path, query or fragment.
func isPortThenPath(s string) bool {
	j := strings.IndexAny(s, "/?#")
	if j <= 0 {
		return false
	}
	for k := 0; k < j; k++ {
		if s[k] < '0' || s[k] > '9' {
			return false
		}
	}
	return true
}
