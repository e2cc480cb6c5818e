package master

import (
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/protocol"
	"github.com/tockd/tock/store"
)

// session is one connection's protocol state.
type session struct {
	m      *Master
	cc     *clientConn
	authed bool     // auth is off, or AUTH succeeded
	id     identity // what the connection may touch when auth is on
	// routes are the single-job requests read and not yet routed
	// (routes.go).
	routes []*pending
	kick   []*ipc.Link // links to flush after routing
}

// dispatch parses one line and arranges for c to be finished with its
// reply. It returns true when the connection must close after that reply
// (a failed or missing AUTH).
func (s *session) dispatch(c *call, line []byte) (closeConn bool) {
	cmd, perr := protocol.Parse(line)
	if perr != nil {
		c.finish(protocol.AppendError(nil, perr.RID, perr.Reason))
		return false
	}
	c.op = uint8(cmd.Op)
	if cmd.Op == protocol.OpAuth {
		return s.authenticate(c, cmd)
	}
	if !s.authed {
		c.finish(protocol.AppendError(nil, cmd.RID, "authentication required: send AUTH <secret> first"))
		return true
	}
	if s.id.namespace != "" && !s.permitted(cmd) {
		c.finish(protocol.AppendError(nil, cmd.RID,
			"forbidden: outside this token's namespace "+strconv.Quote(s.id.namespace)))
		return false
	}
	m := s.m
	switch cmd.Op {
	case protocol.OpSet:
		s.routeJob(c, cmd, ipc.Request{Op: ipc.OpSet, Key: cmd.ID, Execution: cmd.Execution})
		return false
	case protocol.OpGet:
		s.routeJob(c, cmd, ipc.Request{Op: ipc.OpGet, Key: cmd.ID})
		return false
	case protocol.OpRemove:
		s.routeJob(c, cmd, ipc.Request{Op: ipc.OpRemove, Key: cmd.ID})
		return false
	}
	// Every other command sees the effect of the job commands before it on
	// the connection (an INFO after a SET finds the job): those are routed
	// first.
	s.flushRoutes()
	switch cmd.Op {
	case protocol.OpInfo:
		m.info(c, cmd)
	case protocol.OpQuery:
		// A bounded number of QUERYs in flight per connection: each reply
		// may hold the whole matching job set.
		select {
		case s.cc.fanouts <- struct{}{}:
		case <-s.cc.quit:
			c.finish(protocol.AppendError(nil, cmd.RID, "stopping: tock is shutting down"))
			return true
		}
		m.query(c, cmd, s.id, func() { <-s.cc.fanouts })
	case protocol.OpStat:
		m.stat(c, cmd)
	case protocol.OpListRules:
		var out []byte
		for _, r := range m.rules.list("") {
			if s.id.namespace == "" || s.id.allows(r.ID) {
				out = protocol.AppendRuleLine(out, cmd.RID, r)
			}
		}
		c.finish(protocol.AppendOK(out, cmd.RID))
	// Rule changes complete before the connection's next line is read, so
	// what follows them on the connection sees the new rules (a job SET
	// right after its RULE SET finds its rule).
	case protocol.OpRuleSet:
		m.changeRule(c, cmd, store.Record{Type: store.RecordRule, Rule: cmd.Rule})
	case protocol.OpRemoveRule:
		m.changeRule(c, cmd, store.Record{Type: store.RecordRuleRemoval, ID: cmd.ID})
	default:
		c.finish(protocol.AppendError(nil, cmd.RID, "unknown command "+strconv.Quote(cmd.Op.String())))
	}
	return false
}

// authenticate answers AUTH. With auth off it is always OK. A wrong secret
// before the connection is authenticated closes it.
func (s *session) authenticate(c *call, cmd protocol.Command) (closeConn bool) {
	ts := s.m.auth.Load()
	if ts == nil {
		c.finish(protocol.AppendOK(nil, cmd.RID))
		return false
	}
	id, err := ts.authenticate(cmd.Secret)
	if err != nil {
		s.m.log.Warn("authentication failed")
		c.finish(protocol.AppendError(nil, cmd.RID, err.Error()))
		return !s.authed
	}
	s.authed, s.id = true, id
	s.cc.stats.setIdentity(id)
	c.finish(protocol.AppendOK(nil, cmd.RID))
	return false
}

// permitted applies the namespace (docs/protocol.md): job commands check the job
// id, rule commands the rule id and the pattern (so a token cannot make a
// rule that fires for another namespace's jobs). QUERY and LISTRULES are
// filtered instead; STAT is open.
func (s *session) permitted(cmd protocol.Command) bool {
	switch cmd.Op {
	case protocol.OpSet, protocol.OpGet, protocol.OpRemove, protocol.OpRemoveRule, protocol.OpInfo:
		return s.id.allows(cmd.ID)
	case protocol.OpRuleSet:
		return s.id.allows(cmd.Rule.ID) && s.id.allows(cmd.Rule.Pattern)
	}
	return true
}

// routeJob queues a single-job command for its shard's owner; the
// reader routes the queue once per read batch (flushRoutes).
func (s *session) routeJob(c *call, cmd protocol.Command, req ipc.Request) {
	req.Shard = ShardOf(req.Key, s.m.cfg.Cluster.Shards)
	c.rid = cmd.RID
	c.job.req, c.job.to = req, c
	s.routes = append(s.routes, &c.job)
	if len(s.routes) >= maxRouteBatch {
		s.flushRoutes()
	}
}

// maxRouteBatch bounds the requests of one read batch routed at once, so
// the first of a long burst does not wait for the last to be parsed.
const maxRouteBatch = 256

// flushRoutes routes the queued single-job requests, in the order read.
func (s *session) flushRoutes() {
	if len(s.routes) == 0 {
		return
	}
	s.kick = s.m.router.RouteBatch(s.routes, s.kick[:0])
	clear(s.routes)
	s.routes = s.routes[:0]
	for i, l := range s.kick {
		if !slices.Contains(s.kick[:i], l) {
			l.Flush()
		}
	}
	clear(s.kick)
}

// finishJob answers a single-job request with the worker's reply; a short
// one is encoded into the call itself.
func (c *call) finishJob(r ipc.Reply) { notify(c.setJob(r).wake) }

// setJob is finishJob without the wake-up; it returns the ring to wake.
func (c *call) setJob(r ipc.Reply) *callRing {
	switch r.Kind {
	case ipc.KindError:
		return c.set(protocol.AppendError(nil, c.rid, r.Err))
	case ipc.KindJob:
		return c.set(protocol.AppendGet(c.buf[:0], c.rid, r.Status, r.Execution))
	default:
		return c.set(protocol.AppendOK(c.buf[:0], c.rid))
	}
}

// query fans QUERY out to every shard (so a shard in handoff is waited for,
// not skipped) and merges the lines, sorted by job id.
func (m *Master) query(c *call, cmd protocol.Command, id identity, done func()) {
	n := m.cfg.Cluster.Shards
	var mu sync.Mutex
	var jobs []ipc.JobLine
	var errText string
	left := n
	rid := cmd.RID
	for s := 0; s < n; s++ {
		m.router.Route(&pending{req: ipc.Request{Op: ipc.OpQuery, Shard: s, Key: cmd.Prefix}, deliver: func(r ipc.Reply) {
			mu.Lock()
			defer mu.Unlock()
			if r.Kind == ipc.KindError && errText == "" {
				errText = r.Err
			}
			jobs = append(jobs, r.Jobs...)
			left--
			if left > 0 {
				return
			}
			defer done()
			if errText != "" {
				c.finish(protocol.AppendError(nil, rid, errText))
				return
			}
			sort.Slice(jobs, func(i, j int) bool { return jobs[i].ID < jobs[j].ID })
			var out []byte
			for _, j := range jobs {
				if id.namespace == "" || id.allows(j.ID) {
					out = protocol.AppendQueryLine(out, rid, j.ID, j.Status, j.Execution)
				}
			}
			c.finish(protocol.AppendOK(out, rid))
		}})
	}
}

// stat sums every host's workers' figures into ztick's 15 STAT lines:
// this host's, and each other host's that owns a shard (asked over its
// peer link for its own workers' share). A host that cannot answer within
// its bound fails the STAT with its name rather than leave its jobs out.
func (m *Master) stat(c *call, cmd protocol.Command) {
	peers := m.router.remoteHosts()
	var mu sync.Mutex
	var sum ipc.Stat
	sum.Compression = "idle"
	var errText string
	left := 1 + len(peers)
	rid := cmd.RID
	add := func(st ipc.Stat, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil && errText == "" {
			errText = err.Error()
		}
		sum = addStat(sum, st)
		if left--; left > 0 {
			return
		}
		if errText != "" {
			c.finish(protocol.AppendError(nil, rid, errText))
			return
		}
		var out []byte
		line := func(k string, v int64) { out = protocol.AppendStatLine(out, rid, k, strconv.FormatInt(v, 10)) }
		line("uptime_ns", time.Since(m.started).Nanoseconds())
		line("connections", m.connections.Load())
		line("jobs_total", sum.JobsTotal)
		line("jobs_planned", sum.JobsPlanned)
		line("jobs_triggered", sum.JobsTriggered)
		line("jobs_executed", sum.JobsExecuted)
		line("jobs_failed", sum.JobsFailed)
		line("rules_total", int64(m.rules.count()))
		line("executions_pending", sum.ExecutionsPending)
		line("executions_inflight", sum.ExecutionsInflight)
		out = protocol.AppendStatLine(out, rid, "persistence", m.cfg.Database.Persistence)
		out = protocol.AppendStatLine(out, rid, "compression", sum.Compression)
		line("auth_enabled", boolInt(m.auth.Load() != nil))
		line("tls_enabled", boolInt(m.cfg.Controller.TLSCert != ""))
		line("framerate", int64(m.cfg.Database.Framerate))
		c.finish(protocol.AppendOK(out, rid))
	}
	m.localStat(func(st ipc.Stat) { add(st, nil) })
	for _, p := range peers {
		m.peerStat(p, add)
	}
}

// localStat sums this host's workers' STAT figures and calls done with
// them once every worker has answered.
func (m *Master) localStat(done func(ipc.Stat)) {
	procs := m.workerProcs()
	var mu sync.Mutex
	sum := ipc.Stat{Compression: "idle"}
	left := len(procs)
	if left == 0 {
		done(sum)
		return
	}
	for _, p := range procs {
		p.link.WaitRoom()
		m.router.SendTo(p, &pending{req: ipc.Request{Op: ipc.OpStat, Shard: ipc.AllShards}, deliver: func(r ipc.Reply) {
			mu.Lock()
			sum = addStat(sum, r.Stat)
			left--
			last := left == 0
			mu.Unlock()
			if last {
				done(sum)
			}
		}})
	}
}

// addStat adds b's figures to a's.
func addStat(a, b ipc.Stat) ipc.Stat {
	a.JobsTotal += b.JobsTotal
	a.JobsPlanned += b.JobsPlanned
	a.JobsTriggered += b.JobsTriggered
	a.JobsExecuted += b.JobsExecuted
	a.JobsFailed += b.JobsFailed
	a.ExecutionsPending += b.ExecutionsPending
	a.ExecutionsInflight += b.ExecutionsInflight
	if b.Compression != "" {
		a.Compression = ipc.WorseCompression(a.Compression, b.Compression)
	}
	return a
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// changeRule runs a RULE SET or REMOVERULE: durable, then applied by every
// booted worker, then OK.
func (m *Master) changeRule(c *call, cmd protocol.Command, rec store.Record) {
	err := m.rules.change(rec, m.welcomedProcs)
	if err != nil {
		c.finish(protocol.AppendError(nil, cmd.RID, err.Error()))
		return
	}
	c.finish(protocol.AppendOK(nil, cmd.RID))
}

// workerProcs are the booted workers, draining ones included: during a
// rollout an old worker still owns the shards not yet moved, and each
// worker counts only the shards it owns (STAT fan-out).
func (m *Master) workerProcs() []*proc {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*proc
	for _, s := range m.slots {
		for _, p := range append([]*proc{s.cur}, s.old...) {
			if p != nil && p.isBooted() {
				out = append(out, p)
			}
		}
	}
	return out
}

// welcomedProcs are every live worker that holds the rule set, draining and
// booting ones included.
func (m *Master) welcomedProcs() []*proc {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*proc
	add := func(p *proc) {
		p.mu.Lock()
		ok := p.welcomed && !p.dead
		p.mu.Unlock()
		if ok {
			out = append(out, p)
		}
	}
	for _, s := range m.slots {
		if s.cur != nil {
			add(s.cur)
		}
		for _, p := range s.old {
			add(p)
		}
	}
	for _, p := range m.booting {
		add(p)
	}
	return out
}
