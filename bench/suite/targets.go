package suite

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// Target is one server configuration the suite measures.
type Target struct {
	// Name is the short name used on the command line and in results.json.
	Name string
	// Label is the row title of the table.
	Label string
	// Family groups targets by server (echo, redis, beanstalkd, tock), for
	// the chart's colours.
	Family string
	// Protocol is the load generator's protocol for it (bench.Config).
	Protocol string
	// start starts the server and waits until it answers.
	start func(ctx context.Context, e *env, t Target) (*server, error)
	// binary returns the program the target needs, "" when it is missing.
	binary func(e *env) string
}

// Targets lists every target in table order: the ceiling, the peers, tock.
var Targets = []Target{
	{Name: "echo", Label: "Go echo server (the ceiling)", Family: "echo", Protocol: "line",
		start: startEcho, binary: func(e *env) string { return e.echoArgv0() }},
	{Name: "redis", Label: "redis ZADD, no AOF", Family: "redis", Protocol: "resp",
		start: redisStarter("--appendonly", "no"), binary: func(e *env) string { return e.redisBin }},
	{Name: "redis-aof-everysec", Label: "redis ZADD, appendfsync everysec", Family: "redis", Protocol: "resp",
		start: redisStarter("--appendonly", "yes", "--appendfsync", "everysec"), binary: func(e *env) string { return e.redisBin }},
	{Name: "redis-aof-always", Label: "redis ZADD, appendfsync always", Family: "redis", Protocol: "resp",
		start: redisStarter("--appendonly", "yes", "--appendfsync", "always"), binary: func(e *env) string { return e.redisBin }},
	{Name: "beanstalkd", Label: "beanstalkd delayed put, no binlog", Family: "beanstalkd", Protocol: "beanstalk",
		start: beanstalkdStarter(false), binary: func(e *env) string { return e.beanstalkdBin }},
	{Name: "beanstalkd-binlog", Label: "beanstalkd delayed put, binlog -f0", Family: "beanstalkd", Protocol: "beanstalk",
		start: beanstalkdStarter(true), binary: func(e *env) string { return e.beanstalkdBin }},
	{Name: "tock-memory", Label: "tock SET, persistence = memory", Family: "tock", Protocol: "line",
		start: tockStarter(`persistence = "memory"`), binary: func(e *env) string { return e.tockBin }},
	{Name: "tock-fsync-always", Label: "tock SET, fsync = always", Family: "tock", Protocol: "line",
		start: tockStarter("persistence = \"logfile\"\nfsync = \"always\""), binary: func(e *env) string { return e.tockBin }},
	{Name: "tock-fsync-interval", Label: "tock SET, fsync = interval", Family: "tock", Protocol: "line",
		start: tockStarter("persistence = \"logfile\"\nfsync = \"interval\""), binary: func(e *env) string { return e.tockBin }},
}

// TargetNames returns the names of Targets, in order.
func TargetNames() []string {
	out := make([]string, len(Targets))
	for i, t := range Targets {
		out[i] = t.Name
	}
	return out
}

// env is what starting a server needs: the programs and a private
// directory under which each server gets its own.
type env struct {
	dir           string
	tockBin       string
	echoArgv      []string
	redisBin      string
	beanstalkdBin string
}

func (e *env) echoArgv0() string {
	if len(e.echoArgv) == 0 {
		return ""
	}
	return e.echoArgv[0]
}

// findProgram returns explicit when set, else name on PATH or in /usr/sbin
// or /usr/bin (Debian's redis-server and beanstalkd are in /usr/bin, but a
// PATH without the sbin directories is common for non-root users), else "".
func findProgram(explicit, name string) string {
	if explicit != "" {
		return explicit
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/usr/local/bin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// server is one running target.
type server struct {
	target Target
	addr   string
	p      *proc
}

const readyTimeout = 60 * time.Second

// serverDir makes the private directory of one server.
func (e *env) serverDir(name string) (string, error) {
	d := filepath.Join(e.dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", fmt.Errorf("work directory: %w", err)
	}
	return d, nil
}

// serverSlot is a server's directory and a free loopback port for it.
func (e *env) serverSlot(name string) (dir string, port int, addr string, err error) {
	if dir, err = e.serverDir(name); err != nil {
		return "", 0, "", err
	}
	if port, err = freePort(); err != nil {
		return "", 0, "", err
	}
	return dir, port, "127.0.0.1:" + strconv.Itoa(port), nil
}

// startChecked starts argv, waits for probe, and stops the process again
// when it never gets ready.
func startChecked(ctx context.Context, t Target, dir, addr string, probe func(string) func() error, argv ...string) (*server, error) {
	p, err := startProc(t.Name, dir, argv...)
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, p, readyTimeout, probe(addr)); err != nil {
		p.stop(5 * time.Second)
		return nil, err
	}
	return &server{target: t, addr: addr, p: p}, nil
}

func startEcho(ctx context.Context, e *env, t Target) (*server, error) {
	dir, _, addr, err := e.serverSlot(t.Name)
	if err != nil {
		return nil, err
	}
	argv := append(append([]string(nil), e.echoArgv...), addr)
	return startChecked(ctx, t, dir, addr, func(a string) func() error { return probeLine(a, "1 PING\n", "1 OK\n") }, argv...)
}

// redisStarter runs redis-server in the foreground on a free loopback
// port, RDB snapshots off (--save ""), its AOF, if any, in its directory.
func redisStarter(args ...string) func(context.Context, *env, Target) (*server, error) {
	return func(ctx context.Context, e *env, t Target) (*server, error) {
		dir, port, addr, err := e.serverSlot(t.Name)
		if err != nil {
			return nil, err
		}
		argv := append([]string{e.redisBin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
			"--save", "", "--daemonize", "no", "--protected-mode", "no", "--loglevel", "warning"}, args...)
		return startChecked(ctx, t, dir, addr, func(a string) func() error { return probeLine(a, "PING\r\n", "+PONG\r\n") }, argv...)
	}
}

// beanstalkdStarter runs beanstalkd on a free loopback port; with binlog,
// its binlog is in its directory and fsynced after every write (-f0).
func beanstalkdStarter(binlog bool) func(context.Context, *env, Target) (*server, error) {
	return func(ctx context.Context, e *env, t Target) (*server, error) {
		dir, port, addr, err := e.serverSlot(t.Name)
		if err != nil {
			return nil, err
		}
		argv := []string{e.beanstalkdBin, "-l", "127.0.0.1", "-p", strconv.Itoa(port)}
		if binlog {
			argv = append(argv, "-b", dir, "-f0")
		}
		return startChecked(ctx, t, dir, addr, func(a string) func() error { return probeLine(a, "use default\r\n", "USING default\r\n") }, argv...)
	}
}

var readyRE = regexp.MustCompile(`tock is ready: listen=(\S+)`)

// tockConfig is a production-like cluster: 2 workers, 16 shards, the
// default framerate, info logging (the ready line is logged at info), no
// HTTP listener, database keys as given.
func tockConfig(dataDir, database string) string {
	return fmt.Sprintf(`[log]
level = "info"
[controller]
listen = "127.0.0.1:0"
[database]
data_dir = %q
%s
[cluster]
workers = 2
shards = 16
worker_boot_timeout = "60s"
worker_shutdown_timeout = "10s"
[http]
listen = ""
`, dataDir, database)
}

// tockStarter runs `tock serve` with a config of its own; the listen
// address is taken from the ready line.
func tockStarter(database string) func(context.Context, *env, Target) (*server, error) {
	return func(ctx context.Context, e *env, t Target) (*server, error) {
		dir, err := e.serverDir(t.Name)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, "tock.toml")
		if err := os.WriteFile(path, []byte(tockConfig(filepath.Join(dir, "data"), database)), 0o644); err != nil {
			return nil, fmt.Errorf("tock config: %w", err)
		}
		p, err := startProc(t.Name, dir, e.tockBin, "serve", "-c", path)
		if err != nil {
			return nil, err
		}
		var addr string
		err = waitReady(ctx, p, readyTimeout, func() error {
			if m := readyRE.FindStringSubmatch(p.out.Head()); m != nil {
				addr = m[1]
				return nil
			}
			return fmt.Errorf("no ready line yet")
		})
		if err != nil {
			p.stop(15 * time.Second)
			return nil, err
		}
		return &server{target: t, addr: addr, p: p}, nil
	}
}

// targetByName returns the target called name; ok is false when there is
// none.
func targetByName(name string) (Target, bool) {
	for _, t := range Targets {
		if t.Name == name {
			return t, true
		}
	}
	return Target{}, false
}
