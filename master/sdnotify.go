package master

import (
	"fmt"
	"time"

	"github.com/tockd/tock/internal/systemd"
)

// The master tells systemd what it does (docs/operations.md, "systemd"):
// READY=1 once every worker has booted, RELOADING=1 then READY=1 around a
// phased restart (and before a hot restart's re-exec), STOPPING=1 on a stop
// or halt, STATUS= with workers and phase at each, and WATCHDOG=1 from the
// heartbeat-checking loop, so a master whose supervision hangs is killed
// by systemd. Without $NOTIFY_SOCKET nothing is sent.

// sdNotify sends states with a fresh STATUS= line; a failure is logged
// only, as systemd's view must never stop the cluster.
func (m *Master) sdNotify(states ...string) {
	if m.opts.Notifier == nil {
		return
	}
	st := m.Stats()
	status := systemd.Status("%d workers, %d booted, %d old, phase %d", st.Workers, st.BootedWorkers, st.OldWorkers, st.Phase)
	switch {
	case st.PhasedRestart.InProgress:
		status += fmt.Sprintf("; rolling out phase %d", st.Phase)
	case st.PhasedRestart.LastError != nil:
		status += "; last phased restart failed: " + *st.PhasedRestart.LastError
	}
	if err := m.opts.Notifier.Notify(append(states, status)...); err != nil {
		m.log.Warn("systemd notify failed", "error", err)
	}
}

// watchdog sends WATCHDOG=1 when the interval has passed since the last
// one; the heartbeat checker calls it on every round.
type watchdog struct {
	every time.Duration // 0 = off
	last  time.Time
}

func (m *Master) watchdogTick(now time.Time) {
	w := &m.wd
	if w.every <= 0 || now.Sub(w.last) < w.every {
		return
	}
	w.last = now
	if err := m.opts.Notifier.Notify(systemd.Watchdog); err != nil {
		m.log.Warn("systemd watchdog notify failed", "error", err)
	}
}
