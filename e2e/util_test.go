package e2e

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func isZombie(stat string) bool {
	i := strings.LastIndexByte(stat, ')')
	return i > 0 && strings.HasPrefix(strings.TrimSpace(stat[i+1:]), "Z")
}

func replaceOnce(s, old, new string) string { return strings.Replace(s, old, new, 1) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// runTock runs the binary to completion (bounded) and returns its output.
func runTock(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tockBin, args...).CombinedOutput()
	return string(out), err
}

func newLineReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 64<<10) }
