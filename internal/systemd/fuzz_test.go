package systemd

import (
	"slices"
	"strings"
	"testing"
)

// Seeds are in testdata/fuzz/<FuzzName>/: what systemd sets, and mistakes.

func FuzzParseListenFDs(f *testing.F) {
	f.Add("2", "client:control")
	f.Fuzz(func(t *testing.T, nfds, names string) {
		got, err := parseListenFDs(nfds, names)
		if err != nil {
			if err.Error() == "" || strings.ContainsAny(err.Error(), "\n") {
				t.Fatalf("bad error %q", err)
			}
			return
		}
		for _, n := range got {
			if !slices.Contains([]string{NameClient, NameControl, NameHTTP}, n) {
				t.Fatalf("LISTEN_FDS=%q LISTEN_FDNAMES=%q: name %q", nfds, names, n)
			}
		}
		if len(got) > maxListenFDs {
			t.Fatalf("%d fds", len(got))
		}
	})
}

func FuzzParseWatchdog(f *testing.F) {
	f.Add("30000000", "")
	f.Fuzz(func(t *testing.T, usec, pid string) {
		d, err := parseWatchdog(usec, pid, 4100)
		if d < 0 || (err != nil && d != 0) {
			t.Fatalf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %s, %v", usec, pid, d, err)
		}
	})
}
