package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestVersion_FromGitCheckout: a tock built in a git checkout prints the
// checkout's commit and its time (Go's VCS stamp), not "unknown".
func TestVersion_FromGitCheckout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := func(dir string, env []string, name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	head := run(repo, nil, "git", "rev-parse", "HEAD")
	clone := filepath.Join(t.TempDir(), "tock")
	run(repo, nil, "git", "clone", "--quiet", "--no-hardlinks", repo, clone)
	// GOFLAGS set by the environment may turn stamping off; this is what a
	// plain `go build` or `make build` does in a checkout.
	run(clone, []string{"GOFLAGS=-buildvcs=true"}, "go", "build", "-o", "tock", "./cmd/tock")
	out := run(clone, nil, filepath.Join(clone, "tock"), "version")
	want := regexp.MustCompile(`^tock \S+ \(go\S+, commit ` + head + ` \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)$`)
	if !want.MatchString(out) {
		t.Fatalf("tock version in a checkout of %s: %q", head, out)
	}
}
