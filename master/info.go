package master

import (
	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/protocol"
)

// info answers `<rid> INFO <job>`: GET's status and time, the job's shard,
// the rule that matches it now and its last outcome, on one line, so a
// line-protocol user sees why a job failed (docs/rest.md, INFO).
func (m *Master) info(c *call, cmd protocol.Command) {
	shard := ShardOf(cmd.ID, m.cfg.Cluster.Shards)
	rid, id := cmd.RID, cmd.ID
	m.router.Route(&pending{req: ipc.Request{Op: ipc.OpInfo, Shard: shard, Key: id}, deliver: func(r ipc.Reply) {
		if r.Kind != ipc.KindInfo {
			reason := r.Err
			if r.Kind != ipc.KindError {
				reason = "unexpected reply"
			}
			c.finish(protocol.AppendError(nil, rid, reason))
			return
		}
		rule, _ := restBackend{m}.MatchRule(id)
		c.finish(protocol.AppendInfo(nil, rid, protocol.Info{Status: r.Status, Execution: r.Execution,
			Shard: shard, Rule: rule, Outcome: r.Outcome}))
	}})
}
