package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   string // "" = valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"memory without data_dir", func(c *Config) { c.Database.Persistence = PersistenceMemory; c.Database.DataDir = "" }, ""},
		{"ipv6 listen", func(c *Config) { c.Controller.Listen = "[::1]:5678" }, ""},
		{"all interfaces", func(c *Config) { c.Controller.Listen = ":5678" }, ""},
		{"port 0", func(c *Config) { c.Controller.Listen = "127.0.0.1:0" }, ""},
		{"host name", func(c *Config) { c.Controller.Listen = "localhost:5678" }, ""},
		{"http off", func(c *Config) { off := ""; c.HTTP.Listen = &off }, ""},
		{"http nil is default", func(c *Config) { c.HTTP.Listen = nil }, ""},
		{"control url ipv6", func(c *Config) { c.Control = Control{URL: "tcp://[::1]:5681", Token: "t"} }, ""},
		{"tls pair", func(c *Config) { c.Controller.TLSCert, c.Controller.TLSKey = "c", "k" }, ""},
		{"limits", func(c *Config) {
			c.Cluster.Workers, c.Cluster.Shards, c.Database.Framerate = 1024, 4096, 65535
			c.Controller.MaxLineBytes = 16 << 20
		}, ""},
		{"min limits", func(c *Config) {
			c.Cluster.Workers, c.Cluster.Shards, c.Database.Framerate = 1, 1, 1
			c.Controller.MaxLineBytes, c.Execution.MaxInflight, c.Controller.MaxConnections = 64, 1, 1
			c.Cluster.WorkerCheckInterval.Duration = time.Nanosecond
		}, ""},

		{"log level", func(c *Config) { c.Log.Level = "verbose" }, `log.level: "verbose" is not one of`},
		{"log format", func(c *Config) { c.Log.Format = "" }, `log.format: "" is not one of text, json`},
		{"persistence", func(c *Config) { c.Database.Persistence = "" }, "database.persistence:"},
		{"fsync", func(c *Config) { c.Database.Fsync = "Always" }, `database.fsync: "Always" is not one of`},
		{"framerate", func(c *Config) { c.Database.Framerate = -1 }, "database.framerate: must be between 1 and 65535, got -1"},
		{"compression", func(c *Config) { c.Database.CompressionInterval = -5 }, "database.compression_interval: must be at least 0"},
		{"data_dir", func(c *Config) { c.Database.DataDir = "" }, "database.data_dir: must not be empty"},
		{"workers", func(c *Config) { c.Cluster.Workers = 1025 }, "cluster.workers: must be between 1 and 1024"},
		{"shards", func(c *Config) { c.Cluster.Shards = -1 }, "cluster.shards: must be between 1 and 4096"},
		{"check interval", func(c *Config) { c.Cluster.WorkerCheckInterval.Duration = 0 }, "cluster.worker_check_interval: must be a positive duration"},
		{"worker timeout", func(c *Config) { c.Cluster.WorkerTimeout.Duration = 0 }, "cluster.worker_timeout:"},
		{"boot timeout", func(c *Config) { c.Cluster.WorkerBootTimeout.Duration = -time.Second }, "cluster.worker_boot_timeout:"},
		{"shutdown timeout", func(c *Config) { c.Cluster.WorkerShutdownTimeout.Duration = 0 }, "cluster.worker_shutdown_timeout:"},
		{"max_inflight", func(c *Config) { c.Execution.MaxInflight = 0 }, "execution.max_inflight: must be at least 1, got 0"},
		{"execution timeout", func(c *Config) { c.Execution.Timeout.Duration = 0 }, "execution.timeout:"},
		{"max_connections", func(c *Config) { c.Controller.MaxConnections = -1 }, "controller.max_connections:"},
		{"max_line_bytes", func(c *Config) { c.Controller.MaxLineBytes = 0 }, "controller.max_line_bytes: must be between 64 and 16777216, got 0"},
		{"tls cert only", func(c *Config) { c.Controller.TLSCert = "c" }, "controller.tls_cert: requires controller.tls_key"},
		{"tls key only", func(c *Config) { c.Controller.TLSKey = "k" }, "controller.tls_key: requires controller.tls_cert"},
		{"listen", func(c *Config) { c.Controller.Listen = "5678" }, `controller.listen: "5678" is not host:port`},
		{"http listen", func(c *Config) { bad := "x:y"; c.HTTP.Listen = &bad }, `http.listen: "x:y" has an invalid port "y"`},
		{"control scheme", func(c *Config) { c.Control = Control{URL: "unix:///tmp/c.sock", Token: "t"} }, `control.url: "unix:///tmp/c.sock" must be tcp://host:port`},
		{"control token", func(c *Config) { c.Control.URL = "tcp://127.0.0.1:1" }, "control.url: requires control.token"},
		{"shell path", func(c *Config) { c.Shell.Path = "" }, "shell.path: must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want it to contain %q", err, tt.want)
			}
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) != 1 {
				t.Fatalf("want exactly one problem, got %v", err)
			}
		})
	}
}

func TestValidateCollectsAll(t *testing.T) {
	c := Default()
	c.Log.Level = "x"
	c.Cluster.Workers = 0
	c.Execution.Timeout.Duration = 0
	err := c.Validate()
	if err == nil || len(strings.Split(err.Error(), "\n")) != 3 {
		t.Fatalf("Validate() = %v, want 3 problems", err)
	}
}

func TestCheckShellPath(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "exe")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want string // "" = ok
	}{
		{"/bin/sh", ""},
		{exe, ""},
		{"sh", ""},
		{"/nonexistent/shell", "no such file"},
		{dir, "is not a regular file"},
		{plain, "is not executable"},
		{"no-such-shell-anywhere", "is not an executable in PATH"},
		{"", "must not be empty"},
	}
	for _, tt := range tests {
		c := Default()
		c.Shell.Path = tt.path
		err := c.CheckShellPath()
		if tt.want == "" {
			if err != nil {
				t.Errorf("CheckShellPath(%q) = %v", tt.path, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "shell.path: ") {
			t.Errorf("CheckShellPath(%q) = %v, want %q", tt.path, err, tt.want)
		}
	}
}

func TestDurationText(t *testing.T) {
	for _, s := range []string{"1s", "250ms", "1m30s", "2h0m0s"} {
		var d Duration
		if err := d.UnmarshalText([]byte(s)); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		b, _ := d.MarshalText()
		var back Duration
		if err := back.UnmarshalText(b); err != nil || back != d {
			t.Fatalf("%q round trip: %q", s, b)
		}
	}
	var d Duration
	if err := d.UnmarshalText([]byte("1x")); err == nil {
		t.Fatal("bad duration accepted")
	}
}
