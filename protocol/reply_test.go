package protocol

import (
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/tockd/tock/store"
)

func TestAppendReplies(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"ok", AppendOK(nil, "r1"), "r1 OK\n"},
		{"ok bare", AppendOK(nil, ""), "OK\n"},
		{"ok quoted rid", AppendOK(nil, "r 1"), "\"r 1\" OK\n"},
		{"ok body", AppendOKBody(nil, "r5", "planned 1774879200000000000"), "r5 OK planned 1774879200000000000\n"},
		{"ok empty body", AppendOKBody(nil, "r5", ""), "r5 OK\n"},
		{"ok body newline", AppendOKBody(nil, "r5", "a\nb\rc"), "r5 OK a b c\n"},
		{"error", AppendError(nil, "r1", "not found"), "r1 ERROR not found\n"},
		{"error bare", AppendError(nil, "", "empty line"), "ERROR empty line\n"},
		{"error no reason", AppendError(nil, "r1", ""), "r1 ERROR\n"},
		{"error newline in reason", AppendError(nil, "r1", "bad\nthing\r"), "r1 ERROR bad thing \n"},
		{"get", AppendGet(nil, "r5", store.Planned, 1774879200000000000), "r5 OK planned 1774879200000000000\n"},
		{"get failed negative", AppendGet(nil, "r5", store.Failed, -1), "r5 OK failed -1\n"},
		{"query line", AppendQueryLine(nil, "q", "backup.daily", store.Executed, 12), "q backup.daily executed 12\n"},
		{"query line quoted id", AppendQueryLine(nil, "q", "a b", store.Triggered, 0), "q \"a b\" triggered 0\n"},
		{"stat line", AppendStatLine(nil, "req-1", "uptime_ns", "60000000000"), "req-1 uptime_ns 60000000000\n"},
		{"stat line word", AppendStatLine(nil, "req-1", "persistence", "logfile"), "req-1 persistence logfile\n"},
		{"appends to dst", AppendOK([]byte("x OK\n"), "y"), "x OK\ny OK\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.got) != tt.want {
				t.Fatalf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

// TestAppendRuleLine covers LISTRULES rendering (ztick.md §1.5) with tock's
// fixes: tokens re-tokenize, passwords never shown (docs/protocol.md).
func TestAppendRuleLine(t *testing.T) {
	tests := []struct {
		name string
		r    store.Rule
		want string
	}{
		{"shell", rule("r", "p.", store.RunnerShell, "true"), "q r p. shell true\n"},
		{"shell with spaces", rule("r", "p.", store.RunnerShell, `echo "hi" \ x`), `q r p. shell "echo \"hi\" \\ x"` + "\n"},
		{"empty pattern", rule("r", "", store.RunnerShell, "true"), `q r "" shell true` + "\n"},
		{"direct", rule("rule.direct", "print.", store.RunnerDirect, "/bin/echo", "hello world"), `q rule.direct print. direct /bin/echo "hello world"` + "\n"},
		{"awf", rule("a", "app.", store.RunnerAWF, "generate-report", "format=pdf", "target=main"), "q a app. awf generate-report --input format=pdf --input target=main\n"},
		{"awf no inputs", rule("a", "app.", store.RunnerAWF, "code-review"), "q a app. awf code-review\n"},
		{"http", rule("h", "webhook.", store.RunnerHTTP, "POST", "https://hooks.example.com/notify"), "q h webhook. http POST https://hooks.example.com/notify\n"},
		{"http credentials", rule("h", "w.", store.RunnerHTTP, "GET", "https://bot:tok@h/x"), "q h w. http GET https://bot@h/x\n"},
		{"amqp credentials", rule("m", "e.", store.RunnerAMQP, "amqp://guest:guest@localhost:5672/prod", "ex", "rk"), "q m e. amqp amqp://guest@localhost:5672/prod ex rk\n"},
		{"redis credentials", rule("d", "d.", store.RunnerRedis, "redis://user:secret@h", "PUBLISH", "deploy:events"), "q d d. redis redis://user@h PUBLISH deploy:events\n"},
		{"redis password only", rule("d", "d.", store.RunnerRedis, "redis://:secret@h:6379/2", "SET", "k"), "q d d. redis redis://h:6379/2 SET k\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendRuleLine(nil, "q", tt.r)
			if string(got) != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			// The line re-tokenizes to rid, id, pattern, type, args; and,
			// read back as a RULE SET, gives the rule (minus passwords).
			toks, err := Tokenize(got[:len(got)-1], nil)
			if err != nil || toks[0] != "q" || toks[1] != tt.r.ID || toks[2] != tt.r.Pattern || toks[3] != tt.r.Runner.Kind.String() {
				t.Fatalf("line tokenizes to %q, %v", toks, err)
			}
			c, perr := Parse([]byte("q RULE SET " + string(got[2:len(got)-1])))
			if perr != nil {
				t.Fatalf("rule line does not parse as RULE SET: %v", perr)
			}
			if redacted := RedactURL(strings.Join(tt.r.Runner.Args, " ")) != strings.Join(tt.r.Runner.Args, " "); !redacted && !reflect.DeepEqual(c.Rule, tt.r) {
				t.Fatalf("RULE SET from line = %#v, want %#v", c.Rule, tt.r)
			}
			if strings.Contains(string(got), "secret") || strings.Contains(string(got), "guest:") || strings.Contains(string(got), ":tok") {
				t.Fatalf("password shown: %q", got)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"redis://user:secret@h", "redis://user@h"},
		{"redis://:secret@h", "redis://h"},
		{"redis://h:6379/0", "redis://h:6379/0"},
		{"redis://user@h:6379", "redis://user@h:6379"},
		{"redis://h", "redis://h"},
		{"amqp://guest:guest@localhost:5672/", "amqp://guest@localhost:5672/"},
		{"amqp://u:p@ss@host/v", "amqp://u@host/v"},
		{"amqp://u:pa/ss@host/v", "amqp://u@host/v"},
		{"amqp://u:pa?ss@host", "amqp://u@host"},
		{"http://u:p@host/a@b", "http://u@host/a@b"},
		{"http://host:8080/@user", "http://host:8080/@user"},
		{"http://host:8080/x?u=a:b@c", "http://host:8080/x?u=a:b@c"},
		{"https://example.com/path", "https://example.com/path"},
		{"not a url", "not a url"},
		{"user:pass@host", "user:pass@host"},
		{"", ""},
		// An @ before the password's colon: url.Parse (and so the redis,
		// amqp and http clients) takes the userinfo up to the last @, so
		// "u@x" is the user and "secret" the password.
		{"redis://u@x:secret@h", "redis://u@x@h"},
		{"amqp://g@x:secret@h:5672/v", "amqp://g@x@h:5672/v"},
		{"http://u@x:secret@h/p@q", "http://u@x@h/p@q"},
		{"redis://u@x@h:6379", "redis://u@x@h:6379"},
		{"redis://u@h:6379/a:b@c", "redis://u@h:6379/a:b@c"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		noPasswordLeft(t, tt.in)
	}
}

// noPasswordLeft checks RedactURL against the parser the runners' clients
// use: when url.Parse finds a password in s, it finds none in the
// redacted text (or cannot parse it). Runner URLs all have a scheme, and
// an empty password is no secret.
func noPasswordLeft(t *testing.T, s string) {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil || u.User == nil || u.Scheme == "" || strings.Index(s, "://") != len(u.Scheme) {
		return
	}
	if pw, _ := u.User.Password(); pw == "" {
		return
	}
	red := RedactURL(s)
	if v, err := url.Parse(red); err == nil && v.User != nil {
		if pw, _ := v.User.Password(); pw != "" {
			t.Errorf("RedactURL(%q) = %q still holds password %q", s, red, pw)
		}
	}
}

// FuzzRedactURL: whatever the text, a password url.Parse sees in it is
// gone from RedactURL's result.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{"redis://user:secret@h", "redis://u@x:secret@h", "amqp://u:p@ss@host/v",
		"http://host:8080/x?u=a:b@c", "redis://u:123/x@host", "http://u@h:1/a:b@c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { noPasswordLeft(t, s) })
}

func BenchmarkAppendGet(b *testing.B) {
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendGet(buf[:0], "r123", store.Planned, 1774879200000000000)
	}
}
