package runner

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// maxFailureLinesPerSecond bounds the warn lines of failed executions: a
// burst of due jobs without a rule (100k a second in the lateness
// benchmark) must not turn into as many log lines through the master.
const maxFailureLinesPerSecond = 100

// FailureLog logs failed executions at warn, at most
// maxFailureLinesPerSecond a second; the others are counted and reported in
// one warn line when the next second starts (or on Flush), so an operator
// knows lines are missing. Safe for concurrent use.
type FailureLog struct {
	log hclog.Logger
	now func() time.Time

	mu         sync.Mutex
	window     time.Time // start of the current second
	logged     int       // lines in this window
	suppressed int       // failures not logged since the last report
}

// NewFailureLog returns a FailureLog writing to log.
func NewFailureLog(log hclog.Logger) *FailureLog {
	return &FailureLog{log: log, now: time.Now}
}

// Warn logs one failed execution, unless this second's lines are spent.
func (f *FailureLog) Warn(msg string, args ...any) {
	f.mu.Lock()
	now := f.now()
	f.rollLocked(now)
	if f.logged >= maxFailureLinesPerSecond {
		f.suppressed++
		f.mu.Unlock()
		return
	}
	f.logged++
	f.mu.Unlock()
	f.log.Warn(msg, args...)
}

// Flush reports failures not logged, once their second is over.
func (f *FailureLog) Flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rollLocked(f.now())
}

func (f *FailureLog) rollLocked(now time.Time) {
	if now.Sub(f.window) < time.Second {
		return
	}
	if f.suppressed > 0 {
		f.log.Warn("execution failures not logged (over the rate limit)", "count", f.suppressed, "limit_per_second", maxFailureLinesPerSecond)
	}
	f.window, f.logged, f.suppressed = now, 0, 0
}
