package master

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/config"
	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
)

// ruleSet is the cluster's rules: persisted by the master in rules.log and
// pushed whole to every worker on each change. Changes are serialized so
// versions are applied in order.
type ruleSet struct {
	log hclog.Logger
	// ackTimeout bounds the wait for workers to apply a change: longer than
	// the heartbeat timeout, so a hung worker is killed (and its
	// replacement gets the rules at boot) before a change gives up on it.
	ackTimeout time.Duration
	file       store.ShardLog
	write      sync.Mutex // serializes changes

	mu      sync.Mutex
	rules   *store.Rules
	version uint64
	acks    map[*proc]uint64
	ackCond *sync.Cond
}

func openRuleSet(cfg config.Config, log hclog.Logger) (*ruleSet, error) {
	rs := &ruleSet{log: log, rules: store.NewRules(), acks: map[*proc]uint64{},
		ackTimeout: cfg.Cluster.WorkerTimeout.Duration + 5*time.Second}
	rs.ackCond = sync.NewCond(&rs.mu)
	rs.version = 1
	if cfg.Database.Persistence == config.PersistenceMemory {
		rs.file = store.NewMemoryLog()
		return rs, nil
	}
	path := filepath.Join(cfg.Database.DataDir, "rules.log")
	res, err := store.Replay(path, func(r store.Record) error {
		rs.rules.Apply(r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	if res.Trimmed {
		log.Warn("trimmed torn tail of rules log", "path", path, "bytes", res.TrimmedBytes)
	}
	lf, err := store.OpenLogfile(path, fsyncPolicy(cfg.Database.Fsync))
	if err != nil {
		return nil, fmt.Errorf("open rules log: %w", err)
	}
	rs.file = lf
	log.Info("rules loaded", "rules", rs.rules.Len())
	return rs, nil
}

func fsyncPolicy(s string) store.FsyncPolicy {
	switch s {
	case config.FsyncInterval:
		return store.FsyncInterval
	case config.FsyncNever:
		return store.FsyncNever
	}
	return store.FsyncAlways
}

func (rs *ruleSet) snapshot() ipc.Rules {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return ipc.Rules{Version: rs.version, Rules: rs.rules.List("")}
}

func (rs *ruleSet) list(prefix string) []store.Rule {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.rules.List(prefix)
}

func (rs *ruleSet) count() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.rules.Len()
}

func (rs *ruleSet) get(id string) (store.Rule, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.rules.Get(id)
}

// errRuleNotFound answers REMOVERULE of an unknown rule.
var errRuleNotFound = errors.New("not found")

// change makes a rule change durable, applies it, pushes the new set to
// workers and waits until every one of them has applied it.
func (rs *ruleSet) change(rec store.Record, workers func() []*proc) error {
	rs.write.Lock()
	defer rs.write.Unlock()
	if rec.Type == store.RecordRuleRemoval {
		if _, ok := rs.get(rec.ID); !ok {
			return errRuleNotFound
		}
	}
	if err := rs.file.Write([]store.Record{rec}); err != nil {
		return fmt.Errorf("write rules log: %w", err)
	}
	if err := rs.file.Sync(); err != nil {
		return fmt.Errorf("sync rules log: %w", err)
	}
	rs.mu.Lock()
	rs.rules.Apply(rec)
	rs.version++
	set := ipc.Rules{Version: rs.version, Rules: rs.rules.List("")}
	rs.mu.Unlock()
	targets := workers()
	for _, p := range targets {
		if err := p.link.PostJSON(ipc.TypeRules, set); err != nil {
			p.log.Debug("push rules", "error", err)
		}
	}
	return rs.waitAcks(targets, set.Version)
}

// acked records that p applied version v.
func (rs *ruleSet) acked(p *proc, v uint64) {
	rs.mu.Lock()
	if v > rs.acks[p] {
		rs.acks[p] = v
	}
	rs.mu.Unlock()
	rs.ackCond.Broadcast()
}

// waitAcks waits until every target that is still alive has acked v. A
// worker that dies meanwhile gets the rules in its replacement's Welcome.
func (rs *ruleSet) waitAcks(targets []*proc, v uint64) error {
	deadline := time.Now().Add(rs.ackTimeout)
	timer := time.AfterFunc(rs.ackTimeout, rs.ackCond.Broadcast)
	defer timer.Stop()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for {
		missing := 0
		for _, p := range targets {
			if rs.acks[p] < v && p.isBooted() {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d workers did not apply the rule change in time", missing)
		}
		rs.ackCond.Wait()
	}
}

// forget drops a dead worker's ack state and wakes waiters.
func (rs *ruleSet) forget(p *proc) {
	rs.mu.Lock()
	delete(rs.acks, p)
	rs.mu.Unlock()
	rs.ackCond.Broadcast()
}

// welcome sends p the current rule set inside its Welcome while no change
// can run, and marks p as a target of every later change.
func (rs *ruleSet) welcome(p *proc, send func(ipc.Rules) error) error {
	rs.write.Lock()
	defer rs.write.Unlock()
	p.mu.Lock()
	p.welcomed = true
	p.mu.Unlock()
	return send(rs.snapshot())
}

func (rs *ruleSet) close() error { return rs.file.Close() }
