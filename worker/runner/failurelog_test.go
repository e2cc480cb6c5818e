package runner

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tockd/tock/internal/testservice"
)

func TestFailureLogLimitsAndCounts(t *testing.T) {
	var buf testservice.SyncBuffer
	f := NewFailureLog(hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Warn}))
	now := time.Unix(100, 0)
	f.now = func() time.Time { return now }
	for i := range 250 {
		f.Warn("execution failed", "i", i)
	}
	if n := strings.Count(buf.String(), "execution failed:"); n != maxFailureLinesPerSecond {
		t.Fatalf("%d lines in one second, want %d", n, maxFailureLinesPerSecond)
	}
	f.Flush() // same second: nothing yet
	if strings.Contains(buf.String(), "not logged") {
		t.Fatal("reported before the second ended")
	}
	now = now.Add(time.Second)
	f.Flush()
	if !strings.Contains(buf.String(), "execution failures not logged (over the rate limit): count=150") {
		t.Fatalf("no report of the 150 lines left out:\n%s", buf.String())
	}
	f.Warn("execution failed", "i", "next")
	if !strings.Contains(buf.String(), "i=next") {
		t.Fatal("a new second logs again")
	}
}
