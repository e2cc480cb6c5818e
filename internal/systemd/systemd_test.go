package systemd

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestWatchdogInterval(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	cases := []struct {
		usec, pid string
		want      time.Duration
		err       bool
	}{
		{"", "", 0, false},
		{"2000000", "", time.Second, false},
		{"2000000", me, time.Second, false},
		{"2000000", "1", 0, false},
		{"0", "", 0, true},
		{"x", "", 0, true},
	}
	for _, tc := range cases {
		t.Setenv("WATCHDOG_USEC", tc.usec)
		t.Setenv("WATCHDOG_PID", tc.pid)
		got, err := WatchdogInterval()
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %s, %v", tc.usec, tc.pid, got, err)
		}
	}
}

func TestNotify(t *testing.T) {
	var nilN *Notifier
	if err := nilN.Notify(Ready); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "n")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	n, err := NewNotifier()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(Ready, Status("2 workers\nphase 1")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	k, err := conn.Read(buf)
	if err != nil || string(buf[:k]) != "READY=1\nSTATUS=2 workers phase 1\n" {
		t.Fatalf("got %q, %v", buf[:k], err)
	}
	t.Setenv("NOTIFY_SOCKET", "relative")
	if _, err := NewNotifier(); err == nil {
		t.Fatal("relative NOTIFY_SOCKET accepted")
	}
}

func TestListeners_NotForUs(t *testing.T) {
	t.Setenv("LISTEN_FDS", "2")
	t.Setenv("LISTEN_PID", "1")
	m, err := Listeners()
	if err != nil || m != nil {
		t.Fatalf("another pid's fds: %v, %v", m, err)
	}
	if os.Getenv("LISTEN_FDS") != "" {
		t.Fatal("LISTEN_FDS left in the environment")
	}
	t.Setenv("LISTEN_FDS", "x")
	t.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	if _, err := Listeners(); err == nil || !strings.Contains(err.Error(), "LISTEN_FDS") {
		t.Fatalf("bad LISTEN_FDS: %v", err)
	}
}
