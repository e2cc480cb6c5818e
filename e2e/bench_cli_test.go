package e2e

import (
	"strings"
	"testing"
)

// TestBenchCLI_CleansUp: `tock bench` writes under a prefix of its own and
// removes what it wrote; --keep keeps it. Jobs that were there before stay.
func TestBenchCLI_CleansUp(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, dir, clusterConfig(dir, ""))
	cl := dial(t, c.addr)
	cl.expect("u1 SET user.job 4102444800000000000", "u1 OK")
	count := func(rid, prefix string) int {
		body, last := cl.list(rid, rid+" QUERY "+prefix)
		if last != rid+" OK" {
			t.Fatalf("QUERY %s: %q", prefix, last)
		}
		return len(body)
	}

	out, err := runTock(t, "bench", "--addr", c.addr, "--clients", "2", "--pipeline", "8", "--requests", "300", "-q")
	if err != nil || !strings.Contains(out, "removed 300 jobs under tock-bench.") {
		t.Fatalf("tock bench: %v\n%s", err, out)
	}
	if n := count("q1", ""); n != 1 {
		t.Fatalf("%d jobs after a bench run, want only the user's one", n)
	}

	out, err = runTock(t, "bench", "--addr", c.addr, "--clients", "2", "--requests", "200", "--prefix", "kept.", "--keep", "-q")
	if err != nil || strings.Contains(out, "removed") {
		t.Fatalf("tock bench --keep: %v\n%s", err, out)
	}
	if n := count("q2", "kept."); n != 200 {
		t.Fatalf("%d jobs kept, want 200", n)
	}
	// A mixed run over the kept jobs removes them too: every key it may
	// have written.
	out, err = runTock(t, "bench", "--addr", c.addr, "--clients", "2", "--requests", "400", "--keyspace", "250", "--op", "mixed", "--prefix", "kept.", "-q")
	if err != nil || !strings.Contains(out, "removed ") {
		t.Fatalf("tock bench --op mixed: %v\n%s", err, out)
	}
	if n := count("q3", "kept."); n != 0 {
		t.Fatalf("%d jobs left after the mixed run", n)
	}
	cl.expect("u2 GET user.job", "u2 OK planned 4102444800000000000")
}
