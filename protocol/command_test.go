package protocol

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tockd/tock/store"
)

func rule(id, pattern string, k store.RunnerKind, args ...string) store.Rule {
	return store.Rule{ID: id, Pattern: pattern, Runner: store.Runner{Kind: k, Args: args}}
}

func ruleSet(rid string, r store.Rule) Command {
	return Command{RID: rid, Op: OpRuleSet, ID: r.ID, Rule: r}
}

// TestParse covers every command of ztick.md §1.5 and docs/protocol.md.
func TestParse(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Command
	}{
		{"set integer", "r1 SET a.b 1711612800000000000", Command{RID: "r1", Op: OpSet, ID: "a.b", Execution: 1711612800000000000}},
		{"set datetime two tokens", "r1 SET a.b 2026-03-30 14:00:00", Command{RID: "r1", Op: OpSet, ID: "a.b", Execution: 1774879200000000000}},
		{"set datetime quoted", `A SET app.x "2026-03-30 14:00:00"`, Command{RID: "A", Op: OpSet, ID: "app.x", Execution: 1774879200000000000}},
		{"set quoted id with space", `r1 SET "a b" 5`, Command{RID: "r1", Op: OpSet, ID: "a b", Execution: 5}},
		{"set empty id", `r1 SET "" 5`, Command{RID: "r1", Op: OpSet, ID: "", Execution: 5}},
		{"set negative", "r1 SET j -5", Command{RID: "r1", Op: OpSet, ID: "j", Execution: -5}},
		{"set rfc3339 utc", "r1 SET j 2030-01-01T00:00:00Z", Command{RID: "r1", Op: OpSet, ID: "j", Execution: 1893456000000000000}},
		{"set rfc3339 offset", "r1 SET j 2030-01-01T02:00:00+02:00", Command{RID: "r1", Op: OpSet, ID: "j", Execution: 1893456000000000000}},
		{"set rfc3339 fraction", "r1 SET j 2030-01-01T00:00:00.5Z", Command{RID: "r1", Op: OpSet, ID: "j", Execution: 1893456000500000000}},
		{"rid that is a command", "GET GET j", Command{RID: "GET", Op: OpGet, ID: "j"}},
		{"get", "r5 GET a.b", Command{RID: "r5", Op: OpGet, ID: "a.b"}},
		{"query all", "q QUERY", Command{RID: "q", Op: OpQuery}},
		{"query prefix", "q QUERY backup.", Command{RID: "q", Op: OpQuery, Prefix: "backup."}},
		{"remove", "r REMOVE j", Command{RID: "r", Op: OpRemove, ID: "j"}},
		{"removerule", "r REMOVERULE ru", Command{RID: "r", Op: OpRemoveRule, ID: "ru"}},
		{"listrules", "r LISTRULES", Command{RID: "r", Op: OpListRules}},
		{"stat", "r STAT", Command{RID: "r", Op: OpStat}},
		{"bare auth", "AUTH sk_1", Command{Op: OpAuth, Secret: "sk_1", BareAuth: true}},
		{"bare auth quoted secret", `AUTH "s k"`, Command{Op: OpAuth, Secret: "s k", BareAuth: true}},
		{"auth with rid", "r1 AUTH s", Command{RID: "r1", Op: OpAuth, Secret: "s"}},
		{"quoted rid", `"r 1" STAT`, Command{RID: "r 1", Op: OpStat}},
		{"leading and trailing spaces", "   r  GET   j   ", Command{RID: "r", Op: OpGet, ID: "j"}},

		{"rule shell quoted", `r1 RULE SET r p. shell "echo \"hi\""`, ruleSet("r1", rule("r", "p.", store.RunnerShell, `echo "hi"`))},
		{"rule shell joined", "r1 RULE SET r p. shell /bin/echo hi  there", ruleSet("r1", rule("r", "p.", store.RunnerShell, "/bin/echo hi there"))},
		{"rule shell mixed", `r1 RULE SET r p. shell "echo a" b`, ruleSet("r1", rule("r", "p.", store.RunnerShell, "echo a b"))},
		{"rule empty pattern", `r1 RULE SET r "" shell true`, ruleSet("r1", rule("r", "", store.RunnerShell, "true"))},
		{"rule amqp", "r1 RULE SET r.a ev. amqp amqp://u:p@h:5672/v ex rk", ruleSet("r1", rule("r.a", "ev.", store.RunnerAMQP, "amqp://u:p@h:5672/v", "ex", "rk"))},
		{"rule direct", `r1 RULE SET rule.direct print. direct /bin/echo "hello world"`, ruleSet("r1", rule("rule.direct", "print.", store.RunnerDirect, "/bin/echo", "hello world"))},
		{"rule direct with args", "r1 RULE SET rule.curl fetch. direct /usr/bin/curl -s http://example.com", ruleSet("r1", rule("rule.curl", "fetch.", store.RunnerDirect, "/usr/bin/curl", "-s", "http://example.com"))},
		{"rule awf no inputs", "r1 RULE SET rule.awf app. awf code-review", ruleSet("r1", rule("rule.awf", "app.", store.RunnerAWF, "code-review"))},
		{"rule awf inputs", "r1 RULE SET rule.report report. awf generate-report --input format=pdf --input target=main", ruleSet("r1", rule("rule.report", "report.", store.RunnerAWF, "generate-report", "format=pdf", "target=main"))},
		{"rule http", "r1 RULE SET rule.http webhook. http POST https://hooks.example.com/notify", ruleSet("r1", rule("rule.http", "webhook.", store.RunnerHTTP, "POST", "https://hooks.example.com/notify"))},
		{"rule http get plain", "r1 RULE SET h x. http GET http://h/", ruleSet("r1", rule("h", "x.", store.RunnerHTTP, "GET", "http://h/"))},
		{"rule http put", "r1 RULE SET h x. http PUT http://h/", ruleSet("r1", rule("h", "x.", store.RunnerHTTP, "PUT", "http://h/"))},
		{"rule http delete", "r1 RULE SET h x. http DELETE http://h/", ruleSet("r1", rule("h", "x.", store.RunnerHTTP, "DELETE", "http://h/"))},
		{"rule redis publish", "r1 RULE SET rd deploy. redis redis://localhost:6379 PUBLISH deploy:events", ruleSet("r1", rule("rd", "deploy.", store.RunnerRedis, "redis://localhost:6379", "PUBLISH", "deploy:events"))},
		{"rule redis rpush", "r1 RULE SET rd b. redis redis://h RPUSH backup:tasks", ruleSet("r1", rule("rd", "b.", store.RunnerRedis, "redis://h", "RPUSH", "backup:tasks"))},
		{"rule redis lpush", "r1 RULE SET rd b. redis redis://h LPUSH k", ruleSet("r1", rule("rd", "b.", store.RunnerRedis, "redis://h", "LPUSH", "k"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, perr := Parse([]byte(tt.line))
			if perr != nil {
				t.Fatalf("Parse(%q) error %+v", tt.line, *perr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse(%q)\n got %#v\nwant %#v", tt.line, got, tt.want)
			}
			again, perr := Parse([]byte(FormatCommand(got)))
			if perr != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip of %q via %q: %#v, %v", tt.line, FormatCommand(got), again, perr)
			}
		})
	}
}

// TestParseErrors covers every reason Parse gives; each names what was
// expected (docs/protocol.md, "Errors").
func TestParseErrors(t *testing.T) {
	long := strings.Repeat("x", MaxIDLen+1)
	const cmds = "SET, GET, QUERY, REMOVE, RULE SET, REMOVERULE, LISTRULES, STAT, AUTH or INFO"
	tests := []struct {
		name   string
		line   string
		rid    string
		reason string
	}{
		{"blank", "", "", "empty line"},
		{"spaces only", "    ", "", "empty line"},
		{"single token", "r1", "r1", "missing command: want <rid> <command> [<args>], commands: " + cmds},
		{"empty request id", `"" GET j`, "", "empty request id"},
		{"unknown command", "r1 FOO", "r1", `unknown command "FOO": want ` + cmds},
		{"lower case set", "r1 set j 1", "r1", `unknown command "set": commands are upper case, did you mean "SET"?`},
		{"mixed case listrules", "r1 ListRules", "r1", `unknown command "ListRules": commands are upper case, did you mean "LISTRULES"?`},
		{"lower case rule set", "r1 rule set r p. shell x", "r1", `unknown command "rule set": commands are upper case, did you mean "RULE SET"?`},
		{"CR kept when parsed directly", "r1 STAT\r", "r1", `unknown command "STAT\r": want ` + cmds},
		{"unknown quoted with newline-like bytes", "r1 \"a\\\"b\"", "r1", `unknown command "a\"b": want ` + cmds},
		{"rule alone", "r1 RULE", "r1", `unknown command "RULE": did you mean "RULE SET"?`},
		{"rule get", "r1 RULE GET x", "r1", `unknown command "RULE GET": did you mean "RULE SET"?`},
		{"no rid set", "SET foo 0", "", "missing request id: want <rid> SET <job> <timestamp>"},
		{"no rid stat", "STAT", "", "missing request id: want <rid> STAT"},
		{"no rid get", "GET j", "", "missing request id: want <rid> GET <job>"},
		{"no rid rule set", "RULE SET r p. shell x", "", "missing request id: want <rid> RULE SET <rule> <pattern> <runner> <args...>"},
		{"set no id", "r1 SET", "r1", "missing job id: want <rid> SET <job> <timestamp>"},
		{"set no timestamp", "r1 SET j", "r1", "missing timestamp: " + TimestampForms},
		{"set bad timestamp", "r1 SET j abc", "r1", `invalid timestamp "abc": ` + TimestampForms},
		{"set bad date", "r1 SET j 2026-02-30 10:00:00", "r1", `invalid timestamp "2026-02-30 10:00:00": day out of range`},
		{"set quoted datetime bad", `r1 SET j "2026-13-01 10:00:00"`, "r1", `invalid timestamp "2026-13-01 10:00:00": month out of range`},
		{"set rfc3339 bad day", "r1 SET j 2030-02-30T00:00:00Z", "r1", `invalid timestamp "2030-02-30T00:00:00Z": day out of range`},
		{"set rfc3339 no zone", "r1 SET j 2030-01-01T00:00:00", "r1", `invalid timestamp "2030-01-01T00:00:00": want RFC 3339, like 2030-01-01T00:00:00Z or 2030-01-01T02:00:00+02:00`},
		{"set rfc3339 out of range", "r1 SET j 2300-01-01T00:00:00Z", "r1", `invalid timestamp "2300-01-01T00:00:00Z": out of range for int64 nanoseconds`},
		{"set trailing token", "r1 SET j 123 foo", "r1", `unexpected token "foo" after the command: want <rid> SET <job> <timestamp>`},
		{"set trailing after datetime", "r1 SET j 2026-03-30 14:00:00 x", "r1", `unexpected token "x" after the command: want <rid> SET <job> <timestamp>`},
		{"set id too long", "r1 SET " + long + " 1", "r1", "id too long (limit 65535 bytes)"},
		{"get no id", "r1 GET", "r1", "missing job id: want <rid> GET <job>"},
		{"get trailing", "r5 GET a.b c d", "r5", `unexpected token "c" after the command: want <rid> GET <job>`},
		{"get id too long", "r1 GET " + long, "r1", "id too long (limit 65535 bytes)"},
		{"query trailing", "q QUERY backup. x", "q", `unexpected token "x" after the command: want <rid> QUERY [<prefix>]`},
		{"remove no id", "r1 REMOVE", "r1", "missing job id: want <rid> REMOVE <job>"},
		{"remove trailing", "r REMOVE j k", "r", `unexpected token "k" after the command: want <rid> REMOVE <job>`},
		{"removerule no id", "r1 REMOVERULE", "r1", "missing rule id: want <rid> REMOVERULE <rule>"},
		{"removerule trailing", "r REMOVERULE ru x", "r", `unexpected token "x" after the command: want <rid> REMOVERULE <rule>`},
		{"removerule id too long", "r1 REMOVERULE " + long, "r1", "id too long (limit 65535 bytes)"},
		{"listrules trailing", "r LISTRULES x y", "r", `unexpected token "x" after the command: want <rid> LISTRULES`},
		{"stat trailing", "r STAT x", "r", `unexpected token "x" after the command: want <rid> STAT`},
		{"auth alone", "AUTH", "", "missing secret: want AUTH <secret> or <rid> AUTH <secret>"},
		{"bare auth trailing", "AUTH s x", "", `unexpected token "x" after the command: want AUTH <secret> or <rid> AUTH <secret>`},
		{"rid auth no secret", "r1 AUTH", "r1", "missing secret: want AUTH <secret> or <rid> AUTH <secret>"},
		{"rid auth trailing", "r1 AUTH s x", "r1", `unexpected token "x" after the command: want AUTH <secret> or <rid> AUTH <secret>`},
		{"rule set no id", "r1 RULE SET", "r1", "missing rule id: want <rid> RULE SET <rule> <pattern> <runner> <args...>"},
		{"rule set id too long", "r1 RULE SET " + long + " p shell x", "r1", "id too long (limit 65535 bytes)"},
		{"rule set no pattern", "r1 RULE SET r", "r1", "missing pattern: want <rid> RULE SET <rule> <pattern> <runner> <args...>"},
		{"rule set pattern too long", "r1 RULE SET r " + long + " shell x", "r1", "pattern too long (limit 65535 bytes)"},
		{"rule set no runner", "r1 RULE SET r p.", "r1", "missing runner: want <rid> RULE SET <rule> <pattern> <runner> <args...>, runners: " + runnerList},
		{"unknown runner", "r1 RULE SET r p. x", "r1", `unknown runner "x": want ` + runnerList},
		{"runner is case sensitive", "r1 RULE SET r p. SHELL x", "r1", `unknown runner "SHELL": want ` + runnerList},
		{"shell no command", "r1 RULE SET r p. shell", "r1", "invalid runner: shell needs a command"},
		{"shell empty command", `r1 RULE SET r p. shell ""`, "r1", "invalid runner: shell needs a command"},
		{"shell arg too long", "r1 RULE SET r p. shell " + long, "r1", "invalid runner: argument too long"},
		{"amqp too few", "r1 RULE SET r p. amqp amqp://h ex", "r1", "invalid runner: amqp needs a dsn, an exchange and a routing key"},
		{"amqp trailing", "r1 RULE SET r.a ev. amqp amqp://h ex rk more", "r1", `invalid runner: unexpected token "more": amqp takes a dsn, an exchange and a routing key`},
		{"amqp bad scheme", "r1 RULE SET r p. amqp amqps://h ex rk", "r1", "invalid runner: amqp dsn must start with amqp://"},
		{"amqp long exchange", "r1 RULE SET r p. amqp amqp://h " + strings.Repeat("e", 256) + " rk", "r1", "invalid runner: amqp exchange is longer than 255 bytes"},
		{"amqp long routing key", "r1 RULE SET r p. amqp amqp://h ex " + strings.Repeat("k", 256), "r1", "invalid runner: amqp routing key is longer than 255 bytes"},
		{"direct none", "r1 RULE SET r p. direct", "r1", "invalid runner: direct needs an executable"},
		{"direct empty", `r1 RULE SET r p. direct ""`, "r1", "invalid runner: direct needs an executable"},
		{"awf none", "r1 RULE SET rule.bad app. awf", "r1", "invalid runner: awf needs a workflow"},
		{"awf odd inputs", "r1 RULE SET r p. awf wf --input", "r1", "invalid runner: awf inputs must be pairs of --input key=value"},
		{"awf wrong flag", "r1 RULE SET r p. awf wf --in a=b", "r1", `invalid runner: awf expects --input, got "--in"`},
		{"awf trailing token", "r1 RULE SET r p. awf wf --input a=b extra", "r1", "invalid runner: awf inputs must be pairs of --input key=value"},
		{"http too few", "r1 RULE SET r p. http GET", "r1", "invalid runner: http needs a method and a url"},
		{"http trailing", "r1 RULE SET h x. http GET http://h/ extra", "r1", `invalid runner: unexpected token "extra": http takes a method and a url`},
		{"http bad method", "r1 RULE SET r p. http PATCH http://h", "r1", `invalid runner: http method "PATCH" is not one of GET, POST, PUT, DELETE`},
		{"http lower method", "r1 RULE SET r p. http post http://h", "r1", `invalid runner: http method "post" is not one of GET, POST, PUT, DELETE`},
		{"http bad url", "r1 RULE SET r p. http POST ftp://h", "r1", "invalid runner: http url must start with http:// or https://"},
		{"redis too few", "r1 RULE SET r p. redis redis://h PUBLISH", "r1", "invalid runner: redis needs a url, a command and a key"},
		{"redis trailing", "r1 RULE SET rd b. redis redis://h SET k extra", "r1", `invalid runner: unexpected token "extra": redis takes a url, a command and a key`},
		{"redis rediss", "r1 RULE SET r p. redis rediss://h PUBLISH k", "r1", "invalid runner: redis url must start with redis://"},
		{"redis bad command", "r1 RULE SET r p. redis redis://h GET k", "r1", `invalid runner: redis command "GET" is not one of PUBLISH, RPUSH, LPUSH, SET`},
		{"unterminated quote", `r1 SET "abc`, "r1", "unterminated quote"},
		{"unterminated quote in rid", `"r1 SET`, "", "unterminated quote"},
		{"unterminated quote in auth", `AUTH "abc`, "", "unterminated quote"},
		{"trailing backslash in quote", `r1 GET "a\`, "r1", "unterminated quote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, perr := Parse([]byte(tt.line))
			if perr == nil {
				t.Fatalf("Parse(%.60q) = %#v, want error %q", tt.line, c, tt.reason)
			}
			if perr.RID != tt.rid || perr.Reason != tt.reason {
				t.Fatalf("Parse(%.60q) error = {RID:%q Reason:%q}, want {RID:%q Reason:%q}", tt.line, perr.RID, perr.Reason, tt.rid, tt.reason)
			}
			if strings.ContainsAny(perr.Reason, "\r\n") {
				t.Fatalf("reason %q holds a raw newline", perr.Reason)
			}
			if perr.Error() != perr.Reason {
				t.Fatalf("Error() = %q", perr.Error())
			}
		})
	}
}

func TestParseTooManyArguments(t *testing.T) {
	line := "r1 RULE SET r p. direct /bin/echo" + strings.Repeat(" a", MaxIDLen+1)
	_, perr := Parse([]byte(line))
	if perr == nil || perr.Reason != "invalid runner: too many arguments" {
		t.Fatalf("got %+v", perr)
	}
	line = "r1 RULE SET r p. direct /bin/echo" + strings.Repeat(" a", MaxIDLen)
	if _, perr := Parse([]byte(line)); perr != nil {
		t.Fatalf("65535 arguments rejected: %+v", perr)
	}
}

// TestParseRequest: once authenticated (or with auth off) AUTH is an ordinary
// request id, as in ztick.md §1.10.
func TestParseRequest(t *testing.T) {
	c, perr := ParseRequest([]byte("AUTH GET j"))
	if perr != nil || !reflect.DeepEqual(c, Command{RID: "AUTH", Op: OpGet, ID: "j"}) {
		t.Fatalf("ParseRequest = %#v, %v", c, perr)
	}
	_, perr = ParseRequest([]byte("AUTH x"))
	if perr == nil || perr.RID != "AUTH" || !strings.HasPrefix(perr.Reason, `unknown command "x"`) {
		t.Fatalf("ParseRequest(AUTH x) = %+v", perr)
	}
	c, perr = ParseRequest([]byte("r1 AUTH s"))
	if perr != nil || c.Op != OpAuth || c.Secret != "s" || c.BareAuth {
		t.Fatalf("ParseRequest(r1 AUTH s) = %#v, %v", c, perr)
	}
}

func TestParseArgsDoNotAlias(t *testing.T) {
	c, perr := Parse([]byte("r RULE SET d x. direct /bin/echo a b"))
	if perr != nil {
		t.Fatal(perr)
	}
	args := c.Rule.Runner.Args
	if len(args) != 3 || cap(args) != 3 {
		t.Fatalf("args = %q (cap %d)", args, cap(args))
	}
}

func TestOpString(t *testing.T) {
	want := map[Op]string{OpSet: "SET", OpGet: "GET", OpQuery: "QUERY", OpRemove: "REMOVE", OpRuleSet: "RULE SET",
		OpRemoveRule: "REMOVERULE", OpListRules: "LISTRULES", OpStat: "STAT", OpAuth: "AUTH", 0: "Op(0)", 200: "Op(200)"}
	for op, s := range want {
		if op.String() != s {
			t.Errorf("Op(%d).String() = %q, want %q", op, op.String(), s)
		}
	}
}

func TestFormatCommand(t *testing.T) {
	tests := []struct {
		name string
		c    Command
		want string
	}{
		{"set", Command{RID: "r1", Op: OpSet, ID: "a b", Execution: 7}, `r1 SET "a b" 7`},
		{"get", Command{RID: "r", Op: OpGet, ID: "j"}, "r GET j"},
		{"query all", Command{RID: "r", Op: OpQuery}, "r QUERY"},
		{"query prefix", Command{RID: "r", Op: OpQuery, Prefix: "p."}, "r QUERY p."},
		{"remove", Command{RID: "r", Op: OpRemove, ID: "j"}, "r REMOVE j"},
		{"removerule", Command{RID: "r", Op: OpRemoveRule, ID: "x"}, "r REMOVERULE x"},
		{"listrules", Command{RID: "r", Op: OpListRules}, "r LISTRULES"},
		{"stat", Command{RID: "r", Op: OpStat}, "r STAT"},
		{"bare auth", Command{Op: OpAuth, Secret: "s k", BareAuth: true}, `AUTH "s k"`},
		{"rid auth", Command{RID: "r", Op: OpAuth, Secret: "s"}, "r AUTH s"},
		{"rule shell", ruleSet("r", rule("x", "", store.RunnerShell, `echo "hi"`)), `r RULE SET x "" shell "echo \"hi\""`},
		{"rule awf", ruleSet("r", rule("x", "a.", store.RunnerAWF, "wf", "a=1", "b=2")), "r RULE SET x a. awf wf --input a=1 --input b=2"},
		{"rule amqp not redacted", ruleSet("r", rule("x", "a.", store.RunnerAMQP, "amqp://u:p@h", "e", "k")), "r RULE SET x a. amqp amqp://u:p@h e k"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatCommand(tt.c); got != tt.want {
				t.Fatalf("FormatCommand = %q, want %q", got, tt.want)
			}
		})
	}
}

func BenchmarkParseSet(b *testing.B) {
	line := []byte("r123 SET backup.daily.host42 1774879200000000000")
	b.ReportAllocs()
	for b.Loop() {
		if _, perr := Parse(line); perr != nil {
			b.Fatal(perr)
		}
	}
}

func BenchmarkParseSetDatetime(b *testing.B) {
	line := []byte("r123 SET backup.daily.host42 2026-03-30 14:00:00")
	b.ReportAllocs()
	for b.Loop() {
		if _, perr := Parse(line); perr != nil {
			b.Fatal(perr)
		}
	}
}

// TestLookupOpMatchesNames: the switch of lookupOp knows every instruction
// of opNames, and nothing else.
func TestLookupOpMatchesNames(t *testing.T) {
	for op := OpSet; int(op) < len(opNames); op++ {
		toks := strings.Fields(opNames[op])
		if got, n := lookupOp(toks); got != op || n != len(toks) {
			t.Errorf("lookupOp(%q) = %v, %d; want %v, %d", toks, got, n, op, len(toks))
		}
	}
	for _, s := range []string{"set", "SETX", "", "RULE", "STATS"} {
		if got, _ := lookupOp([]string{s}); got != 0 {
			t.Errorf("lookupOp(%q) = %v, want none", s, got)
		}
	}
}
