package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tockd/tock/master"
)

func restCluster(t *testing.T, extra string) (*cluster, *restClient) {
	dir := t.TempDir()
	c := startCluster(t, dir, monitorConfig(dir, extra))
	return c, newRESTClient(t, c, "")
}

// TestREST_Jobs: every job endpoint and body shape over real HTTP against
// the binary, the outcome of a failed execution (REST, INFO and the warn
// log), RFC 3339 offsets, and ids with spaces and slashes.
func TestREST_Jobs(t *testing.T) {
	c, rc := restCluster(t, "")
	cl := dial(t, c.addr)

	rc.expect("GET", "/health", "", 200, nil)

	// A failing shell rule, set through REST: applied by every worker
	// before the 200, so a job due at once is run by it.
	rc.expect("PUT", "/rules/fail.r", `{"pattern": "fail.", "runner": {"type": "shell", "command": "echo to-out; echo to-err >&2; exit 3"}}`, 200, nil)
	var put restJob
	past := time.Now().Add(-time.Hour).In(time.FixedZone("", 2*3600)).Format(time.RFC3339Nano)
	rc.expect("PUT", "/jobs/fail.1", fmt.Sprintf(`{"execution": %q}`, past), 200, &put)
	if put.Status != "planned" || put.Rule == nil || *put.Rule != "fail.r" || put.Shard != master.ShardOf("fail.1", 8) {
		t.Fatalf("PUT answered %+v", put)
	}
	var job restJob
	waitFor(t, 30*time.Second, "fail.1 to fail", func() bool {
		rc.expect("GET", "/jobs/fail.1", "", 200, &job)
		return job.Status == "failed"
	})
	o := job.LastOutcome
	if o == nil || o.ExitCode == nil || *o.ExitCode != 3 || o.Error != "exit status 3" || o.Succeeded ||
		!strings.Contains(o.OutputTail, "to-out") || !strings.Contains(o.OutputTail, "to-err") || o.HTTPStatus != nil || o.Attempt != 1 {
		t.Fatalf("last_outcome of a failed shell run: %+v", o)
	}
	// A job no rule matches fails with the reason in its outcome.
	rc.expect("PUT", "/jobs/norule.1", `{"execution": 0}`, 200, nil)
	waitFor(t, 30*time.Second, "norule.1 to fail", func() bool {
		rc.expect("GET", "/jobs/norule.1", "", 200, &job)
		return job.Status == "failed"
	})
	if job.Rule != nil || job.LastOutcome == nil || job.LastOutcome.Error != "no matching rule" {
		t.Fatalf("job without a rule: %+v %+v", job, job.LastOutcome)
	}
	// The line protocol: GET keeps ztick's reply, INFO adds the outcome.
	cl.expect("g GET norule.1", "g OK failed 0")
	if got := cl.do("i INFO norule.1"); !strings.HasPrefix(got, "i OK failed 0 shard=") || !strings.Contains(got, `"error=no matching rule"`) || !strings.Contains(got, " rule= ") {
		t.Fatalf("INFO norule.1: %q", got)
	}
	if got := cl.do("i INFO fail.1"); !strings.Contains(got, "rule=fail.r") || !strings.Contains(got, "exit_code=3") || !strings.Contains(got, "attempt=1") || !strings.Contains(got, `"error=exit status 3"`) || !strings.Contains(got, "to-out") {
		t.Fatalf("INFO fail.1: %q", got)
	}
	cl.expect("i INFO nothing.here", "i ERROR not found")
	// Both failures are logged at warn with job, rule, runner and error.
	waitFor(t, 10*time.Second, "warn log lines", func() bool {
		logs := c.logs.String()
		return strings.Contains(logs, `[WARN]  worker.runner: execution failed: duration=`) &&
			strings.Contains(logs, `error="exit status 3" exit_code=3 job=fail.1 rule=fail.r runner=shell`) &&
			strings.Contains(logs, `execution failed: error="no matching rule" job=norule.1`)
	})

	// RFC 3339 with offsets is honoured; ns are taken as they are.
	for body, want := range map[string]string{
		`{"execution": "2030-01-01T02:00:00+02:00"}`:           "2030-01-01T00:00:00Z",
		`{"execution": "2029-12-31T18:30:00.25-05:30"}`:        "2030-01-01T00:00:00.25Z",
		`{"execution": "2030-01-01T00:00:00Z"}`:                "2030-01-01T00:00:00Z",
		`{"id": "tz.1", "execution": 1893456000000000000}`:     "2030-01-01T00:00:00Z",
		`{"execution": "2030-01-01T00:00:00.123456789+00:00"}`: "2030-01-01T00:00:00.123456789Z",
	} {
		wantT, _ := time.Parse(time.RFC3339Nano, want)
		var j restJob
		rc.expect("PUT", "/jobs/tz.1", body, 200, &j)
		if j.ExecutionNs != wantT.UnixNano() {
			t.Fatalf("%s: execution_ns %d, want %d (%s)", body, j.ExecutionNs, wantT.UnixNano(), want)
		}
		cl.expect("g GET tz.1", fmt.Sprintf("g OK planned %d", wantT.UnixNano()))
		rc.expect("GET", "/jobs/tz.1", "", 200, &j)
		if back, err := time.Parse(time.RFC3339Nano, j.Execution); err != nil || back.UnixNano() != wantT.UnixNano() || !strings.HasSuffix(j.Execution, "Z") {
			t.Fatalf("execution %q does not read back as %s", j.Execution, want)
		}
	}
	// Bad values are 400 naming the field.
	for _, body := range []string{`{"execution": "2030-01-01T00:00:00"}`, `{"execution": "2030-01-01 00:00:00"}`,
		`{"execution": "tomorrow"}`, `{"execution": 1.5}`, `{"execution": true}`, `{"execution": "3000-01-01T00:00:00Z"}`} {
		rc.expectError("PUT", "/jobs/tz.1", body, 400, `"execution"`)
	}
	rc.expectError("PUT", "/jobs/tz.1", `{}`, 400, `missing "execution"`)
	rc.expectError("PUT", "/jobs/tz.1", `{"execution": 1, "when": 2}`, 400, `unknown field "when"`)
	rc.expectError("PUT", "/jobs/tz.1", `not json`, 400, "invalid body")
	rc.expectError("PUT", "/jobs/tz.1", ``, 400, "invalid body")
	rc.expectError("PUT", "/jobs/tz.1", `{"id": "tz.2", "execution": 1}`, 409, `"id"`)
	rc.expectError("PUT", "/jobs/tz.1", `{"execution": 1, "id": "`+strings.Repeat("x", 1<<20)+`"}`, 413, "1 MiB")
	rc.expectError("POST", "/jobs/tz.1", `{"execution": 1}`, 405, "")
	rc.expectError("POST", "/jobs", "", 405, "")

	// Ids are percent-decoded path segments: spaces, slashes, dots, plus.
	for raw, id := range map[string]string{
		"sp%20a%2Fb%2F..%2Fc": "sp a/b/../c",
		"p+q":                 "p+q",
		"%22quoted%22%5C":     `"quoted"\`,
		"%C3%A9t%C3%A9":       "été",
	} {
		var j restJob
		rc.expect("PUT", "/jobs/"+raw, `{"execution": 4102444800000000000}`, 200, &j)
		if j.ID != id {
			t.Fatalf("PUT /jobs/%s made id %q, want %q", raw, j.ID, id)
		}
		tok := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(id)
		cl.expect(fmt.Sprintf(`g GET "%s"`, tok), "g OK planned 4102444800000000000")
		if url.PathEscape(id) != raw {
			rc.expect("GET", "/jobs/"+url.PathEscape(id), "", 200, nil) // any encoding of the same bytes
		}
	}
	cl.expect(`s SET "line made/it" 4102444800000000000`, "s OK")
	var j restJob
	rc.expect("GET", "/jobs/line%20made%2Fit", "", 200, &j)
	if j.ID != "line made/it" || j.Status != "planned" || j.LastOutcome != nil {
		t.Fatalf("job set on the line protocol: %+v", j)
	}
	rc.expectError("GET", "/jobs/a%0Ab", "", 400, "line feed")
	rc.expectError("GET", "/jobs/", "", 400, "missing id")
	rc.expectError("GET", "/jobs/"+strings.Repeat("x", 65536), "", 400, "65535")

	// DELETE: 204, then 404, and gone on the line protocol too.
	rc.expect("DELETE", "/jobs/sp%20a%2Fb%2F..%2Fc", "", 204, nil)
	rc.expectError("DELETE", "/jobs/sp%20a%2Fb%2F..%2Fc", "", 404, "not found")
	rc.expectError("GET", "/jobs/sp%20a%2Fb%2F..%2Fc", "", 404, "not found")
	cl.expect(`g GET "sp a/b/../c"`, "g ERROR not found")

	// Listing: prefix, status, limit and cursor, and bad values.
	var list restJobList
	rc.expect("GET", "/jobs?status=failed", "", 200, &list)
	if len(list.Jobs) != 2 || list.Jobs[0].ID != "fail.1" || list.Jobs[1].ID != "norule.1" || list.NextCursor != nil {
		t.Fatalf("failed jobs: %+v", list)
	}
	rc.expect("GET", "/jobs?prefix=tz.&status=planned,failed", "", 200, &list)
	if len(list.Jobs) != 1 || list.Jobs[0].ID != "tz.1" {
		t.Fatalf("prefix tz.: %+v", list)
	}
	rc.expect("GET", "/jobs?limit=2", "", 200, &list)
	if len(list.Jobs) != 2 || list.NextCursor == nil {
		t.Fatalf("first page of 2: %+v", list)
	}
	first := list.Jobs[1].ID
	rc.expect("GET", "/jobs?limit=2&cursor="+url.QueryEscape(*list.NextCursor), "", 200, &list)
	if len(list.Jobs) == 0 || list.Jobs[0].ID <= first {
		t.Fatalf("second page does not follow %q: %+v", first, list)
	}
	rc.expectError("GET", "/jobs?limit=0", "", 400, `"limit"`)
	rc.expectError("GET", "/jobs?limit=10001", "", 400, `"limit"`)
	rc.expectError("GET", "/jobs?status=done", "", 400, `"status"`)
	rc.expectError("GET", "/jobs?cursor=nope", "", 400, `"cursor"`)
	rc.expectError("GET", "/jobs?colour=red", "", 400, `"colour"`)
	rc.expectError("GET", "/jobs?limit=1&limit=2", "", 400, `"limit"`)
}

// TestREST_Rules: every runner type with all its arguments, no password
// in any response, the line protocol seeing the same rules, and the
// errors.
func TestREST_Rules(t *testing.T) {
	c, rc := restCluster(t, "")
	cl := dial(t, c.addr)
	cases := map[string]string{
		"r.shell":  `{"type": "shell", "command": "echo \"hi there\""}`,
		"r.direct": `{"type": "direct", "executable": "/bin/echo", "args": ["a b", "c"]}`,
		"r.http":   `{"type": "http", "method": "POST", "url": "https://user:s3cret@hooks.example/x?y=1"}`,
		"r.redis":  `{"type": "redis", "url": "redis://:s3cret@127.0.0.1:6379/2", "command": "RPUSH", "key": "queue"}`,
		"r.amqp":   `{"type": "amqp", "url": "amqp://guest:s3cret@127.0.0.1:5672/", "exchange": "ex", "routing_key": "rk"}`,
		"r.awf":    `{"type": "awf", "workflow": "review", "inputs": ["a=1", "b=two words"]}`,
	}
	for id, runner := range cases {
		body := rc.expect("PUT", "/rules/"+id, fmt.Sprintf(`{"pattern": %q, "runner": %s}`, id+".", runner), 200, nil)
		if strings.Contains(string(body), "s3cret") {
			t.Fatalf("PUT %s shows the password: %s", id, body)
		}
	}
	redacted := map[string]string{"r.http": "https://user@hooks.example/x?y=1",
		"r.redis": "redis://127.0.0.1:6379/2", "r.amqp": "amqp://guest@127.0.0.1:5672/"}
	var list struct {
		Rules []struct {
			ID      string         `json:"id"`
			Pattern string         `json:"pattern"`
			Runner  map[string]any `json:"runner"`
		} `json:"rules"`
	}
	body := rc.expect("GET", "/rules?prefix=r.", "", 200, &list)
	if strings.Contains(string(body), "s3cret") || len(list.Rules) != len(cases) {
		t.Fatalf("rules: %s", body)
	}
	for _, r := range list.Rules {
		var want map[string]any
		if err := json.Unmarshal([]byte(cases[r.ID]), &want); err != nil {
			t.Fatal(err)
		}
		if u, ok := redacted[r.ID]; ok {
			want["url"] = u
		}
		if got, _ := json.Marshal(r.Runner); r.Pattern != r.ID+"." || string(got) != string(mustJSON(want)) {
			t.Errorf("%s: runner %s, want %s", r.ID, got, mustJSON(want))
		}
		one := rc.expect("GET", "/rules/"+r.ID, "", 200, nil)
		if strings.Contains(string(one), "s3cret") {
			t.Fatalf("GET %s shows the password: %s", r.ID, one)
		}
	}
	// The line protocol sees the rules REST made, with the same arguments.
	lines, end := cl.list("l", "l LISTRULES")
	joined := strings.Join(lines, "\n")
	for _, want := range []string{`l r.shell r.shell. shell "echo \"hi there\""`, `l r.direct r.direct. direct /bin/echo "a b" c`,
		`l r.awf r.awf. awf review --input a=1 --input "b=two words"`, `l r.redis r.redis. redis redis://127.0.0.1:6379/2 RPUSH queue`} {
		if !strings.Contains(joined, want) {
			t.Errorf("LISTRULES lacks %q:\n%s", want, joined)
		}
	}
	if end != "l OK" || strings.Contains(joined, "s3cret") {
		t.Fatalf("LISTRULES: %s / %s", joined, end)
	}
	// A rule made on the line protocol reads through REST.
	cl.expect(`s RULE SET "line rule" "x y" direct /bin/true`, "s OK")
	var one struct {
		ID, Pattern string
		Runner      map[string]any
	}
	rc.expect("GET", "/rules/line%20rule", "", 200, &one)
	if one.ID != "line rule" || one.Pattern != "x y" || one.Runner["executable"] != "/bin/true" {
		t.Fatalf("line rule via REST: %+v", one)
	}
	// Errors: each names what is wrong.
	for body, want := range map[string]string{
		`{"pattern": "a.", "runner": {"type": "http", "method": "PATCH", "url": "http://x"}}`:            "PATCH",
		`{"pattern": "a.", "runner": {"type": "http", "method": "GET"}}`:                                 `"url"`,
		`{"pattern": "a.", "runner": {"type": "redis", "url": "ftp://x", "command": "SET", "key": "k"}}`: "redis://",
		`{"pattern": "a.", "runner": {"type": "shell", "command": "x", "url": "http://x"}}`:              `"url" is not a field of a shell runner`,
		`{"pattern": "a.", "runner": {"type": "ftp"}}`:                                                   `unknown type "ftp"`,
		`{"pattern": "a.", "runner": {"type": "amqp", "url": "amqp://h/", "exchange": "e"}}`:             `"routing_key"`,
		`{"pattern": "a.", "runner": {"type": "awf", "workflow": ""}}`:                                   "workflow",
		`{"runner": {"type": "shell", "command": "x"}}`:                                                  `missing "pattern"`,
		`{"pattern": "a."}`: `missing "runner"`,
		`{"pattern": 5, "runner": {"type": "shell", "command": "x"}}`:                                   `"pattern"`,
		`{"pattern": "a.", "runner": {"type": "direct", "executable": "/bin/x", "args": "not-a-list"}}`: `args`,
		`{"pattern": "a.", "runner": {"type": "shell", "command": "x"}, "extra": 1}`:                    `unknown field "extra"`,
	} {
		rc.expectError("PUT", "/rules/bad", body, 400, want)
	}
	rc.expectError("PUT", "/rules/bad", `{"id": "other", "pattern": "a.", "runner": {"type": "shell", "command": "x"}}`, 409, `"id"`)
	rc.expectError("PUT", "/rules/bad", `{"pattern": "`+strings.Repeat("a", 1<<20)+`"}`, 413, "1 MiB")
	rc.expectError("GET", "/rules/bad", "", 404, "not found")
	rc.expectError("POST", "/rules", "", 405, "")
	rc.expectError("PATCH", "/rules/r.shell", "", 405, "")
	// DELETE: 204, then 404 on REST and on the line protocol.
	rc.expect("DELETE", "/rules/r.shell", "", 204, nil)
	rc.expectError("DELETE", "/rules/r.shell", "", 404, "not found")
	cl.expect("d REMOVERULE r.shell", "d ERROR not found")
	// A rule change is applied by every worker before its 200: a job due
	// now, set right after, runs by it whichever worker owns its shard.
	for i := range 8 {
		rule := fmt.Sprintf("now%d.r", i)
		rc.expect("PUT", "/rules/"+rule, fmt.Sprintf(`{"pattern": "now%d.", "runner": {"type": "shell", "command": "exit 0"}}`, i), 200, nil)
		for k := range 4 {
			rc.expect("PUT", fmt.Sprintf("/jobs/now%d.%d", i, k), `{"execution": 0}`, 200, nil)
		}
	}
	waitFor(t, 30*time.Second, "every now job executed", func() bool {
		var l restJobList
		rc.expect("GET", "/jobs?prefix=now&status=planned,triggered,failed", "", 200, &l)
		return len(l.Jobs) == 0
	})
	var l restJobList
	rc.expect("GET", "/jobs?prefix=now&status=executed", "", 200, &l)
	if len(l.Jobs) != 32 {
		t.Fatalf("%d of 32 jobs executed: %+v", len(l.Jobs), l)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestREST_AuthNamespaces: with an auth file every endpoint but /health
// and /openapi.json needs a bearer token, and a token scoped to deploy.
// cannot read, write, list or delete another namespace's jobs or rules
// through any endpoint, nor make a rule whose pattern reaches outside it.
func TestREST_AuthNamespaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.toml")
	copyAuthFixture(t, path)
	cfg := strings.Replace(monitorConfig(dir, ""), "[controller]\n", fmt.Sprintf("[controller]\nauth_file = %q\n", path), 1)
	c := startCluster(t, dir, cfg)
	anon := newRESTClient(t, c, "")
	admin := anon.withToken("sk_admin_d4e5f6")
	deploy := anon.withToken("sk_deploy_a1b2c3")

	anon.expect("GET", "/health", "", 200, nil)
	anon.expect("GET", "/openapi.json", "", 200, nil)
	for _, probe := range [][2]string{{"GET", "/jobs"}, {"GET", "/jobs/deploy.1"}, {"PUT", "/jobs/deploy.1"}, {"DELETE", "/jobs/deploy.1"},
		{"GET", "/rules"}, {"GET", "/rules/deploy.r"}, {"PUT", "/rules/deploy.r"}, {"DELETE", "/rules/deploy.r"}} {
		anon.expectError(probe[0], probe[1], `{"execution": 1}`, 401, "unauthorized")
		anon.withToken("sk_wrong").expectError(probe[0], probe[1], `{"execution": 1}`, 401, "unauthorized")
	}
	// "Basic" or an empty token is no bearer token.
	code, _ := func() (int, []byte) {
		rc := *anon
		rc.token = ""
		return rc.do("GET", "/jobs", "")
	}()
	if code != 401 {
		t.Fatalf("no token: %d", code)
	}

	admin.expect("PUT", "/jobs/other.1", `{"execution": 4102444800000000000}`, 200, nil)
	admin.expect("PUT", "/rules/other.r", `{"pattern": "other.", "runner": {"type": "shell", "command": "true"}}`, 200, nil)
	deploy.expect("PUT", "/jobs/deploy.1", `{"execution": 4102444800000000000}`, 200, nil)
	deploy.expect("PUT", "/rules/deploy.r", `{"pattern": "deploy.", "runner": {"type": "shell", "command": "true"}}`, 200, nil)

	// Outside the namespace: 403 on every item endpoint.
	deploy.expectError("GET", "/jobs/other.1", "", 403, "forbidden")
	deploy.expectError("PUT", "/jobs/other.1", `{"execution": 1}`, 403, "forbidden")
	deploy.expectError("DELETE", "/jobs/other.1", "", 403, "forbidden")
	deploy.expectError("GET", "/jobs/other.none", "", 403, "forbidden") // not even whether it exists
	deploy.expectError("GET", "/rules/other.r", "", 403, "forbidden")
	deploy.expectError("PUT", "/rules/other.r", `{"pattern": "deploy.", "runner": {"type": "shell", "command": "x"}}`, 403, "forbidden")
	deploy.expectError("DELETE", "/rules/other.r", "", 403, "forbidden")
	// A rule inside the namespace whose pattern reaches outside it.
	deploy.expectError("PUT", "/rules/deploy.x", `{"pattern": "other.", "runner": {"type": "shell", "command": "x"}}`, 403, "forbidden")
	deploy.expectError("PUT", "/rules/deploy.x", `{"pattern": "", "runner": {"type": "shell", "command": "x"}}`, 403, "forbidden")
	deploy.expectError("GET", "/rules/deploy.x", "", 404, "not found")
	// Listings show only the namespace, whatever the prefix.
	for _, q := range []string{"", "?prefix=", "?prefix=d", "?prefix=other.", "?prefix=o", "?prefix=deploy."} {
		var l restJobList
		deploy.expect("GET", "/jobs"+q, "", 200, &l)
		for _, j := range l.Jobs {
			if !strings.HasPrefix(j.ID, "deploy.") {
				t.Fatalf("GET /jobs%s with the deploy token lists %q", q, j.ID)
			}
		}
		var rl struct{ Rules []struct{ ID string } }
		deploy.expect("GET", "/rules"+q, "", 200, &rl)
		for _, r := range rl.Rules {
			if !strings.HasPrefix(r.ID, "deploy.") {
				t.Fatalf("GET /rules%s with the deploy token lists %q", q, r.ID)
			}
		}
	}
	var l restJobList
	deploy.expect("GET", "/jobs", "", 200, &l)
	if len(l.Jobs) != 1 || l.Jobs[0].ID != "deploy.1" {
		t.Fatalf("deploy's jobs: %+v", l)
	}
	// Nothing of the other namespace changed; admin sees both.
	admin.expect("GET", "/jobs/other.1", "", 200, nil)
	admin.expect("GET", "/rules/other.r", "", 200, nil)
	admin.expect("GET", "/jobs", "", 200, &l)
	if len(l.Jobs) != 2 {
		t.Fatalf("admin's jobs: %+v", l)
	}
	// INFO on the line protocol keeps to the namespace as GET does.
	cl := dial(t, c.addr)
	cl.expect("AUTH sk_deploy_a1b2c3", "OK")
	cl.expect("i INFO other.1", `i ERROR forbidden: outside this token's namespace "deploy."`)
	if got := cl.do("i INFO deploy.1"); !strings.HasPrefix(got, "i OK planned 4102444800000000000 shard=") {
		t.Fatalf("INFO deploy.1: %q", got)
	}
	deploy.expect("DELETE", "/jobs/deploy.1", "", 204, nil)
	deploy.expect("DELETE", "/rules/deploy.r", "", 204, nil)
}

// TestREST_ShardUnavailable: a shard whose file cannot be opened answers
// every job endpoint that needs it with 503 and the reason; the other
// shards keep serving.
func TestREST_ShardUnavailable(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, monitorConfig(dir, ""))
	writeJobs(t, dial(t, c.addr), "down", 100) // the first record of down.0's shard is not its last
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	path := shardFile(dir, "down.0")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[12+8+3] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c.start()
	rc := newRESTClient(t, c, "")
	rc.expectError("GET", "/jobs/down.0", "", 503, "shard unavailable")
	rc.expectError("PUT", "/jobs/down.0", `{"execution": 1}`, 503, "shard unavailable")
	rc.expectError("DELETE", "/jobs/down.0", "", 503, "shard unavailable")
	rc.expectError("GET", "/jobs", "", 503, "shard unavailable")
	for i := 0; ; i++ {
		id := fmt.Sprintf("up.%d", i)
		if master.ShardOf(id, 8) != master.ShardOf("down.0", 8) {
			rc.expect("PUT", "/jobs/"+id, `{"execution": 1}`, 200, nil)
			break
		}
	}
}

// TestREST_PhasedRestart: REST requests keep succeeding while SIGUSR1
// replaces every worker: requests for a moving shard are held, not failed,
// exactly as on the line protocol.
func TestREST_PhasedRestart(t *testing.T) {
	c, rc := restCluster(t, "")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var done atomic.Int64
	fails := make(chan string, 8)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20000; i++ { // bounded; stopped once the rollout is over
				select {
				case <-stop:
					return
				default:
				}
				path := fmt.Sprintf("/jobs/pr%d.%d", g, i)
				if code, body := rc.do("PUT", path, `{"execution": 4102444800000000000}`); code != 200 {
					fails <- fmt.Sprintf("PUT %s: %d %s", path, code, body)
					return
				}
				if code, body := rc.do("GET", path, ""); code != 200 {
					fails <- fmt.Sprintf("GET %s: %d %s", path, code, body)
					return
				}
				done.Add(1)
			}
		}()
	}
	waitFor(t, 30*time.Second, "load running", func() bool { return done.Load() > 200 })
	c.cmd.Process.Signal(syscall.SIGUSR1)
	waitFor(t, 60*time.Second, "phased restart done", func() bool {
		return strings.Contains(c.logs.String(), "phased restart done")
	})
	at := done.Load()
	waitFor(t, 30*time.Second, "load after the rollout", func() bool { return done.Load() > at+200 })
	close(stop)
	wg.Wait()
	close(fails)
	for f := range fails {
		t.Error(f)
	}
	listed, q := 0, "/jobs?prefix=pr&limit=10000"
	for range 100 {
		var l restJobList
		rc.expect("GET", q, "", 200, &l)
		listed += len(l.Jobs)
		if l.NextCursor == nil {
			break
		}
		q = "/jobs?prefix=pr&limit=10000&cursor=" + url.QueryEscape(*l.NextCursor)
	}
	if int64(listed) < done.Load() {
		t.Fatalf("%d jobs listed, %d acknowledged", listed, done.Load())
	}
}
