package master

import (
	"errors"
	"fmt"
	"os"
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
	// path and policy reopen rules.log after a failure ("" in memory mode);
	// fsync replaces fsync(2) in fault injection tests.
	path   string
	policy store.FsyncPolicy
	fsync  func(*os.File) error

	// remote, when set (persistence = "jetstream"), makes a change
	// durable in the cluster's rules bucket instead of rules.log.
	remote func(store.Record) error

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
	if cfg.Database.Persistence == config.PersistenceMemory || cfg.Database.Persistence == config.PersistenceJetStream {
		// JetStream: the rules bucket is the durable copy (hosts_rules.go).
		rs.file = store.NewMemoryLog()
		return rs, nil
	}
	rs.path, rs.policy = filepath.Join(cfg.Database.DataDir, "rules.log"), fsyncPolicy(cfg.Database.Fsync)
	rules, lf, err := rs.load()
	if err != nil {
		return nil, err
	}
	rs.rules, rs.file = rules, lf
	log.Info("rules loaded", "rules", rs.rules.Len())
	return rs, nil
}

// load replays rules.log and opens it for appending.
func (rs *ruleSet) load() (*store.Rules, store.ShardLog, error) {
	rules := store.NewRules()
	res, err := store.Replay(rs.path, func(r store.Record) error {
		rules.Apply(r)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("load rules: %w", err)
	}
	if res.Trimmed {
		rs.log.Warn("trimmed torn tail of rules log", "path", rs.path, "bytes", res.TrimmedBytes)
	}
	lf, err := store.OpenLogfileWith(rs.path, rs.policy, rs.fsync)
	if err != nil {
		return nil, nil, fmt.Errorf("open rules log: %w", err)
	}
	return rules, lf, nil
}

// recover runs after a failed write or fsync of rules.log: the change was
// not applied in memory, and the file is closed (which cuts it back to its
// last good fsync) and reopened, so the rules are what is durable and later
// changes can be made again. Called with rs.write held.
func (rs *ruleSet) recover(cause error) {
	if rs.path == "" {
		return
	}
	rs.log.Error("rules log failed; reopening it from the file", "error", cause)
	if err := rs.file.Close(); err != nil {
		rs.log.Warn("close failed rules log", "error", err)
	}
	rules, lf, err := rs.load()
	if err != nil {
		rs.log.Error("cannot reopen the rules log; rule changes fail until it can be", "error", err)
		rs.file = &failedLog{err: err}
		return
	}
	rs.file = lf
	rs.mu.Lock()
	rs.rules = rules
	rs.mu.Unlock()
}

// failedLog is the rules log while it cannot be reopened: every write
// fails with the reason.
type failedLog struct{ err error }

func (f *failedLog) Write([]store.Record) error { return f.err }
func (f *failedLog) Sync() error                { return f.err }
func (f *failedLog) Size() int64                { return 0 }
func (f *failedLog) Close() error               { return nil }
func (f *failedLog) Durable() bool              { return true }
func (f *failedLog) Failed() error              { return f.err }
func (f *failedLog) BeginCompaction() (store.LogCompaction, error) {
	return nil, store.ErrNoCompaction
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
	if rs.remote != nil {
		if err := rs.remote(rec); err != nil {
			return fmt.Errorf("write rules bucket: %w", err)
		}
		return rs.publish(rec, workers)
	}
	if _, down := rs.file.(*failedLog); down {
		rs.recover(errors.New("retrying a failed rules log"))
	}
	if err := rs.file.Write([]store.Record{rec}); err != nil {
		rs.recover(err)
		return fmt.Errorf("write rules log: %w", err)
	}
	if err := rs.file.Sync(); err != nil {
		rs.recover(err)
		return fmt.Errorf("sync rules log: %w", err)
	}
	return rs.publish(rec, workers)
}

// publish applies a durable change, pushes the new set to workers and
// waits until every one of them has applied it. Called with rs.write held.
func (rs *ruleSet) publish(rec store.Record, workers func() []*proc) error {
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
