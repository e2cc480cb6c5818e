// Package systemd speaks the two systemd protocols tock uses, without a
// dependency (each is a few lines; see docs/operations.md, "systemd"):
// sd_notify, datagrams of KEY=VALUE lines to $NOTIFY_SOCKET, and socket
// activation, listeners passed as fds 3.. with $LISTEN_FDS.
package systemd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The notify states tock sends.
const (
	Ready     = "READY=1"
	Reloading = "RELOADING=1"
	Stopping  = "STOPPING=1"
	Watchdog  = "WATCHDOG=1"
)

// Status is the STATUS= line: free text systemctl status shows.
func Status(format string, args ...any) string {
	return "STATUS=" + strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " ")
}

// Notifier sends states to the service manager. The zero of *Notifier
// (nil) sends nothing, so callers need not check whether they run under
// systemd.
type Notifier struct {
	mu   sync.Mutex
	addr *net.UnixAddr
}

// NewNotifier returns the notifier of $NOTIFY_SOCKET, or nil when it is
// unset. An address starting with @ is an abstract socket. The variable is
// left in the environment: a master re-executed in place (hot restart) is
// the same service and notifies too; workers never send.
func NewNotifier() (*Notifier, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil, nil
	}
	if path[0] != '/' && path[0] != '@' {
		return nil, fmt.Errorf("NOTIFY_SOCKET=%q: want a socket path or @abstract name", path)
	}
	name := path
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	return &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}, nil
}

// Notify sends states as one datagram, on a socket of its own as
// sd_notify does. A nil Notifier does nothing.
func (n *Notifier) Notify(states ...string) error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", strings.Join(states, " "), err)
	}
	defer conn.Close()
	if err := conn.SetWriteDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte(strings.Join(states, "\n") + "\n")); err != nil {
		return fmt.Errorf("sd_notify %s: %w", strings.Join(states, " "), err)
	}
	return nil
}

// WatchdogInterval is how often WATCHDOG=1 must be sent: half of
// $WATCHDOG_USEC, as sd_watchdog_enabled advises; 0 when the watchdog is
// off or meant for another process ($WATCHDOG_PID).
func WatchdogInterval() (time.Duration, error) {
	return parseWatchdog(os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid())
}

// parseWatchdog is WatchdogInterval on the variables' values and this
// process's pid.
func parseWatchdog(usec, pid string, self int) (time.Duration, error) {
	if usec == "" {
		return 0, nil
	}
	if pid != "" && pid != strconv.Itoa(self) {
		return 0, nil
	}
	us, err := strconv.ParseInt(usec, 10, 64)
	// Beyond a year is a mistake, and would overflow as a Duration.
	if err != nil || us <= 0 || us > int64(365*24*time.Hour/time.Microsecond) {
		return 0, errors.New("WATCHDOG_USEC=" + strconv.Quote(usec) + ": want a positive number of microseconds, at most a year")
	}
	return time.Duration(us) * time.Microsecond / 2, nil
}
