package runner

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tockd/tock/store"
)

func shellExec(cmd string) Execution { return exec1(store.RunnerShell, "job.shell", cmd) }

func TestShellSuccess(t *testing.T) {
	t.Parallel()
	d := New(Config{}, nil)
	before := time.Now()
	o := d.Run(context.Background(), shellExec("echo hello; echo oops >&2"))
	mustSucceed(t, o)
	checkTiming(t, o, before)
	if o.ExitCode != 0 || o.HTTPStatus != 0 {
		t.Errorf("exit %d http %d, want 0 0", o.ExitCode, o.HTTPStatus)
	}
	if o.Output != "hello\noops\n" {
		t.Errorf("output %q, want stdout and stderr combined", o.Output)
	}
}

func TestShellEnvironment(t *testing.T) {
	t.Parallel()
	d := New(Config{}, nil)
	ex := shellExec(`echo "$TOCK_JOB_ID $TOCK_JOB_EXECUTION $TOCK_RULE_ID"; echo "path=${PATH:+set}"; readlink /proc/self/fd/0`)
	ex.JobID, ex.RuleID, ex.Execution = "backup.daily", "rule.backup", 1_712_345_678_000_000_001
	o := d.Run(context.Background(), ex)
	mustSucceed(t, o)
	want := "backup.daily 1712345678000000001 rule.backup\npath=set\n/dev/null\n"
	if o.Output != want {
		t.Errorf("output %q, want %q (TOCK_* vars, inherited env, stdin /dev/null)", o.Output, want)
	}
}

func TestShellNonZeroExit(t *testing.T) {
	t.Parallel()
	d := New(Config{}, nil)
	o := d.Run(context.Background(), shellExec("echo partial; exit 3"))
	mustFail(t, o, "exit status 3")
	if o.Error != "exit status 3" || o.ExitCode != 3 {
		t.Errorf("error %q exit %d, want \"exit status 3\" 3", o.Error, o.ExitCode)
	}
	if o.Output != "partial\n" {
		t.Errorf("output %q", o.Output)
	}
}

func TestShellKilledBySignal(t *testing.T) {
	t.Parallel()
	d := New(Config{}, nil)
	o := d.Run(context.Background(), shellExec("kill -TERM $$"))
	mustFail(t, o, "SIGTERM")
	if o.ExitCode != -1 {
		t.Errorf("exit code %d, want -1 for a signal death", o.ExitCode)
	}
}

// processGone reports whether pid no longer runs (gone or a zombie).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) state ...
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

func TestShellTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	d := New(Config{ProcessTimeout: 300 * time.Millisecond}, nil)
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	before := time.Now()
	// The shell forks a child sleep (not exec'd in place) and waits for it.
	o := d.Run(context.Background(), shellExec("sleep 30 & echo $! > "+pidFile+"; wait"))
	if o.Error != "timeout after 300ms" {
		t.Fatalf("error %q, want \"timeout after 300ms\"", o.Error)
	}
	if o.ExitCode != -1 {
		t.Errorf("exit code %d, want -1", o.ExitCode)
	}
	if el := time.Since(before); el > 5*time.Second {
		t.Errorf("timed-out run took %v", el)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "the child sleep to be killed", func() bool { return processGone(pid) })
}

func TestShellTimeoutPlainSleep(t *testing.T) {
	t.Parallel()
	d := New(Config{ProcessTimeout: 200 * time.Millisecond}, nil)
	before := time.Now()
	o := d.Run(context.Background(), shellExec("sleep 30"))
	if o.Error != "timeout after 200ms" {
		t.Fatalf("error %q", o.Error)
	}
	if el := time.Since(before); el > 5*time.Second {
		t.Errorf("took %v", el)
	}
}

func TestShellCustomPathAndArgs(t *testing.T) {
	t.Parallel()
	// [ShellPath, ShellArgs..., command]: the command comes last, here as $1
	// of the -c script, after $0.
	d := New(Config{ShellPath: "/bin/sh", ShellArgs: []string{"-c", `printf '%s|%s' "$0" "$1"`, "arg0"}}, nil)
	o := d.Run(context.Background(), shellExec("the command"))
	mustSucceed(t, o)
	if o.Output != "arg0|the command" {
		t.Errorf("output %q", o.Output)
	}

	if bash, err := exec.LookPath("bash"); err == nil {
		d := New(Config{ShellPath: bash, ShellArgs: []string{"-e", "-o", "pipefail", "-c"}}, nil)
		o := d.Run(context.Background(), shellExec(`echo "$BASH_VERSION" | grep -q . && false | true`))
		mustFail(t, o, "exit status 1") // pipefail from the custom args
	}

	d = New(Config{ShellPath: "/nonexistent/tock-shell"}, nil)
	o = d.Run(context.Background(), shellExec("true"))
	mustFail(t, o, "no such file or directory")
}

func TestShellOutputTailBounded(t *testing.T) {
	t.Parallel()
	d := New(Config{MaxOutputBytes: 100}, nil)
	o := d.Run(context.Background(), shellExec("seq 1 20000"))
	mustSucceed(t, o)
	if len(o.Output) > 100 {
		t.Fatalf("output %d bytes, want <= 100", len(o.Output))
	}
	if !strings.HasSuffix(o.Output, "19999\n20000\n") {
		t.Errorf("output %q is not the tail", o.Output)
	}

	// Default: 4096 bytes.
	o = New(Config{}, nil).Run(context.Background(), shellExec("seq 1 20000"))
	if len(o.Output) != DefaultMaxOutputBytes || !strings.HasSuffix(o.Output, "\n20000\n") {
		t.Errorf("default tail: %d bytes", len(o.Output))
	}

	// Negative: nothing kept.
	o = New(Config{MaxOutputBytes: -1}, nil).Run(context.Background(), shellExec("echo hi"))
	mustSucceed(t, o)
	if o.Output != "" {
		t.Errorf("output %q, want none", o.Output)
	}
}

func TestShellBackgroundChildDoesNotHang(t *testing.T) {
	t.Parallel()
	d := New(Config{}, nil)
	before := time.Now()
	// The background sleep keeps the output pipe open after the shell exits.
	o := d.Run(context.Background(), shellExec("sleep 30 & echo $!"))
	mustSucceed(t, o)
	if el := time.Since(before); el > processWaitDelay+3*time.Second {
		t.Errorf("took %v", el)
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(o.Output)); err == nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func TestShellWrongArgs(t *testing.T) {
	t.Parallel()
	o := New(Config{}, nil).Run(context.Background(), exec1(store.RunnerShell, "j"))
	mustFail(t, o, "want 1 argument")
}

func TestDirectNoShellInterpretation(t *testing.T) {
	t.Parallel()
	d := New(Config{}, nil)
	o := d.Run(context.Background(), exec1(store.RunnerDirect, "job.direct", "/bin/echo", "$HOME", "a b", "*", ";", "|"))
	mustSucceed(t, o)
	if o.Output != "$HOME a b * ; |\n" {
		t.Errorf("output %q, want arguments verbatim", o.Output)
	}
	if o.ExitCode != 0 {
		t.Errorf("exit code %d", o.ExitCode)
	}
}

func TestDirectEnvironmentAndExit(t *testing.T) {
	t.Parallel()
	d := New(Config{}, nil)
	o := d.Run(context.Background(), exec1(store.RunnerDirect, "job.env", "env"))
	mustSucceed(t, o)
	for _, want := range []string{"TOCK_JOB_ID=job.env\n", "TOCK_JOB_EXECUTION=1700000000123456789\n", "TOCK_RULE_ID=rule.direct\n"} {
		if !strings.Contains(o.Output, want) {
			t.Errorf("env output lacks %q", want)
		}
	}
	o = d.Run(context.Background(), exec1(store.RunnerDirect, "job.false", "false"))
	mustFail(t, o, "exit status 1")
	if o.ExitCode != 1 {
		t.Errorf("exit code %d", o.ExitCode)
	}
}

func TestDirectMissingExecutable(t *testing.T) {
	t.Parallel()
	d := New(Config{}, nil)
	o := d.Run(context.Background(), exec1(store.RunnerDirect, "j", "/nonexistent/tock-prog", "x"))
	mustFail(t, o, "no such file or directory")
	if o.ExitCode != -1 {
		t.Errorf("exit code %d", o.ExitCode)
	}
	o = d.Run(context.Background(), exec1(store.RunnerDirect, "j", "tock-no-such-program-xyz"))
	mustFail(t, o, `exec: "tock-no-such-program-xyz": executable file not found in $PATH`)
	o = d.Run(context.Background(), exec1(store.RunnerDirect, "j"))
	mustFail(t, o, "missing executable")
}

// fakeBinDir creates a directory with an executable script name and puts it
// first in PATH for the test (not parallel: PATH is process-wide).
func fakeBinDir(t *testing.T, name, script string) string {
	dir := t.TempDir()
	// A child forked by a parallel test while the file is open for writing
	// would make its exec fail with ETXTBSY ("text file busy"); holding
	// ForkLock keeps every fork of this process out of that window.
	syscall.ForkLock.RLock()
	err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+script+"\n"), 0o755)
	syscall.ForkLock.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return dir
}

func TestDirectPathLookup(t *testing.T) {
	fakeBinDir(t, "tock-fake-tool", `echo "fake:$*"`)
	d := New(Config{}, nil)
	o := d.Run(context.Background(), exec1(store.RunnerDirect, "j", "tock-fake-tool", "x", "y z"))
	mustSucceed(t, o)
	if o.Output != "fake:x y z\n" {
		t.Errorf("output %q", o.Output)
	}
	o = d.Run(context.Background(), exec1(store.RunnerDirect, "j", "echo", "from", "PATH"))
	mustSucceed(t, o)
	if o.Output != "from PATH\n" {
		t.Errorf("output %q", o.Output)
	}
}

func TestAWF(t *testing.T) {
	fakeBinDir(t, "awf", `for a in "$@"; do printf '[%s]' "$a"; done; echo; echo "$TOCK_JOB_ID"; [ "$2" != fail ]`)
	d := New(Config{}, nil)
	o := d.Run(context.Background(), exec1(store.RunnerAWF, "job.awf", "deploy", "env=prod", "ver=1 2"))
	mustSucceed(t, o)
	if o.Output != "[run][deploy][--input][env=prod][--input][ver=1 2]\njob.awf\n" {
		t.Errorf("output %q", o.Output)
	}
	o = d.Run(context.Background(), exec1(store.RunnerAWF, "job.awf", "fail"))
	mustFail(t, o, "exit status 1")

	t.Setenv("PATH", t.TempDir())
	o = d.Run(context.Background(), exec1(store.RunnerAWF, "job.awf", "deploy"))
	mustFail(t, o, `exec: "awf": executable file not found in $PATH`)
}

func TestTailBuffer(t *testing.T) {
	t.Parallel()
	tb := newTailBuffer(10)
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(tb, "%d,", i)
	}
	if got := tb.String(); got != "7,998,999," {
		t.Errorf("tail %q", got)
	}
	tb = newTailBuffer(4)
	tb.Write([]byte("ab"))
	if tb.String() != "ab" {
		t.Errorf("short %q", tb.String())
	}
	tb.Write([]byte("0123456789"))
	if tb.String() != "6789" {
		t.Errorf("big write %q", tb.String())
	}
	// A multi-byte rune cut at the front is dropped.
	tb = newTailBuffer(5)
	tb.Write([]byte("xx€€"))
	if got := tb.String(); got != "€" {
		t.Errorf("utf-8 tail %q", got)
	}
}
