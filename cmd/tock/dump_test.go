package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tockd/tock/store"
	"github.com/urfave/cli/v2"
)

// ztick.md §3.3's worked examples, full ztick frames.
const (
	ztickJobToto    = "00 00 00 10 00 00 04 74 6f 74 6f 16 47 bb 5c ee e1 50 00 00"
	ztickRuleShell  = "00 00 00 0f 01 00 01 72 00 02 61 2e 00 00 04 74 72 75 65"
	ztickRuleDirect = "00 00 00 1e 01 00 01 64 00 02 78 2e 02 00 09 2f 62 69 6e 2f 65 63 68 6f 00 02 00 02 2d 6e 00 02 68 69"
	ztickRemoveX    = "00 00 00 04 02 00 01 78"
)

// dumpOutput collects what a command writes, safely for a --follow running
// on another goroutine, and wakes waiters on every write.
type dumpOutput struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{}
}

func newDumpOutput() *dumpOutput { return &dumpOutput{wrote: make(chan struct{}, 1)} }

func (o *dumpOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	select {
	case o.wrote <- struct{}{}:
	default:
	}
	return o.b.Write(p)
}

func (o *dumpOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// waitFor waits, woken by writes, until the output holds want.
func (o *dumpOutput) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for !strings.Contains(o.String(), want) {
		select {
		case <-o.wrote:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %q; output so far:\n%s", want, o.String())
		}
	}
}

// runDumpIn runs `tock dump args...` in-process until it returns or ctx
// ends (--follow), and returns its exit code.
func runDumpIn(ctx context.Context, stdout, stderr *dumpOutput, args ...string) int {
	app := &cli.App{
		Name:           "tock",
		Writer:         stdout,
		ErrWriter:      stderr,
		Commands:       []*cli.Command{dumpCommand()},
		ExitErrHandler: func(*cli.Context, error) {}, // no os.Exit: the code is returned
	}
	err := app.RunContext(ctx, append([]string{"tock", "dump"}, args...))
	var ec cli.ExitCoder
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ec):
		return ec.ExitCode()
	}
	return -1
}

// dumpCLI runs `tock dump args...` to completion.
func dumpCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	out, errw := newDumpOutput(), newDumpOutput()
	code = runDumpIn(context.Background(), out, errw, args...)
	return out.String(), errw.String(), code
}

func unhexFrames(t *testing.T, frames ...string) []byte {
	t.Helper()
	var b []byte
	for _, f := range frames {
		d, err := hex.DecodeString(strings.ReplaceAll(f, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, d...)
	}
	return b
}

func ztickFrames(t *testing.T, recs ...store.Record) []byte {
	t.Helper()
	var b []byte
	for _, r := range recs {
		var err error
		if b, err = store.AppendZtickFrame(b, r); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func writeFile(t *testing.T, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "logfile")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// tockLog writes recs to a new tock logfile with store.Logfile.
func tockLog(t *testing.T, recs ...store.Record) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "000.log")
	appendTock(t, path, recs...)
	return path
}

func appendTock(t *testing.T, path string, recs ...store.Record) {
	t.Helper()
	l, err := store.OpenLogfile(path, store.FsyncNever)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Write(recs); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func job(id string, exec int64, st store.Status) store.Record {
	return store.Record{Type: store.RecordJob, Job: store.Job{ID: id, Execution: exec, Status: st}}
}

func status(id string, exec int64, st store.Status, o *store.Outcome) store.Record {
	return store.Record{Type: store.RecordStatus, Job: store.Job{ID: id, Execution: exec, Status: st, Outcome: o}}
}

func rule(id, pattern string, kind store.RunnerKind, args ...string) store.Record {
	return store.Record{Type: store.RecordRule, Rule: store.Rule{ID: id, Pattern: pattern, Runner: store.Runner{Kind: kind, Args: args}}}
}

func removal(id string) store.Record     { return store.Record{Type: store.RecordJobRemoval, ID: id} }
func ruleRemoval(id string) store.Record { return store.Record{Type: store.RecordRuleRemoval, ID: id} }

func lines(s ...string) string { return strings.Join(s, "\n") + "\n" }

func expectDump(t *testing.T, gotOut, gotErr string, code int, want string) {
	t.Helper()
	if code != 0 || gotErr != "" || gotOut != want {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, gotErr, gotOut, want)
	}
}

// ztickRunners has a rule of every runner kind, credentials in URLs.
func ztickRunners() []store.Record {
	return []store.Record{
		rule("q", "amqp.", store.RunnerAMQP, "amqp://user:secret@broker:5672/prod", "ex", "rk"),
		rule("w", "wf.", store.RunnerAWF, "deploy", "env=prod", "v=2"),
		rule("h", "web.", store.RunnerHTTP, "POST", "https://u:pw@example.com/hook"),
		rule("rd", "redis.", store.RunnerRedis, "redis://:pw@localhost:6379/0", "PUBLISH", "events"),
		rule("sp", "", store.RunnerShell, `echo "hi there"`),
		ruleRemoval("old.rule"),
	}
}

// ztick.md §4.3, §8.3 items 32, 39–41: the text and JSON forms of every
// ztick entry, read from the spec's byte-exact frames.
func TestDump_ZtickText(t *testing.T) {
	file := append(unhexFrames(t, ztickJobToto, ztickRuleShell, ztickRuleDirect, ztickRemoveX), ztickFrames(t, ztickRunners()...)...)
	out, errw, code := dumpCLI(t, writeFile(t, file))
	expectDump(t, out, errw, code, lines(
		"SET toto 1605457800000000000 planned",
		"RULE SET r a. shell true",
		"RULE SET d x. direct /bin/echo -n hi",
		"REMOVE x",
		"RULE SET q amqp. amqp amqp://user@broker:5672/prod ex rk",
		"RULE SET w wf. awf deploy --input env=prod --input v=2",
		"RULE SET h web. http POST https://u@example.com/hook",
		"RULE SET rd redis. redis redis://localhost:6379/0 PUBLISH events",
		`RULE SET sp "" shell "echo \"hi there\""`,
		"REMOVERULE old.rule",
	))
}

// ztickSampleLog is the shared ztick logfile fixture: the four worked
// frames above, as a file.
const ztickSampleLog = "../../testdata/ztick/sample.log"

// TestDump_ZtickSampleLog: the shared fixture holds exactly the worked
// frames and dumps and verifies as such.
func TestDump_ZtickSampleLog(t *testing.T) {
	b, err := os.ReadFile(ztickSampleLog)
	if err != nil {
		t.Fatal(err)
	}
	if want := unhexFrames(t, ztickJobToto, ztickRuleShell, ztickRuleDirect, ztickRemoveX); !bytes.Equal(b, want) {
		t.Fatalf("%s is not the worked frames", ztickSampleLog)
	}
	out, errw, code := dumpCLI(t, ztickSampleLog)
	expectDump(t, out, errw, code, lines(
		"SET toto 1605457800000000000 planned",
		"RULE SET r a. shell true",
		"RULE SET d x. direct /bin/echo -n hi",
		"REMOVE x",
	))
	out, errw, code = dumpCLI(t, "--verify", ztickSampleLog)
	if code != 0 || out != "ok: 4 records, 81 bytes\n" || errw != "" {
		t.Fatalf("--verify: exit %d, %q, %q", code, out, errw)
	}
}

func TestDump_ZtickJSON(t *testing.T) {
	file := append(unhexFrames(t, ztickJobToto, ztickRuleShell, ztickRuleDirect, ztickRemoveX), ztickFrames(t, ztickRunners()...)...)
	out, errw, code := dumpCLI(t, "--format", "json", writeFile(t, file))
	expectDump(t, out, errw, code, lines(
		`{"type":"set","identifier":"toto","execution":1605457800000000000,"status":"planned"}`,
		`{"type":"rule_set","identifier":"r","pattern":"a.","runner":{"type":"shell","command":"true"}}`,
		`{"type":"rule_set","identifier":"d","pattern":"x.","runner":{"type":"direct","executable":"/bin/echo","args":["-n","hi"]}}`,
		`{"type":"remove","identifier":"x"}`,
		`{"type":"rule_set","identifier":"q","pattern":"amqp.","runner":{"type":"amqp","dsn":"amqp://user@broker:5672/prod","exchange":"ex","routing_key":"rk"}}`,
		`{"type":"rule_set","identifier":"w","pattern":"wf.","runner":{"type":"awf","workflow":"deploy","inputs":["env=prod","v=2"]}}`,
		`{"type":"rule_set","identifier":"h","pattern":"web.","runner":{"type":"http","method":"POST","url":"https://u@example.com/hook"}}`,
		`{"type":"rule_set","identifier":"rd","pattern":"redis.","runner":{"type":"redis","url":"redis://localhost:6379/0","command":"PUBLISH","key":"events"}}`,
		`{"type":"rule_set","identifier":"sp","pattern":"","runner":{"type":"shell","command":"echo \"hi there\""}}`,
		`{"type":"remove_rule","identifier":"old.rule"}`,
	))
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Errorf("not JSON: %s: %v", l, err)
		}
	}
}

// A tock logfile written by store.Logfile: status records and outcomes
// (docs/protocol.md: dump shows each job's last outcome).
func tockRecords() []store.Record {
	return []store.Record{
		rule("rule.1", "app.", store.RunnerShell, "/bin/true"),
		job("app.job.1", 1605457800000000000, store.Planned),
		status("app.job.1", 1605457800000000000, store.Triggered, nil),
		status("app.job.1", 1605457800000000000, store.Executed, &store.Outcome{
			StartedAt: 1605457800000000001, Duration: 1500, ExitCode: 0, Output: "line 1\nok \"done\"\n"}),
		job("web.1", 7, store.Planned),
		status("web.1", 7, store.Failed, &store.Outcome{
			StartedAt: 0, Duration: 30e9, ExitCode: -1, HTTPStatus: 503, Error: "http 503\tunavailable", Attempt: 2}),
		removal("gone"),
	}
}

func TestDump_TockText(t *testing.T) {
	out, errw, code := dumpCLI(t, tockLog(t, tockRecords()...))
	expectDump(t, out, errw, code, lines(
		"RULE SET rule.1 app. shell /bin/true",
		"SET app.job.1 1605457800000000000 planned",
		"STATUS app.job.1 1605457800000000000 triggered",
		`STATUS app.job.1 1605457800000000000 executed started_at=2020-11-15T16:30:00.000000001Z duration=1.5µs exit_code=0 http_status=0 error="" output="line 1\nok \"done\"\n"`,
		"SET web.1 7 planned",
		`STATUS web.1 7 failed started_at=1970-01-01T00:00:00Z duration=30s exit_code=-1 http_status=503 error="http 503\tunavailable" output="" attempt=2`,
		"REMOVE gone",
	))
}

func TestDump_TockJSON(t *testing.T) {
	out, errw, code := dumpCLI(t, "--format", "json", tockLog(t, tockRecords()...))
	expectDump(t, out, errw, code, lines(
		`{"type":"rule_set","identifier":"rule.1","pattern":"app.","runner":{"type":"shell","command":"/bin/true"}}`,
		`{"type":"set","identifier":"app.job.1","execution":1605457800000000000,"status":"planned"}`,
		`{"type":"status","identifier":"app.job.1","execution":1605457800000000000,"status":"triggered","outcome":null}`,
		`{"type":"status","identifier":"app.job.1","execution":1605457800000000000,"status":"executed","outcome":{"started_at":"2020-11-15T16:30:00.000000001Z","duration_ns":1500,"exit_code":0,"http_status":0,"error":"","output":"line 1\nok \"done\"\n"}}`,
		`{"type":"set","identifier":"web.1","execution":7,"status":"planned"}`,
		`{"type":"status","identifier":"web.1","execution":7,"status":"failed","outcome":{"started_at":"1970-01-01T00:00:00Z","duration_ns":30000000000,"exit_code":-1,"http_status":503,"error":"http 503\tunavailable","output":"","attempt":2}}`,
		`{"type":"remove","identifier":"gone"}`,
	))
}

// The text form shows the end of a long output; JSON shows all of it.
func TestDump_TextOutputTail(t *testing.T) {
	long := strings.Repeat("a", 1000) + strings.Repeat("é", 200) + "END"
	path := tockLog(t, job("j", 1, store.Planned), status("j", 1, store.Executed, &store.Outcome{Output: long}))
	out, _, _ := dumpCLI(t, path)
	i := strings.Index(out, `output="`)
	shown := strings.TrimSuffix(out[i+len(`output="`):], "\"\n")
	if len(shown) > textOutputTail || !strings.HasSuffix(long, shown) || !strings.HasSuffix(shown, "éEND") {
		t.Fatalf("output shown as %q (%d bytes)", shown, len(shown))
	}
	out, _, _ = dumpCLI(t, "--format", "json", path)
	if !strings.Contains(out, long) {
		t.Fatal("JSON does not hold the whole output")
	}
}

func TestDump_JSONStrings(t *testing.T) {
	tests := map[string]string{
		"plain":          `"plain"`,
		`q"b\`:           `"q\"b\\"`,
		"lf\ncr\rtab\t":  `"lf\ncr\rtab\t"`,
		"nul\x00esc\x1b": `"nul\u0000esc\u001b"`,
		"é<>&\u2028":     "\"é<>&\u2028\"",
		"bad\xffbyte":    `"bad\ufffdbyte"`,
	}
	for in, want := range tests {
		got := string(appendDumpJSONString(nil, in))
		if got != want {
			t.Errorf("appendDumpJSONString(%q) = %s, want %s", in, got, want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("%s is not valid JSON", got)
		}
	}
}

// Ids that are not one bare token are quoted, so lines re-tokenize.
func TestDump_TextQuoting(t *testing.T) {
	path := tockLog(t, job("has space", 1, store.Planned), removal(`q"`), ruleRemoval(""))
	out, errw, code := dumpCLI(t, path)
	expectDump(t, out, errw, code, lines(`SET "has space" 1 planned`, `REMOVE "q\""`, `REMOVERULE ""`))
}

// ztick.md §8.3 items 36, 37, 42–45: --compact keeps the last entry per
// id, in the order of those entries, and drops ids last removed.
func TestDump_CompactZtick(t *testing.T) {
	file := ztickFrames(t,
		job("a", 1, store.Planned),
		job("b", 1, store.Planned),
		rule("r1", "old.", store.RunnerShell, "old-command"),
		job("a", 2, store.Planned),
		removal("b"),
		rule("r2", "x.", store.RunnerShell, "true"),
		rule("r1", "new.", store.RunnerShell, "new-command"),
		ruleRemoval("r2"),
		job("a", 3, store.Planned),
	)
	path := writeFile(t, file)
	out, errw, code := dumpCLI(t, "--compact", path)
	expectDump(t, out, errw, code, lines("RULE SET r1 new. shell new-command", "SET a 3 planned"))
	out, errw, code = dumpCLI(t, "--compact", "--format", "json", path)
	expectDump(t, out, errw, code, lines(
		`{"type":"rule_set","identifier":"r1","pattern":"new.","runner":{"type":"shell","command":"new-command"}}`,
		`{"type":"set","identifier":"a","execution":3,"status":"planned"}`))

	// Only removals: nothing survives.
	out, errw, code = dumpCLI(t, "--compact", writeFile(t, ztickFrames(t, removal("a"), ruleRemoval("b"))))
	expectDump(t, out, errw, code, "")

	// ztick.md §11 item 4: jobs and rules share one key space.
	out, errw, code = dumpCLI(t, "--compact", writeFile(t, ztickFrames(t, rule("x", "x.", store.RunnerShell, "true"), removal("x"), job("y", 1, store.Planned))))
	expectDump(t, out, errw, code, lines("SET y 1 planned"))
}

// For tock files --compact folds status records into their job: its SET
// with the current status, then its STATUS if it has an outcome; a re-SET
// keeps the last outcome, as replay does (store.Jobs.Apply).
func TestDump_CompactTockFoldsStatus(t *testing.T) {
	ok := &store.Outcome{StartedAt: 1e9, Duration: 2e6, ExitCode: 0}
	path := tockLog(t,
		job("a", 10, store.Planned),
		job("b", 20, store.Planned),
		status("a", 10, store.Triggered, nil),
		status("a", 10, store.Executed, ok),
		job("c", 30, store.Planned),
		status("c", 30, store.Triggered, nil),
		status("b", 20, store.Triggered, nil),
		removal("b"),
		status("b", 20, store.Failed, &store.Outcome{Error: "late result for a removed job"}),
		job("a", 11, store.Planned),
		status("ghost", 1, store.Executed, ok),
	)
	out, errw, code := dumpCLI(t, "--compact", path)
	expectDump(t, out, errw, code, lines(
		"SET c 30 triggered",
		"SET a 11 planned",
		`STATUS a 11 planned started_at=1970-01-01T00:00:01Z duration=2ms exit_code=0 http_status=0 error="" output=""`,
	))
	out, errw, code = dumpCLI(t, "--compact", "--format", "json", path)
	expectDump(t, out, errw, code, lines(
		`{"type":"set","identifier":"c","execution":30,"status":"triggered"}`,
		`{"type":"set","identifier":"a","execution":11,"status":"planned"}`,
		`{"type":"status","identifier":"a","execution":11,"status":"planned","outcome":{"started_at":"1970-01-01T00:00:01Z","duration_ns":2000000,"exit_code":0,"http_status":0,"error":"","output":""}}`,
	))
}

// Torn, damaged and undecodable frames (ztick.md §4.3, §8.3 item 38).
func TestDump_DamagedFiles(t *testing.T) {
	// frame 1 has an unknown record type: skipped with a warning.
	badType := unhexFrames(t, ztickJobToto, "00 00 00 04 09 00 01 78", ztickRemoveX)
	tockFile := tockLog(t, job("a", 1, store.Planned), job("b", 2, store.Planned), job("c", 3, store.Planned))
	b, err := os.ReadFile(tockFile)
	if err != nil {
		t.Fatal(err)
	}
	crcBad := append([]byte(nil), b...)
	crcBad[12+21+8+3] ^= 1 // in frame 1's payload (a job frame with a 1-byte id is 21 bytes)
	tests := []struct {
		name, out, warning string
		file               []byte
	}{
		{"ztick garbage tail", "SET toto 1605457800000000000 planned\n", "warning: partial trailing frame (3 bytes at offset 20) ignored", append(unhexFrames(t, ztickJobToto), 1, 2, 3)},
		{"ztick undecodable", lines("SET toto 1605457800000000000 planned", "REMOVE x"), "warning: failed to decode frame 1 at offset 20: decode record: invalid record: unknown record type 9", badType},
		{"tock torn tail", lines("SET a 1 planned", "SET b 2 planned"), "warning: partial trailing frame (", b[:len(b)-2]},
		{"tock crc mismatch", lines("SET a 1 planned", "SET c 3 planned"), "warning: skipped damaged frame 1 at offset 33 (21 bytes): CRC mismatch", crcBad},
		{"tock torn header", "", "warning: partial file header (5 bytes) ignored", b[:5]},
		{"empty", "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.file)
			out, errw, code := dumpCLI(t, path)
			if code != 0 || out != tt.out || !strings.HasPrefix(errw, tt.warning) || (tt.warning == "") != (errw == "") {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr: %s\nwant stdout:\n%s\nwant stderr starting %q", code, out, errw, tt.out, tt.warning)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, tt.file) {
				t.Fatal("dump changed the file")
			}
		})
	}
}

func TestDump_Errors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.log")
	bad := writeFile(t, []byte("TOCKLOG\x00\x00\x00\x00\x07"))
	text := writeFile(t, []byte("cat README.md\n"))
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"missing file", []string{missing}, 1, "error: file not found: " + missing + "\n"},
		{"directory", []string{dir}, 1, "error: not a regular file: " + dir + "\n"},
		{"newer format", []string{bad}, 1, "error: " + bad + ": bad logfile header: format version 7, this tock reads 1\n"},
		{"not a logfile", []string{text}, 1, "error: " + text + " is not a tock or ztick logfile (no tock header, and its first bytes are not a ztick record: payload length 1667331104 runs 1667331094 bytes past the end of the file)\n"},
		{"no file", nil, 2, ""},
		{"two files", []string{missing, missing}, 2, ""},
		{"flag after file", []string{missing, "--format", "json"}, 2, ""},
		{"bad format", []string{"--format", "yaml", missing}, 2, ""},
		{"verify and compact", []string{"--verify", "--compact", missing}, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errw, code := dumpCLI(t, tt.args...)
			if code != tt.code || out != "" || (tt.stderr != "" && errw != tt.stderr) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, stderr %q", code, out, errw, tt.code, tt.stderr)
			}
		})
	}
}

func TestDump_PermissionDenied(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads every file")
	}
	path := writeFile(t, unhexFrames(t, ztickJobToto))
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	_, errw, code := dumpCLI(t, path)
	if code != 1 || errw != "error: permission denied: "+path+"\n" {
		t.Fatalf("exit %d, stderr %q", code, errw)
	}
}

// --verify reads everything and changes nothing: ok, a torn tail (a
// warning, exit 0, as the next start trims it) or the first corrupt record
// with its offset (exit 1), as store.Replay would judge the file.
func TestDump_Verify(t *testing.T) {
	good := tockLog(t, tockRecords()...)
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	three := tockLog(t, job("a", 1, store.Planned), job("b", 2, store.Planned), job("c", 3, store.Planned))
	tb, _ := os.ReadFile(three)
	midCRC := append([]byte(nil), tb...)
	midCRC[12+8+3] ^= 1 // frame 0's payload
	badLen := append([]byte(nil), tb...)
	badLen[12+21] = 0x7f // frame 1's length, frame 2 intact after it
	ztick := append(unhexFrames(t, ztickJobToto, ztickRuleShell), 0, 0)
	tests := []struct {
		name         string
		file         []byte
		code         int
		stdout, errw string
	}{
		{"tock ok", b, 0, "ok: 7 records, " + strconv.Itoa(len(b)) + " bytes\n", ""},
		{"tock torn", b[:len(b)-3], 0, "ok: 6 records, ", "warning: torn tail at offset "},
		{"tock crc before tail", midCRC, 1, "", "corrupt record at offset 12: CRC mismatch"},
		{"tock bad length before tail", badLen, 1, "", "corrupt record at offset 33: payload length 2130706445 over the maximum 16777216, but an intact record follows at offset 54"},
		{"header only", b[:12], 0, "ok: 0 records, 12 bytes\n", ""},
		{"empty", nil, 0, "ok: 0 records, 0 bytes\n", ""},
		{"ztick ok", ztick[:len(ztick)-2], 0, "ok: 2 records, 39 bytes\n", ""},
		{"ztick torn", ztick, 0, "ok: 2 records, 39 bytes\n", "warning: torn tail at offset 39 (2 bytes): partial frame header"},
		{"ztick undecodable", unhexFrames(t, ztickJobToto, "00 00 00 01 07", ztickRemoveX), 1, "", "corrupt record at offset 20: decode record: invalid record: unknown record type 7"},
		{"bad header", []byte("TOCKLOG\x00\x00\x00\x00\x02"), 1, "", "corrupt record at offset 0: "},
		{"markdown", []byte("# tock\n\nA job scheduler.\n"), 1, "", "error: "},
		{"text shorter than a frame header", []byte("hi\n"), 1, "", "error: "},
		{"ztick-sized junk", unhexFrames(t, "00 00 00 01 07"), 1, "", "error: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.file)
			out, errw, code := dumpCLI(t, "--verify", path)
			if tt.errw == "error: " && !strings.Contains(errw, path+" is not a tock or ztick logfile") {
				t.Fatalf("stderr %q does not say the file is not a logfile", errw)
			}
			if code != tt.code || !strings.HasPrefix(out, tt.stdout) || (tt.stdout == "") != (out == "") ||
				!strings.HasPrefix(errw, tt.errw) || (tt.errw == "") != (errw == "") {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, stdout %q..., stderr %q...", code, out, errw, tt.code, tt.stdout, tt.errw)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, tt.file) {
				t.Fatal("--verify changed the file")
			}
		})
	}
}

// following runs `tock dump --follow args... path` until the test ends.
type following struct {
	out, errw *dumpOutput
	cancel    context.CancelFunc
	code      chan int
	stopped   bool
}

func follow(t *testing.T, args ...string) *following {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &following{out: newDumpOutput(), errw: newDumpOutput(), cancel: cancel, code: make(chan int, 1)}
	go func() { f.code <- runDumpIn(ctx, f.out, f.errw, append([]string{"--follow"}, args...)...) }()
	t.Cleanup(func() { f.stop(t) })
	return f
}

// stop cancels the command, as SIGINT does, and checks it exits 0.
func (f *following) stop(t *testing.T) {
	t.Helper()
	if f.stopped {
		return
	}
	f.stopped = true
	f.cancel()
	select {
	case code := <-f.code:
		if code != 0 {
			t.Errorf("--follow exited %d; stderr: %s", code, f.errw.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("--follow did not stop")
	}
}

// ztick.md §8.3 items 47–48: the initial records, then appended ones.
func TestDump_Follow(t *testing.T) {
	path := tockLog(t, job("first", 1, store.Planned))
	f := follow(t, path)
	f.out.waitFor(t, "SET first 1 planned\n")
	appendTock(t, path, rule("r", "x.", store.RunnerShell, "true"), status("first", 1, store.Executed, &store.Outcome{Duration: 1e9}))
	f.out.waitFor(t, `STATUS first 1 executed started_at=1970-01-01T00:00:00Z duration=1s exit_code=0 http_status=0 error="" output=""`)
	want := lines("SET first 1 planned", "RULE SET r x. shell true",
		`STATUS first 1 executed started_at=1970-01-01T00:00:00Z duration=1s exit_code=0 http_status=0 error="" output=""`)
	if got := f.out.String(); got != want {
		t.Fatalf("followed:\n%s\nwant:\n%s", got, want)
	}
	f.stop(t)
	if e := f.errw.String(); e != "" {
		t.Fatalf("stderr: %s", e)
	}
}

// ztick files are followed too, in JSON (ztick.md §8.3 item 48).
func TestDump_FollowZtickJSON(t *testing.T) {
	path := writeFile(t, unhexFrames(t, ztickJobToto))
	f := follow(t, "--format", "json", path)
	f.out.waitFor(t, `"identifier":"toto"`)
	appendRaw(t, path, unhexFrames(t, ztickRemoveX))
	f.out.waitFor(t, `{"type":"remove","identifier":"x"}`+"\n")
	want := lines(`{"type":"set","identifier":"toto","execution":1605457800000000000,"status":"planned"}`, `{"type":"remove","identifier":"x"}`)
	if got := f.out.String(); got != want || f.errw.String() != "" {
		t.Fatalf("followed:\n%s\nstderr: %s\nwant:\n%s", got, f.errw.String(), want)
	}
}

// One poll of --follow at a time: a half-written frame is neither printed
// nor warned about, and is printed once complete; damage that an intact
// frame follows is skipped with a warning.
func TestDump_FollowPollHalfWritten(t *testing.T) {
	path := tockLog(t, job("a", 1, store.Planned))
	out, errw := newDumpOutput(), newDumpOutput()
	d := &dumper{path: path, out: bufio.NewWriter(out), errw: errw, enc: appendDumpTextRecord}
	if err := d.open(); err != nil {
		t.Fatal(err)
	}
	defer d.f.Close()
	poll := func(want string) {
		t.Helper()
		if err := d.poll(); err != nil {
			t.Fatal(err)
		}
		if got := out.String(); got != want || errw.String() != "" {
			t.Fatalf("after poll: stdout %q, stderr %q; want stdout %q", got, errw.String(), want)
		}
	}
	poll("SET a 1 planned\n")
	frame := frameOf(t, job("b", 2, store.Planned))
	appendRaw(t, path, frame[:3])
	poll("SET a 1 planned\n")
	appendRaw(t, path, frame[3:len(frame)-1])
	poll("SET a 1 planned\n")
	appendRaw(t, path, frame[len(frame)-1:])
	poll("SET a 1 planned\nSET b 2 planned\n")

	bad := frameOf(t, job("c", 3, store.Planned))
	bad[len(bad)-1] ^= 1
	appendRaw(t, path, bad)
	poll("SET a 1 planned\nSET b 2 planned\n") // a CRC-failing last frame may be a write in progress
	appendRaw(t, path, frameOf(t, job("d", 4, store.Planned)))
	if err := d.poll(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "SET a 1 planned\nSET b 2 planned\nSET d 4 planned\n" || !strings.HasPrefix(errw.String(), "warning: skipped damaged frame 2 at offset ") {
		t.Fatalf("stdout %q, stderr %q", got, errw.String())
	}
}

// frameOf returns r as the frame a Logfile writes, cut from a fresh log.
func frameOf(t *testing.T, r store.Record) []byte {
	t.Helper()
	b, err := os.ReadFile(tockLog(t, r))
	if err != nil {
		t.Fatal(err)
	}
	return b[store.FormatTock.HeaderSize():]
}

// Following a file that holds no header yet: the records appear once a
// logfile is written into it.
func TestDump_FollowEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "000.log")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f := follow(t, path)
	appendTock(t, path, job("a", 1, store.Planned)) // OpenLogfile writes the header into the empty file
	f.out.waitFor(t, "SET a 1 planned\n")
	if got := f.out.String(); got != "SET a 1 planned\n" || f.errw.String() != "" {
		t.Fatalf("stdout %q, stderr %q", got, f.errw.String())
	}
}

// --compact applies to the initial output only; a compaction that renames
// a new file over the path has the new file printed from its start.
func TestDump_FollowCompactedFile(t *testing.T) {
	path := tockLog(t, job("a", 1, store.Planned), job("a", 2, store.Planned))
	f := follow(t, "--compact", path)
	f.out.waitFor(t, "SET a 2 planned\n")
	appendTock(t, path, job("a", 3, store.Planned))
	f.out.waitFor(t, "SET a 3 planned\n")
	if got := f.out.String(); got != lines("SET a 2 planned", "SET a 3 planned") {
		t.Fatalf("followed:\n%s", got)
	}
	l, err := store.OpenLogfile(path, store.FsyncNever)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Compact([]store.Record{job("a", 4, store.Planned)}); err != nil {
		t.Fatal(err)
	}
	f.out.waitFor(t, "SET a 4 planned\n")
	f.errw.waitFor(t, "was replaced; printing the new file from its start")
	if got := f.out.String(); got != lines("SET a 2 planned", "SET a 3 planned", "SET a 4 planned") {
		t.Fatalf("followed:\n%s", got)
	}
}

func appendRaw(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
