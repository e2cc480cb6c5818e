package master

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tockd/tock/ipc"
)

// Fan-out across hosts (docs/scale-out.md, "Forwarding"):
//   - QUERY and the REST listings ask every shard, so a remote shard's
//     request simply goes to its owner over the peer link like any other
//     (held while the link is redialed, `shard unavailable` past the hold
//     bounds, failed when a link is declared dead with it in flight twice).
//   - STAT asks every worker, so it asks each other host that owns a
//     shard for its own workers' sum (peerStat) and fails, naming the
//     host, when one does not answer within timings.fanout: a STAT that
//     silently left out a host's jobs would look like lost jobs.
//   - LISTRULES is answered from this host's copy of the rule set: every
//     host holds all rules (the rule bucket is watched by each).

// peerStat asks p for its workers' STAT figures and calls add once with
// them or with the reason it could not have them.
func (m *Master) peerStat(p *Peer, add func(ipc.Stat, error)) {
	pe := &pending{req: ipc.Request{Op: ipc.OpStat, Shard: ipc.AllShards}}
	pe.deliver = func(r ipc.Reply) {
		switch r.Kind {
		case ipc.KindStat:
			add(r.Stat, nil)
		case ipc.KindError:
			if !strings.Contains(r.Err, "host "+p.Host()) {
				r.Err = fmt.Sprintf("host %s: %s", p.Host(), r.Err)
			}
			add(ipc.Stat{}, errors.New(r.Err))
		default:
			add(ipc.Stat{}, fmt.Errorf("host %s answered STAT with reply kind %d", p.Host(), r.Kind))
		}
	}
	bound := m.peers.timings.fanout
	// The first of the reply and the bound answers (pending.finish): a
	// late reply is dropped.
	time.AfterFunc(bound, func() {
		pe.finish(errorReply(fmt.Errorf("host %s did not answer STAT within %s", p.Host(), bound)))
	})
	if err := m.router.sendToPeer(p, pe); err != nil {
		pe.finish(errorReply(err))
	}
}
