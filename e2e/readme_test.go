package e2e

import (
	"os"
	"strings"
	"testing"
	"time"
)

// readmeBlock returns the lines of the fenced block after marker in the
// README.
func readmeBlock(t *testing.T, readme, marker string) []string {
	t.Helper()
	_, after, ok := strings.Cut(readme, "<!-- "+marker+" -->\n```\n")
	if !ok {
		t.Fatalf("README.md has no block marked %q", marker)
	}
	block, _, ok := strings.Cut(after, "```")
	if !ok {
		t.Fatalf("README.md: the %q block is not closed", marker)
	}
	return strings.Split(strings.TrimSuffix(block, "\n"), "\n")
}

// TestReadme_QuickStart pastes the README's quick start into a fresh
// cluster, as `nc` would (all lines at once), and checks that the replies
// are the ones the README shows.
func TestReadme_QuickStart(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	requests := readmeBlock(t, string(b), "quickstart:requests")
	replies := readmeBlock(t, string(b), "quickstart:replies")
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	cl.send(requests...)
	for i, want := range replies {
		if got := cl.line(); got != want {
			t.Fatalf("README quick start, reply line %d: got %q, the README shows %q", i+1, got, want)
		}
	}
	waitFor(t, 30*time.Second, "backup.now to run, as the README says", func() bool {
		return cl.do("r11 GET backup.now") == "r11 OK executed 0"
	})
}
