package systemd

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// listenFDsStart is the first fd systemd passes (SD_LISTEN_FDS_START).
const listenFDsStart = 3

// The names tock gives its listeners in $LISTEN_FDNAMES
// (FileDescriptorName= in tock.socket).
const (
	NameClient  = "client"  // the line protocol
	NameControl = "control" // the control API
	NameHTTP    = "http"    // REST and monitoring
)

// Listeners returns the listeners systemd passed to this process, by name:
// fds 3 to 3+$LISTEN_FDS-1, named by $LISTEN_FDNAMES (colon-separated). An
// fd without a name is "client" when it is the only one. Nothing is
// returned when $LISTEN_PID is not this process. The variables are removed
// from the environment so that workers do not see them; the fds are made
// close-on-exec.
func Listeners() (map[string][]net.Listener, error) {
	pid, nfds, fdNames := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES")
	if nfds == "" {
		return nil, nil
	}
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		os.Unsetenv(k)
	}
	if pid != strconv.Itoa(os.Getpid()) {
		return nil, nil
	}
	names, err := parseListenFDs(nfds, fdNames)
	if err != nil {
		return nil, err
	}
	out := map[string][]net.Listener{}
	for i, name := range names {
		fd := listenFDsStart + i
		syscall.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), "systemd:"+name)
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			closeAll(out)
			return nil, fmt.Errorf("socket activation: fd %d (%s) is not a listening socket: %w", fd, name, err)
		}
		out[name] = append(out[name], ln)
	}
	return out, nil
}

// maxListenFDs bounds $LISTEN_FDS: tock takes three listeners, and a
// huge count is a mistake, not a request.
const maxListenFDs = 64

// parseListenFDs checks $LISTEN_FDS and $LISTEN_FDNAMES and returns the
// name of each passed fd, in fd order: an unnamed single fd is "client";
// every name must be one tock knows.
func parseListenFDs(nfds, fdNames string) ([]string, error) {
	n, err := strconv.Atoi(nfds)
	if err != nil || n < 0 || n > maxListenFDs {
		return nil, fmt.Errorf("LISTEN_FDS=%q: want a count of fds, 0 to %d", nfds, maxListenFDs)
	}
	var given []string
	if fdNames != "" {
		given = strings.Split(fdNames, ":")
	}
	names := make([]string, n)
	for i := range names {
		if i < len(given) {
			names[i] = given[i]
		}
		if (names[i] == "" || names[i] == "unknown") && n == 1 {
			names[i] = NameClient
		}
		switch names[i] {
		case NameClient, NameControl, NameHTTP:
		default:
			return nil, fmt.Errorf("socket activation: fd %d is named %q; want %s, %s or %s (FileDescriptorName=)",
				listenFDsStart+i, names[i], NameClient, NameControl, NameHTTP)
		}
	}
	return names, nil
}

func closeAll(m map[string][]net.Listener) {
	for _, lns := range m {
		for _, ln := range lns {
			ln.Close()
		}
	}
}
