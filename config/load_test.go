package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// load writes text to a tock.toml in a temp dir and loads it.
func load(t *testing.T, text string) (Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tock.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return Load(path)
}

func mustLoad(t *testing.T, text string) Config {
	t.Helper()
	cfg, err := load(t, text)
	if err != nil {
		t.Fatalf("Load:\n%s\nerror:\n%v", text, err)
	}
	return cfg
}

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default() does not validate: %v", err)
	}
	checks := map[string]bool{
		"log.level":           c.Log.Level == "info",
		"log.format":          c.Log.Format == "text",
		"controller.listen":   c.Controller.Listen == "127.0.0.1:5678",
		"max_connections":     c.Controller.MaxConnections == 10000,
		"max_line_bytes":      c.Controller.MaxLineBytes == 4096,
		"data_dir":            c.Database.DataDir == "tock-data",
		"persistence":         c.Database.Persistence == "logfile",
		"fsync":               c.Database.Fsync == "always",
		"framerate":           c.Database.Framerate == 512,
		"compression":         c.Database.CompressionInterval == 3600,
		"workers":             c.Cluster.Workers >= 2,
		"shards":              c.Cluster.Shards == 16,
		"check interval":      c.Cluster.WorkerCheckInterval.Duration == time.Second,
		"worker timeout":      c.Cluster.WorkerTimeout.Duration == 30*time.Second,
		"boot timeout":        c.Cluster.WorkerBootTimeout.Duration == 30*time.Second,
		"shutdown timeout":    c.Cluster.WorkerShutdownTimeout.Duration == 30*time.Second,
		"max_inflight":        c.Execution.MaxInflight == 64,
		"execution timeout":   c.Execution.Timeout.Duration == 5*time.Minute,
		"shell":               c.Shell.Path == "/bin/sh" && reflect.DeepEqual(c.Shell.Args, []string{"-c"}),
		"http listen":         c.HTTPListen() == "127.0.0.1:5680",
		"no control listener": c.Control.URL == "",
	}
	for name, ok := range checks {
		if !ok {
			t.Errorf("default %s is wrong: %+v", name, c)
		}
	}
}

func TestLoadEmptyFileIsDefault(t *testing.T) {
	cfg := mustLoad(t, "# nothing\n")
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("empty file: %+v", cfg)
	}
}

// TestLoadEveryKey: the shared config that sets every key loads cleanly.
func TestLoadEveryKey(t *testing.T) {
	cfg, err := Load("../testdata/config/tock.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Cluster.Workers = 4
	want.Control = Control{URL: "tcp://127.0.0.1:5681", Token: "change-me"}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("testdata/config/tock.toml:\n got %+v\nwant %+v", cfg, want)
	}
}

// TestLoadZtickConfig: a config using every ztick section and key loads
// with ztick's meaning (docs/configuration.md).
func TestLoadZtickConfig(t *testing.T) {
	cfg, err := Load("../testdata/config/ztick.toml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.Level != "debug" || cfg.Database.Persistence != PersistenceMemory || cfg.Database.Fsync != FsyncNever ||
		cfg.Controller.TLSCert != "test/fixtures/tls/cert.pem" || cfg.Controller.TLSKey != "test/fixtures/tls/key.pem" ||
		cfg.Controller.AuthFile != "testdata/auth/tokens.toml" || cfg.HTTPListen() != "127.0.0.1:5680" ||
		!cfg.Telemetry.Enabled || cfg.Telemetry.FlushIntervalMS != 5000 {
		t.Fatalf("ztick config: %+v", cfg)
	}
}

// TestLoadZtickExamples: ztick's own example files. Those with
// logfile_path are rejected with a pointer to data_dir; the rest load.
func TestLoadZtickExamples(t *testing.T) {
	httpExample := "[log]\nlevel = \"debug\"\n\n[controller]\nlisten = \"127.0.0.1:5678\"\n\n[http]\nlisten = \"127.0.0.1:5680\"\n\n[database]\npersistence = \"memory\"\n"
	cfg := mustLoad(t, httpExample)
	if cfg.Database.Persistence != PersistenceMemory || cfg.Log.Level != "debug" {
		t.Fatalf("config-http.toml: %+v", cfg)
	}

	mainExample := "[log]\nlevel = \"info\"\n\n[controller]\nlisten = \"127.0.0.1:5678\"\n\n[database]\nfsync_on_persist = false\nframerate = 512\nlogfile_path = \"ztick.log\""
	_, err := load(t, mainExample)
	if err == nil {
		t.Fatal("logfile_path accepted")
	}
	want := "tock.toml:10: database.logfile_path: not supported: tock keeps its logfiles under database.data_dir"
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
}

// TestLoadOverrides: every key overrides its default.
func TestLoadOverrides(t *testing.T) {
	tests := []struct {
		name, text string
		check      func(c Config) bool
	}{
		{"log.level", "[log]\nlevel = \"trace\"", func(c Config) bool { return c.Log.Level == "trace" }},
		{"log.format", "[log]\nformat = \"json\"", func(c Config) bool { return c.Log.Format == "json" }},
		{"log.file", "[log]\nfile = \"/var/log/tock.log\"", func(c Config) bool { return c.Log.File == "/var/log/tock.log" }},
		{"controller.listen", "[controller]\nlisten = \"[::1]:5678\"", func(c Config) bool { return c.Controller.Listen == "[::1]:5678" }},
		{"controller.tls", "[controller]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"", func(c Config) bool { return c.Controller.TLSCert == "c.pem" && c.Controller.TLSKey == "k.pem" }},
		{"controller.auth_file", "[controller]\nauth_file = \"auth.toml\"", func(c Config) bool { return c.Controller.AuthFile == "auth.toml" }},
		{"controller.max_connections", "[controller]\nmax_connections = 5", func(c Config) bool { return c.Controller.MaxConnections == 5 }},
		{"controller.max_line_bytes", "[controller]\nmax_line_bytes = 65536", func(c Config) bool { return c.Controller.MaxLineBytes == 65536 }},
		{"database.data_dir", "[database]\ndata_dir = \"/srv/tock\"", func(c Config) bool { return c.Database.DataDir == "/srv/tock" }},
		{"database.persistence", "[database]\npersistence = \"memory\"", func(c Config) bool { return c.Database.Persistence == "memory" }},
		{"database.fsync", "[database]\nfsync = \"interval\"", func(c Config) bool { return c.Database.Fsync == "interval" }},
		{"database.framerate", "[database]\nframerate = 1000", func(c Config) bool { return c.Database.Framerate == 1000 }},
		{"database.compression_interval", "[database]\ncompression_interval = 0", func(c Config) bool { return c.Database.CompressionInterval == 0 }},
		{"cluster.workers", "[cluster]\nworkers = 8", func(c Config) bool { return c.Cluster.Workers == 8 }},
		{"cluster.shards", "[cluster]\nshards = 64", func(c Config) bool { return c.Cluster.Shards == 64 }},
		{"cluster.worker_check_interval", "[cluster]\nworker_check_interval = \"250ms\"", func(c Config) bool { return c.Cluster.WorkerCheckInterval.Duration == 250*time.Millisecond }},
		{"cluster.worker_timeout", "[cluster]\nworker_timeout = \"1s\"", func(c Config) bool { return c.Cluster.WorkerTimeout.Duration == time.Second }},
		{"cluster.worker_boot_timeout", "[cluster]\nworker_boot_timeout = \"1m30s\"", func(c Config) bool { return c.Cluster.WorkerBootTimeout.Duration == 90*time.Second }},
		{"cluster.worker_shutdown_timeout", "[cluster]\nworker_shutdown_timeout = \"2h\"", func(c Config) bool { return c.Cluster.WorkerShutdownTimeout.Duration == 2*time.Hour }},
		{"execution.max_inflight", "[execution]\nmax_inflight = 1", func(c Config) bool { return c.Execution.MaxInflight == 1 }},
		{"execution.timeout", "[execution]\ntimeout = \"10s\"", func(c Config) bool { return c.Execution.Timeout.Duration == 10*time.Second }},
		{"control", "[control]\nurl = \"tcp://0.0.0.0:5681\"\ntoken = \"t\"", func(c Config) bool { return c.Control.URL == "tcp://0.0.0.0:5681" && c.Control.Token == "t" }},
		{"shell", "[shell]\npath = \"/bin/bash\"\nargs = [\"-e\", \"-c\"]", func(c Config) bool {
			return c.Shell.Path == "/bin/bash" && reflect.DeepEqual(c.Shell.Args, []string{"-e", "-c"})
		}},
		{"shell.args empty", "[shell]\nargs = []", func(c Config) bool { return len(c.Shell.Args) == 0 }},
		{"http.listen", "[http]\nlisten = \"0.0.0.0:8080\"", func(c Config) bool { return c.HTTPListen() == "0.0.0.0:8080" }},
		{"http.listen off", "[http]\nlisten = \"\"", func(c Config) bool { return c.HTTPListen() == "" }},
		{"telemetry", "[telemetry]\nenabled = true\nendpoint = \"http://x:4318\"\nservice_name = \"s\"\nflush_interval_ms = 1", func(c Config) bool {
			return c.Telemetry == Telemetry{Enabled: true, Endpoint: "http://x:4318", ServiceName: "s", FlushIntervalMS: 1}
		}},
		{"dotted keys", "log.level = \"warn\"\ndatabase.framerate = 7", func(c Config) bool { return c.Log.Level == "warn" && c.Database.Framerate == 7 }},
		{"inline table", "cluster = { workers = 3, shards = 2 }", func(c Config) bool { return c.Cluster.Workers == 3 && c.Cluster.Shards == 2 }},
		{"multi-line array", "[shell]\nargs = [\n  \"-e\",\n  \"-c\",\n]", func(c Config) bool { return reflect.DeepEqual(c.Shell.Args, []string{"-e", "-c"}) }},
		{"crlf file", "[log]\r\nlevel = \"warn\"\r\n", func(c Config) bool { return c.Log.Level == "warn" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c := mustLoad(t, tt.text); !tt.check(c) {
				t.Fatalf("override not applied: %+v", c)
			}
		})
	}
}

func TestLoadFsyncOnPersist(t *testing.T) {
	tests := []struct {
		name, text, want, err string
	}{
		{"false means never", "[database]\nfsync_on_persist = false", FsyncNever, ""},
		{"true keeps always", "[database]\nfsync_on_persist = true", FsyncAlways, ""},
		{"true keeps given fsync", "[database]\nfsync_on_persist = true\nfsync = \"interval\"", FsyncInterval, ""},
		{"false with never", "[database]\nfsync_on_persist = false\nfsync = \"never\"", FsyncNever, ""},
		{"false conflicts", "[database]\nfsync = \"always\"\nfsync_on_persist = false", "", `tock.toml:3: database.fsync_on_persist: false means database.fsync = "never", which conflicts with database.fsync = "always"`},
		{"not a bool", "[database]\nfsync_on_persist = \"true\"", "", "tock.toml:2: database.fsync_on_persist: incompatible types"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := load(t, tt.text)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || cfg.Database.Fsync != tt.want {
				t.Fatalf("fsync = %q, %v; want %q", cfg.Database.Fsync, err, tt.want)
			}
		})
	}
}

// TestLoadRejections: every rejection names the file, line and key.
func TestLoadRejections(t *testing.T) {
	tests := []struct {
		name, text string
		want       string
	}{
		{"unknown section", "[log]\nlevel = \"info\"\n\n[metrics]\nx = 1", "tock.toml:4: metrics: unknown section"},
		{"unknown key", "[log]\nlevel = \"info\"\ncolour = \"red\"", "tock.toml:3: log.colour: unknown key"},
		{"unknown key in later section", "[log]\nlevel = \"info\"\n[database]\n\nframerate = 5\nlevel = 3", "tock.toml:6: database.level: unknown key"},
		{"key is case sensitive", "[log]\nLevel = \"info\"", "tock.toml:2: log.Level: unknown key"},
		{"section is case sensitive", "[LOG]\nlevel = \"info\"", "tock.toml:1: LOG: unknown section"},
		{"top-level key", "workers = 4", "tock.toml:1: workers: unknown key (keys belong in a [section])"},
		{"section not a table", "log = \"info\"", "tock.toml:1: log: must be a table"},
		{"array of tables", "[[log]]\nlevel = \"info\"", "tock.toml:1: log: must be a table"},
		{"nested unknown", "[log.extra]\nx = 1", "tock.toml:1: log.extra: unknown key"},
		{"dotted unknown", "[database]\nfoo.bar = 1", "tock.toml:2: database.foo: unknown key"},
		{"quoted unknown key", "[log]\n\"le vel\" = 1", `tock.toml:2: log."le vel": unknown key`},
		{"logfile_path", "[database]\nlogfile_path = \"x\"", "tock.toml:2: database.logfile_path: not supported: tock keeps its logfiles under database.data_dir"},
		{"wrong type", "[cluster]\nworkers = \"four\"", "tock.toml:2: cluster.workers: incompatible types: TOML value has type string; destination has type integer"},
		{"bad duration", "[cluster]\nworker_timeout = \"soon\"", `tock.toml:2: cluster.worker_timeout: time: invalid duration "soon"`},
		{"duration without unit", "[cluster]\nworker_timeout = 30", `tock.toml:2: cluster.worker_timeout: time: missing unit in duration "30"`},
		{"args not strings", "[shell]\nargs = [1]", "tock.toml:2: shell.args: incompatible types"},
		{"syntax error", "[log]\nlevel = info", "tock.toml:2: syntax error:"},
		{"ztick bare string", "[database]\npersistence = memory", "tock.toml:2: syntax error:"},
		{"log.level", "[log]\nlevel = \"loud\"", `tock.toml:2: log.level: "loud" is not one of off, error, warn, info, debug, trace`},
		{"log.format", "[log]\nformat = \"xml\"", `tock.toml:2: log.format: "xml" is not one of text, json`},
		{"persistence", "[database]\npersistence = \"disk\"", `tock.toml:2: database.persistence: "disk" is not one of logfile, memory`},
		{"fsync", "[database]\nfsync = \"sometimes\"", `tock.toml:2: database.fsync: "sometimes" is not one of always, interval, never`},
		{"framerate 0", "[database]\nframerate = 0", "tock.toml:2: database.framerate: must be between 1 and 65535, got 0"},
		{"framerate big", "[database]\nframerate = 65536", "tock.toml:2: database.framerate: must be between 1 and 65535, got 65536"},
		{"compression negative", "[database]\ncompression_interval = -1", "tock.toml:2: database.compression_interval: must be at least 0, got -1"},
		{"data_dir empty", "[database]\ndata_dir = \"\"", `tock.toml:2: database.data_dir: must not be empty unless database.persistence = "memory"`},
		{"workers 0", "[cluster]\nworkers = 0", "tock.toml:2: cluster.workers: must be between 1 and 1024, got 0"},
		{"workers huge", "[cluster]\nworkers = 5000", "tock.toml:2: cluster.workers: must be between 1 and 1024, got 5000"},
		{"shards 0", "[cluster]\nshards = 0", "tock.toml:2: cluster.shards: must be between 1 and 4096, got 0"},
		{"shards huge", "[cluster]\nshards = 4097", "tock.toml:2: cluster.shards: must be between 1 and 4096, got 4097"},
		{"check interval 0", "[cluster]\nworker_check_interval = \"0s\"", `tock.toml:2: cluster.worker_check_interval: must be a positive duration such as "1s" or "250ms", got "0s"`},
		{"worker timeout negative", "[cluster]\nworker_timeout = \"-1s\"", "tock.toml:2: cluster.worker_timeout: must be a positive duration"},
		{"boot timeout 0", "[cluster]\nworker_boot_timeout = \"0ms\"", "tock.toml:2: cluster.worker_boot_timeout: must be a positive duration"},
		{"shutdown timeout 0", "[cluster]\nworker_shutdown_timeout = \"0s\"", "tock.toml:2: cluster.worker_shutdown_timeout: must be a positive duration"},
		{"max_inflight 0", "[execution]\nmax_inflight = 0", "tock.toml:2: execution.max_inflight: must be at least 1, got 0"},
		{"execution timeout 0", "[execution]\ntimeout = \"0s\"", "tock.toml:2: execution.timeout: must be a positive duration"},
		{"max_connections 0", "[controller]\nmax_connections = 0", "tock.toml:2: controller.max_connections: must be at least 1, got 0"},
		{"max_line_bytes small", "[controller]\nmax_line_bytes = 63", "tock.toml:2: controller.max_line_bytes: must be between 64 and 16777216, got 63"},
		{"max_line_bytes big", "[controller]\nmax_line_bytes = 16777217", "tock.toml:2: controller.max_line_bytes: must be between 64 and 16777216, got 16777217"},
		{"tls cert alone", "[controller]\ntls_cert = \"c.pem\"", "tock.toml:2: controller.tls_cert: requires controller.tls_key"},
		{"tls key alone", "[controller]\n\ntls_key = \"k.pem\"", "tock.toml:3: controller.tls_key: requires controller.tls_cert"},
		{"listen no port", "[controller]\nlisten = \"localhost\"", `tock.toml:2: controller.listen: "localhost" is not host:port (missing port in address)`},
		{"listen bad port", "[controller]\nlisten = \"localhost:http\"", `tock.toml:2: controller.listen: "localhost:http" has an invalid port "http" (want 0-65535)`},
		{"listen port too big", "[controller]\nlisten = \":65536\"", `controller.listen: ":65536" has an invalid port "65536"`},
		{"listen unbracketed ipv6", "[controller]\nlisten = \"::1:5678\"", `tock.toml:2: controller.listen: "::1:5678" is not host:port (too many colons in address)`},
		{"listen empty", "[controller]\nlisten = \"\"", "tock.toml:2: controller.listen: must not be empty"},
		{"http listen bad", "[http]\nlisten = \"nope\"", `tock.toml:2: http.listen: "nope" is not host:port`},
		{"control url scheme", "[control]\nurl = \"http://h:1\"\ntoken = \"t\"", `tock.toml:2: control.url: "http://h:1" must be tcp://host:port`},
		{"control url no port", "[control]\nurl = \"tcp://h\"\ntoken = \"t\"", `tock.toml:2: control.url: "h" is not host:port`},
		{"control url without token", "[control]\nurl = \"tcp://127.0.0.1:5681\"", "tock.toml:2: control.url: requires control.token"},
		{"shell path empty", "[shell]\npath = \"\"", "tock.toml:2: shell.path: must not be empty"},
		{"telemetry wrong type", "[telemetry]\nenabled = \"yes\"", "tock.toml:2: telemetry.enabled: incompatible types"},
		{"telemetry unknown key", "[telemetry]\nheaders = \"x\"", "tock.toml:2: telemetry.headers: unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.text)
			if err == nil {
				t.Fatalf("accepted:\n%s", tt.text)
			}
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("error %v is not a *config.Error", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, tt.want)
			}
		})
	}
}

// TestLoadCollectsAllProblems: one error, one problem per line.
func TestLoadCollectsAllProblems(t *testing.T) {
	text := `[log]
level = "loud"
colour = "red"

[database]
logfile_path = "ztick.log"
framerate = 0

[cluster]
workers = "many"
shards = 0

[nope]
`
	_, err := load(t, text)
	if err == nil {
		t.Fatal("accepted")
	}
	want := []string{
		"tock.toml:3: log.colour: unknown key",
		"tock.toml:6: database.logfile_path: not supported",
		"tock.toml:10: cluster.workers: incompatible types",
		"tock.toml:13: nope: unknown section",
		"tock.toml:2: log.level:",
		"tock.toml:7: database.framerate:",
		"tock.toml:11: cluster.shards:",
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("problem %d = %q, want it to contain %q", i, lines[i], w)
		}
	}
}

func TestLoadFileErrors(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	big := strings.Repeat("# padding\n", MaxFileSize/10+1)
	if _, err := load(t, big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("big file: %v", err)
	}
}

func TestKeyLines(t *testing.T) {
	text := `# comment
top = 1
[a]
x = """
y = 2
"""
z = [
  "w = 1",
  [1, 2],
]
"q k" = 'v # not a comment'
'lit' = 1
d.e.f = 3
[b . "c"]  # header
g = { h = 1 }
[[arr]]
i = 1
`
	kl := scanKeyLines(text)
	tests := []struct {
		key  []string
		line int
	}{
		{[]string{"top"}, 2},
		{[]string{"a"}, 3},
		{[]string{"a", "x"}, 4},
		{[]string{"a", "y"}, 4}, // not a key: falls back to [a]... via a
		{[]string{"a", "z"}, 7},
		{[]string{"a", "q k"}, 11},
		{[]string{"a", "lit"}, 12},
		{[]string{"a", "d"}, 13},
		{[]string{"a", "d", "e", "f"}, 13},
		{[]string{"b"}, 14},
		{[]string{"b", "c"}, 14},
		{[]string{"b", "c", "g"}, 15},
		{[]string{"b", "c", "g", "h"}, 15},
		{[]string{"arr", "i"}, 17},
		{[]string{"nowhere"}, 0},
	}
	for _, tt := range tests {
		want := tt.line
		if tt.key[len(tt.key)-1] == "y" {
			want = 3 // y is inside a multi-line string; the parent a is on line 3
		}
		if got := kl.line(tt.key); got != want {
			t.Errorf("line(%q) = %d, want %d", tt.key, got, want)
		}
	}
	if _, ok := kl[lineKey([]string{"a", "w = 1"})]; ok {
		t.Error("array element taken for a key")
	}
}
