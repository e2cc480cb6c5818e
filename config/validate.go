package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Limits checked by Validate.
const (
	MaxWorkers      = 1024
	MaxShards       = 4096
	MaxFramerate    = 65535
	MinMaxLineBytes = 64
	MaxMaxLineBytes = 16 << 20
)

var (
	logLevels    = []string{"off", "error", "warn", "info", "debug", "trace"}
	logFormats   = []string{"text", "json"}
	persistences = []string{PersistenceLogfile, PersistenceMemory, PersistenceJetStream}
	fsyncs       = []string{FsyncAlways, FsyncInterval, FsyncNever}
)

// Validate checks every value and returns an *Error listing every problem,
// or nil. It does not touch the file system; see CheckShellPath.
func (c *Config) Validate() error {
	if ps := c.problems(); len(ps) > 0 {
		return &Error{Problems: ps}
	}
	return nil
}

func (c *Config) problems() problems {
	var ps problems
	c.Log.check(&ps)
	c.Controller.check(&ps)
	c.Database.check(&ps)
	c.Cluster.check(&ps)
	c.Execution.check(&ps)
	c.Control.check(&ps)
	if c.Shell.Path == "" {
		ps.add("shell.path", "must not be empty")
	}
	c.checkHTTP(&ps)
	c.checkJetStream(&ps)
	return ps
}

func (l Log) check(ps *problems) {
	ps.oneOf("log.level", l.Level, logLevels)
	ps.oneOf("log.format", l.Format, logFormats)
}

func (c Controller) check(ps *problems) {
	if c.Listen == "" {
		ps.add("controller.listen", "must not be empty")
	} else {
		ps.addr("controller.listen", c.Listen)
	}
	switch {
	case c.TLSCert != "" && c.TLSKey == "":
		ps.add("controller.tls_cert", "requires controller.tls_key")
	case c.TLSCert == "" && c.TLSKey != "":
		ps.add("controller.tls_key", "requires controller.tls_cert")
	}
	ps.atLeast("controller.max_connections", c.MaxConnections, 1)
	ps.between("controller.max_line_bytes", c.MaxLineBytes, MinMaxLineBytes, MaxMaxLineBytes)
	ps.positive("controller.write_deadline", c.WriteDeadline.Duration)
}

func (d Database) check(ps *problems) {
	ps.oneOf("database.persistence", d.Persistence, persistences)
	ps.oneOf("database.fsync", d.Fsync, fsyncs)
	ps.between("database.framerate", d.Framerate, 1, MaxFramerate)
	ps.atLeast("database.compression_interval", d.CompressionInterval, 0)
	if d.DataDir == "" && d.Persistence != PersistenceMemory {
		ps.add("database.data_dir", `must not be empty unless database.persistence = "memory"`)
	}
}

func (c Cluster) check(ps *problems) {
	ps.between("cluster.workers", c.Workers, 1, MaxWorkers)
	ps.between("cluster.shards", c.Shards, 1, MaxShards)
	ps.positive("cluster.worker_check_interval", c.WorkerCheckInterval.Duration)
	ps.positive("cluster.worker_timeout", c.WorkerTimeout.Duration)
	ps.positive("cluster.worker_boot_timeout", c.WorkerBootTimeout.Duration)
	ps.positive("cluster.worker_shutdown_timeout", c.WorkerShutdownTimeout.Duration)
}

func (e Execution) check(ps *problems) {
	ps.atLeast("execution.max_inflight", e.MaxInflight, 1)
	ps.positive("execution.timeout", e.Timeout.Duration)
}

func (c Control) check(ps *problems) {
	if c.URL == "" {
		return
	}
	if hostport, ok := strings.CutPrefix(c.URL, "tcp://"); !ok {
		ps.add("control.url", fmt.Sprintf("%q must be tcp://host:port", c.URL))
	} else {
		ps.addr("control.url", hostport)
	}
	if c.Token == "" {
		ps.add("control.url", "requires control.token")
	}
}

func (ps *problems) oneOf(key, v string, allowed []string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	ps.add(key, fmt.Sprintf("%q is not one of %s", v, strings.Join(allowed, ", ")))
}

func (ps *problems) between(key string, v, lo, hi int) {
	if v < lo || v > hi {
		ps.add(key, fmt.Sprintf("must be between %d and %d, got %d", lo, hi, v))
	}
}

func (ps *problems) atLeast(key string, v, lo int) {
	if v < lo {
		ps.add(key, fmt.Sprintf("must be at least %d, got %d", lo, v))
	}
}

func (ps *problems) positive(key string, d time.Duration) {
	if d <= 0 {
		ps.add(key, fmt.Sprintf("must be a positive duration such as \"1s\" or \"250ms\", got %q", d.String()))
	}
}

// addr checks a listen address host:port (host may be empty, a name, an IP
// or a bracketed IPv6 literal such as [::1]; port 0-65535).
func (ps *problems) addr(key, a string) {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		var ae *net.AddrError
		why := err.Error()
		if errors.As(err, &ae) {
			why = ae.Err
		}
		ps.add(key, fmt.Sprintf("%q is not host:port (%s)", a, why))
		return
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		ps.add(key, fmt.Sprintf("%q has an invalid port %q (want 0-65535)", a, port))
	}
}

// CheckShellPath checks that shell.path is an executable file (a name
// without a slash is looked up in PATH). ztick runs this check only when a
// config file was read, and so should the caller.
func (c *Config) CheckShellPath() error {
	p := c.Shell.Path
	if p == "" {
		return errors.New("shell.path: must not be empty")
	}
	if !strings.Contains(p, "/") {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("shell.path: %q is not an executable in PATH: %w", p, err)
		}
		return nil
	}
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		return fmt.Errorf("shell.path: %w", err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("shell.path: %q is not a regular file", p)
	case fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("shell.path: %q is not executable", p)
	}
	return nil
}
