package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// reopenable is the log destination: stderr, or a file reopened on SIGHUP
// (for logrotate).
type reopenable struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

func (r *reopenable) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return os.Stderr.Write(p)
	}
	return r.f.Write(p)
}

// Reopen reopens the log file (no-op on stderr).
func (r *reopenable) Reopen() error {
	if r.path == "" {
		return nil
	}
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	r.mu.Lock()
	old := r.f
	r.f = f
	r.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// newLogger builds the process's one logger.
func newLogger(name, level, format string, out io.Writer) hclog.Logger {
	lvl := hclog.LevelFromString(level)
	if strings.EqualFold(level, "off") {
		lvl = hclog.Off
	}
	if lvl == hclog.NoLevel {
		lvl = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{
		Name: name, Level: lvl, Output: out, JSONFormat: format == "json",
		TimeFormat: "2006-01-02T15:04:05.000Z07:00",
	})
}
