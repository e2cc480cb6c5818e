package protocol

import (
	"slices"
	"testing"

	"github.com/tockd/tock/store"
)

func TestParseInfo(t *testing.T) {
	c, err := Parse([]byte(`7 INFO "a b/c"`))
	if err != nil || c.Op != OpInfo || c.ID != "a b/c" || c.RID != "7" {
		t.Fatalf("got %+v, %v", c, err)
	}
	if _, err := Parse([]byte(`7 INFO`)); err == nil || err.Reason != "missing job id: want <rid> INFO <job>" {
		t.Fatalf("INFO without id: %v", err)
	}
}

// INFO's reply is one line that tokenizes back into its fields, whatever
// the error and output hold.
func TestAppendInfoRetokenizes(t *testing.T) {
	o := &store.Outcome{StartedAt: 5, Duration: 6, ExitCode: 2, Error: `exit status 2`, Output: "line 1\nsaid \"no\" \\ bye"}
	line := AppendInfo(nil, "r1", Info{Status: store.Failed, Execution: 42, Shard: 3, Rule: "my rule", Outcome: o})
	if n := slices.Index(line, '\n'); n != len(line)-1 {
		t.Fatalf("not one line: %q", line)
	}
	toks, err := Tokenize(line[:len(line)-1], nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"r1", "OK", "failed", "42", "shard=3", "rule=my rule", "started_at=5", "duration_ns=6",
		"exit_code=2", "http_status=0", "attempt=0", "error=exit status 2", `output=line 1 said "no" \ bye`}
	if !slices.Equal(toks, want) {
		t.Fatalf("got  %q\nwant %q", toks, want)
	}
	line = AppendInfo(nil, "r2", Info{Status: store.Planned, Execution: 1, Shard: 0})
	if string(line) != "r2 OK planned 1 shard=0 rule=\n" {
		t.Fatalf("no outcome: %q", line)
	}
}
