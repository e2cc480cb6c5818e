package ipc

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
)

// PeerProto is the version of the master-to-master conversation on top of
// the frames (which ops a peer may send, what "local only" means). A
// peer link also requires the same ProtoVersion: the binary Request and
// Reply layouts are shared with the workers.
const PeerProto = 1

// PeerHello is the first frame on a peer link, both ways: the dialer sends
// it as TypePeerHello, the acceptor answers its own as TypePeerWelcome, or
// one with Error set before it closes the link (a refused handshake).
type PeerHello struct {
	Cluster   string `json:"cluster"`
	Host      string `json:"host"`
	Proto     int    `json:"proto"`
	PeerProto int    `json:"peer_proto"`
	Version   string `json:"version,omitempty"`
	Error     string `json:"error,omitempty"`
}

// ErrPeerMismatch marks a handshake refused for a different cluster,
// protocol or a host name clash.
var ErrPeerMismatch = errors.New("peer handshake refused")

// maxPeerHello bounds the handshake frame: it is read before the peer is
// known, so it must not make the reader allocate much.
const maxPeerHello = 4 << 10

// peerNameRE is what a cluster or host name may be (config validates the
// same; a peer is checked again, it may run another build).
var peerNameRE = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9_:@+-]{0,127}$`)

// DecodePeerHello decodes and checks the shape of a handshake frame's
// payload. A refusal (Error set) is returned with a nil error: the caller
// reports its text.
func DecodePeerHello(p []byte) (PeerHello, error) {
	if len(p) > maxPeerHello {
		return PeerHello{}, fmt.Errorf("peer hello: %w: %d bytes", ErrMalformed, len(p))
	}
	var h PeerHello
	if err := json.Unmarshal(p, &h); err != nil {
		return PeerHello{}, fmt.Errorf("peer hello: %w: %v", ErrMalformed, err)
	}
	if h.Error != "" {
		return h, nil
	}
	if !peerNameRE.MatchString(h.Cluster) {
		return PeerHello{}, fmt.Errorf("peer hello: %w: bad cluster name %q", ErrMalformed, h.Cluster)
	}
	if !peerNameRE.MatchString(h.Host) {
		return PeerHello{}, fmt.Errorf("peer hello: %w: bad host name %q", ErrMalformed, h.Host)
	}
	return h, nil
}

// CheckPeer compares a peer's hello with ours and says why they cannot
// talk: another cluster, another protocol, or our own host name (two
// hosts configured with one host_name, or a host dialing itself).
func CheckPeer(ours, theirs PeerHello) error {
	switch {
	case theirs.Error != "":
		return fmt.Errorf("%w by %s: %s", ErrPeerMismatch, nameOr(theirs.Host), theirs.Error)
	case theirs.Cluster != ours.Cluster:
		return fmt.Errorf("%w: host %s is in cluster %q, this host in %q", ErrPeerMismatch, theirs.Host, theirs.Cluster, ours.Cluster)
	case theirs.Proto != ours.Proto || theirs.PeerProto != ours.PeerProto:
		return fmt.Errorf("%w: host %s speaks ipc protocol %d/peer protocol %d, this host %d/%d (run one tock version across the cluster, or upgrade host by host with a compatible one)",
			ErrPeerMismatch, theirs.Host, theirs.Proto, theirs.PeerProto, ours.Proto, ours.PeerProto)
	case theirs.Host == ours.Host:
		return fmt.Errorf("%w: the peer calls itself %q, as this host does (jetstream.host_name must be unique)", ErrPeerMismatch, theirs.Host)
	}
	return nil
}

func nameOr(h string) string {
	if h == "" {
		return "the peer"
	}
	return "host " + h
}
