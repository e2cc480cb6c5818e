// Package config holds tock's configuration: the documented struct, its
// embedded defaults, loading from TOML (ztick's sections accepted) and
// validation. Flags are applied on top by cmd/tock.
//
// The usual sequence is Load (defaults, then the file, then Validate), apply
// flags, Validate again, and CheckShellPath when a file was read:
//
//	cfg, err := config.Load(path) // every problem of the file, with lines
//	applyFlags(&cfg)
//	err = cfg.Validate()          // every problem of the final values
//	err = cfg.CheckShellPath()    // only when a config file was read (ztick)
//
// Compared with ztick's line-based dialect, a tock config is real TOML
// (so ztick's `persistence = memory` without quotes must become
// `persistence = "memory"`), keys are case-sensitive, keys outside a section
// and unknown keys are errors, and `database.logfile_path` is rejected: tock
// keeps one logfile per shard under `database.data_dir`. ztick's
// `[telemetry]` keys are accepted and ignored.
package config

import (
	"runtime"
	"time"
)

// Fsync policies for database.fsync.
const (
	FsyncAlways   = "always"
	FsyncInterval = "interval"
	FsyncNever    = "never"
)

// Persistence backends for database.persistence.
const (
	PersistenceLogfile = "logfile"
	PersistenceMemory  = "memory"
)

// Config is the whole configuration of a tock cluster. Field comments give
// the TOML key; defaults are in Default.
type Config struct {
	Log        Log        `toml:"log"`
	Controller Controller `toml:"controller"`
	Database   Database   `toml:"database"`
	Cluster    Cluster    `toml:"cluster"`
	Execution  Execution  `toml:"execution"`
	Control    Control    `toml:"control"`
	Shell      Shell      `toml:"shell"`
	HTTP       HTTP       `toml:"http"`
	JetStream  JetStream  `toml:"jetstream"`
	Telemetry  Telemetry  `toml:"telemetry"`
}

// Log is the [log] section.
type Log struct {
	Level  string `toml:"level"`  // off, error, warn, info, debug, trace
	Format string `toml:"format"` // text or json
	File   string `toml:"file"`   // empty = stderr; reopened on SIGHUP
}

// Controller is the [controller] section: the client line-protocol listener.
type Controller struct {
	Listen         string `toml:"listen"`
	TLSCert        string `toml:"tls_cert"`
	TLSKey         string `toml:"tls_key"`
	AuthFile       string `toml:"auth_file"`
	MaxConnections int    `toml:"max_connections"`
	MaxLineBytes   int    `toml:"max_line_bytes"`
	// WriteDeadline: a client that takes no reply bytes for this long is
	// disconnected as a slow consumer (default 30s).
	WriteDeadline Duration `toml:"write_deadline"`
}

// Database is the [database] section.
type Database struct {
	DataDir             string `toml:"data_dir"`
	Persistence         string `toml:"persistence"` // logfile, memory or jetstream
	Fsync               string `toml:"fsync"`       // always, interval, never
	Framerate           int    `toml:"framerate"`   // ticks per second, 1..65535
	CompressionInterval int    `toml:"compression_interval"`
	// FsyncOnPersist is ztick's key; false means Fsync = never.
	FsyncOnPersist *bool `toml:"fsync_on_persist"`
}

// Cluster is the [cluster] section.
type Cluster struct {
	Workers               int      `toml:"workers"`
	Shards                int      `toml:"shards"`
	WorkerCheckInterval   Duration `toml:"worker_check_interval"`
	WorkerTimeout         Duration `toml:"worker_timeout"`
	WorkerBootTimeout     Duration `toml:"worker_boot_timeout"`
	WorkerShutdownTimeout Duration `toml:"worker_shutdown_timeout"`
}

// Execution is the [execution] section.
type Execution struct {
	MaxInflight int      `toml:"max_inflight"` // per worker
	Timeout     Duration `toml:"timeout"`      // process runners
}

// Control is the [control] section: the optional TCP control listener.
type Control struct {
	URL   string `toml:"url"`
	Token string `toml:"token"`
}

// Shell is the [shell] section used by the shell runner.
type Shell struct {
	Path string   `toml:"path"`
	Args []string `toml:"args"`
}

// HTTP is the [http] section: REST API and monitoring (keys and checks in
// http.go).
type HTTP struct {
	// Listen is the HTTP address; empty turns HTTP off. Nil means the default.
	Listen *string `toml:"listen"`
	// Pprof serves net/http/pprof under /debug/pprof/ (default off).
	Pprof bool `toml:"pprof"`
	// MonitoringAuth says whether the monitoring endpoints need a token:
	// "auto" (default), "open" or "token".
	MonitoringAuth string `toml:"monitoring_auth"`
}

// Telemetry is ztick's [telemetry] section (OpenTelemetry export). tock
// accepts its keys so that a ztick config loads unchanged, checks their
// types, and otherwise ignores them: tock exports nothing over OTLP.
type Telemetry struct {
	Enabled         bool   `toml:"enabled"`
	Endpoint        string `toml:"endpoint"`
	ServiceName     string `toml:"service_name"`
	FlushIntervalMS int    `toml:"flush_interval_ms"`
}

// Duration is a time.Duration that reads from TOML as "1s", "250ms", ...
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText formats the duration as Go does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// Defaults.
const (
	DefaultListen              = "127.0.0.1:5678"
	DefaultHTTPListen          = "127.0.0.1:5680"
	DefaultDataDir             = "tock-data"
	DefaultFramerate           = 512
	DefaultCompressionInterval = 3600
	DefaultShards              = 16
	DefaultMaxInflight         = 64
	DefaultMaxConnections      = 10000
	DefaultMaxLineBytes        = 4096
	DefaultWriteDeadline       = 30 * time.Second
	DefaultCheckInterval       = time.Second
	DefaultWorkerTimeout       = 30 * time.Second
	DefaultBootTimeout         = 30 * time.Second
	DefaultShutdownTimeout     = 30 * time.Second
	DefaultExecutionTimeout    = 5 * time.Minute
	// NetworkRunnerTimeout bounds http, redis and amqp executions.
	NetworkRunnerTimeout = 30 * time.Second
)

// DefaultWorkers is the number of CPUs, at least 2.
func DefaultWorkers() int { return max(2, runtime.NumCPU()) }

// Default returns the embedded default configuration.
func Default() Config {
	httpListen := DefaultHTTPListen
	return Config{
		Log: Log{Level: "info", Format: "text"},
		Controller: Controller{
			Listen:         DefaultListen,
			MaxConnections: DefaultMaxConnections,
			MaxLineBytes:   DefaultMaxLineBytes,
			WriteDeadline:  Duration{DefaultWriteDeadline},
		},
		Database: Database{
			DataDir:             DefaultDataDir,
			Persistence:         PersistenceLogfile,
			Fsync:               FsyncAlways,
			Framerate:           DefaultFramerate,
			CompressionInterval: DefaultCompressionInterval,
		},
		Cluster: Cluster{
			Workers:               DefaultWorkers(),
			Shards:                DefaultShards,
			WorkerCheckInterval:   Duration{DefaultCheckInterval},
			WorkerTimeout:         Duration{DefaultWorkerTimeout},
			WorkerBootTimeout:     Duration{DefaultBootTimeout},
			WorkerShutdownTimeout: Duration{DefaultShutdownTimeout},
		},
		Execution: Execution{MaxInflight: DefaultMaxInflight, Timeout: Duration{DefaultExecutionTimeout}},
		Shell:     Shell{Path: "/bin/sh", Args: []string{"-c"}},
		HTTP:      HTTP{Listen: &httpListen, MonitoringAuth: MonitoringAuthAuto},
		JetStream: JetStream{ClusterName: DefaultJetStreamCluster, Replicas: DefaultJetStreamReplicas, HostName: defaultHostName(), LeaseTTL: Duration{DefaultLeaseTTL}},
	}
}

// HTTPListen returns the HTTP address, "" when HTTP is off.
func (c Config) HTTPListen() string {
	if c.HTTP.Listen == nil {
		return DefaultHTTPListen
	}
	return *c.HTTP.Listen
}
