package runner

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tockd/tock/store"
)

func TestDispatcherDefaults(t *testing.T) {
	t.Parallel()
	c := New(Config{}, nil).Config()
	if c.ShellPath != "/bin/sh" || len(c.ShellArgs) != 1 || c.ShellArgs[0] != "-c" ||
		c.ProcessTimeout != 5*time.Minute || c.NetworkTimeout != 30*time.Second || c.MaxOutputBytes != 4096 {
		t.Errorf("defaults %+v", c)
	}
	if got := (&TimeoutError{After: 5 * time.Minute}).Error(); got != "timeout after 5m0s" {
		t.Errorf("TimeoutError = %q", got)
	}
	// An explicitly empty ShellArgs means no arguments.
	if c := New(Config{ShellArgs: []string{}}, nil).Config(); len(c.ShellArgs) != 0 {
		t.Errorf("ShellArgs %v", c.ShellArgs)
	}
}

func TestDispatcherUnknownKind(t *testing.T) {
	t.Parallel()
	before := time.Now()
	o := New(Config{}, nil).Run(context.Background(), Execution{JobID: "j", Runner: store.Runner{Kind: 42}})
	mustFail(t, o, "unknown runner kind runner(42)")
	checkTiming(t, o, before)
	if o.ExitCode != -1 {
		t.Errorf("exit code %d", o.ExitCode)
	}
}

type urlPanicRunner struct{}

func (urlPanicRunner) Run(_ context.Context, ex Execution) store.Outcome {
	panic("cannot reach " + ex.Runner.Args[1])
}

func TestDispatcherRecoversPanic(t *testing.T) {
	t.Parallel()
	log, logs := traceLogger()
	d := New(Config{}, log)
	d.runners[store.RunnerHTTP] = urlPanicRunner{}
	before := time.Now()
	o := d.Run(context.Background(), exec1(store.RunnerHTTP, "j", "GET", "http://u:hunter22@example.com/"))
	mustFail(t, o, "runner panic: cannot reach http://u:xxxxx@example.com/")
	checkTiming(t, o, before)
	if o.ExitCode != -1 {
		t.Errorf("exit code %d", o.ExitCode)
	}
	if strings.Contains(logs.String(), "hunter22") || strings.Contains(o.Error, "hunter22") {
		t.Errorf("password leaked: %q / %s", o.Error, logs.String())
	}
}

func TestDispatcherParentCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(ErrShutdown)
	o := New(Config{}, nil).Run(ctx, exec1(store.RunnerShell, "j", "sleep 30"))
	if o.Error != ErrShutdown.Error() {
		t.Errorf("error %q, want the parent's cause", o.Error)
	}
}

func TestDispatcherCloseIdempotent(t *testing.T) {
	t.Parallel()
	d := New(Config{}, nil)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	o := d.Run(context.Background(), exec1(store.RunnerRedis, "j", "redis://127.0.0.1:1", "SET", "k"))
	mustFail(t, o, "runner closed")
	// Process runners do not depend on Close.
	mustSucceed(t, d.Run(context.Background(), exec1(store.RunnerShell, "j", "true")))
}

func TestRedact(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"redis://user:secret@host:6379/2", "redis://user:xxxxx@host:6379/2"},
		{"redis://:secret@host", "redis://:xxxxx@host"},
		{"redis://user@host", "redis://user@host"},
		{"redis://host:6379", "redis://host:6379"},
		{"amqp://guest:guest@127.0.0.1:5672/vhost", "amqp://guest:xxxxx@127.0.0.1:5672/vhost"},
		{"amqp://u:p%40ss%2Fw@h/v", "amqp://u:xxxxx@h/v"},
		{"http://a:b@h/path?q=1#f", "http://a:xxxxx@h/path?q=1#f"},
		{"http://h:8080/cb?mail=a@b.c", "http://h:8080/cb?mail=a@b.c"},
		{"https://h/users/@me", "https://h/users/@me"},
		{"redis://u:p@ss@host", "redis://u:xxxxx@host"},
		// Unparsable: the last '@' ends the userinfo, nothing leaks.
		{"redis://:pa/ss@host", "redis://:xxxxx@host"},
		{"redis://:pa#ss@host", "redis://:xxxxx@host"},
		{"redis://:pa?ss@host", "redis://:xxxxx@host"},
		{"http://u:p w@[::1", "http://u:xxxxx@[::1"},
		{"user:pw@host:1", "user:xxxxx@host:1"},
		{"", ""},
		{"not a url", "not a url"},
	} {
		if got := redact(c.in); got != c.want {
			t.Errorf("redact(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestScrub(t *testing.T) {
	t.Parallel()
	raw := "amqp://u:p%40ss@h:1/"
	text := `dial "amqp://u:p%40ss@h:1/" failed; password p@ss; encoded p%40ss`
	got := scrub(text, raw)
	if strings.Contains(got, "p@ss") || strings.Contains(got, "p%40ss") {
		t.Errorf("scrub left the password: %q", got)
	}
	if !strings.Contains(got, "amqp://u:xxxxx@h:1/") {
		t.Errorf("scrub = %q", got)
	}
	if got := scrub("dial amqp://guest:guest@h/ failed for guest", "amqp://guest:guest@h/"); got != "dial amqp://guest:xxxxx@h/ failed for xxxxx" {
		t.Errorf("scrub guest:guest = %q", got)
	}
	if got := scrub("no secrets here", "redis://host"); got != "no secrets here" {
		t.Errorf("scrub changed text without credentials: %q", got)
	}
}
