package master

import (
	"net"

	"github.com/hashicorp/go-hclog"
)

// peerCheckListener accepts only connections whose peer runs as uid
// (SO_PEERCRED): the 0600 mode keeps others from connecting, and this check
// holds even if the file's mode is loosened.
type peerCheckListener struct {
	*net.UnixListener
	uid int
	log hclog.Logger
}

// Accept returns the next connection from uid; others are logged and closed.
func (l *peerCheckListener) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, err
		}
		uid, pid, err := peerCred(c)
		if err == nil && uid == l.uid {
			return c, nil
		}
		l.log.Warn("control connection refused", "peer_uid", uid, "peer_pid", pid, "want_uid", l.uid, "error", err)
		c.Close()
	}
}
