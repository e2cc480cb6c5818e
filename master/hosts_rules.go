package master

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/tockd/tock/cluster"
	"github.com/tockd/tock/ipc"
	"github.com/tockd/tock/store"
)

// Rules with persistence = "jetstream" (docs/scale-out.md, "Rules"): the
// cluster's rules bucket is the durable copy. RULE SET / REMOVERULE writes
// the bucket, then applies the change here and waits for the local
// workers, then answers OK; every other host gets it through its watch
// and applies it to its workers within milliseconds.

// ruleWriteTimeout bounds a rule change's write to the bucket.
const ruleWriteTimeout = 5 * time.Second

type ruleBucket struct {
	kv   cluster.KV
	ch   <-chan *cluster.Entry // used by the watch goroutine only
	done chan struct{}

	mu     sync.Mutex
	cancel context.CancelFunc // ends the current watch
}

// openRuleBucket loads every rule of the bucket into m.rules (the
// workers are not booted yet) and makes rule changes write the bucket.
func openRuleBucket(ctx context.Context, kv cluster.KV, m *Master) (*ruleBucket, error) {
	wctx, cancel := context.WithCancel(context.Background())
	rb := &ruleBucket{kv: kv, cancel: cancel, done: make(chan struct{})}
	ch, err := kv.Watch(wctx)
	if err != nil {
		cancel()
		return nil, err
	}
	rb.ch = ch
	if err := rb.sync(ctx, m, nil); err != nil {
		cancel()
		return nil, err
	}
	m.rules.remote = rb.write
	return rb, nil
}

// sync reads a (re)started watch's current values up to its end marker
// and makes the rule set exactly those; workers, when set, are pushed the
// changes.
func (rb *ruleBucket) sync(ctx context.Context, m *Master, workers func() []*proc) error {
	seen := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("read the rules bucket: %w", ctx.Err())
		case e, ok := <-rb.ch:
			if !ok {
				return errors.New("rules bucket watch ended")
			}
			if e == nil {
				for _, r := range m.rules.list("") {
					if !seen[r.ID] {
						m.rules.applyRemote(store.Record{Type: store.RecordRuleRemoval, ID: r.ID}, workers)
					}
				}
				return nil
			}
			if id, ok := rb.apply(m, *e, workers); ok {
				seen[id] = true
			}
		}
	}
}

// apply applies one watched entry; it reports the rule id of a value.
func (rb *ruleBucket) apply(m *Master, e cluster.Entry, workers func() []*proc) (string, bool) {
	id, err := cluster.ParseRuleKey(e.Key)
	if err != nil {
		m.log.Warn("ignoring a key in the rules bucket", "key", e.Key, "error", err)
		return "", false
	}
	if e.Op != cluster.OpPut {
		m.rules.applyRemote(store.Record{Type: store.RecordRuleRemoval, ID: id}, workers)
		return "", false
	}
	var r store.Rule
	if err := json.Unmarshal(e.Value, &r); err != nil || r.ID != id {
		m.log.Warn("ignoring a bad rule in the rules bucket", "key", e.Key, "error", err)
		return "", false
	}
	m.rules.applyRemote(store.Record{Type: store.RecordRule, Rule: r}, workers)
	return id, true
}

// write makes a rule change durable in the bucket.
func (rb *ruleBucket) write(rec store.Record) error {
	ctx, cancel := context.WithTimeout(context.Background(), ruleWriteTimeout)
	defer cancel()
	if rec.Type == store.RecordRuleRemoval {
		return rb.kv.Delete(ctx, cluster.RuleKey(rec.ID), 0)
	}
	b, err := json.Marshal(rec.Rule)
	if err != nil {
		return fmt.Errorf("encode rule: %w", err)
	}
	_, err = rb.kv.Put(ctx, cluster.RuleKey(rec.Rule.ID), b)
	return err
}

// ruleWatchIdle: a rules watch silent this long is re-created (and the
// rule set re-read), because a watch can stall without ending after a
// NATS quorum loss (see cluster.Manager's watchIdle); rules change rarely,
// so silence alone proves nothing, and re-reading a rule set is cheap.
const ruleWatchIdle = time.Minute

// watch applies the other hosts' changes until the master stops,
// restarting the watch when it breaks or stays silent (a restarted watch
// delivers every rule again: sync).
func (rb *ruleBucket) watch(m *Master) {
	go func() {
		defer close(rb.done)
		for {
			if !rb.follow(m) {
				return
			}
			for {
				select {
				case <-m.stopCh:
					return
				case <-time.After(250 * time.Millisecond):
				}
				wctx, cancel := context.WithCancel(context.Background())
				ch, err := rb.kv.Watch(wctx)
				if err != nil {
					cancel()
					m.log.Warn("cannot watch the rules bucket; retrying", "error", err)
					continue
				}
				rb.mu.Lock()
				rb.cancel()
				rb.cancel, rb.ch = cancel, ch
				rb.mu.Unlock()
				sctx, scancel := context.WithTimeout(wctx, 30*time.Second)
				err = rb.sync(sctx, m, m.welcomedProcs)
				scancel()
				if err == nil {
					break
				}
				m.log.Warn("rules bucket watch restart failed; retrying", "error", err)
			}
		}
	}()
}

// follow applies the watch's entries until it ends or stays silent for
// ruleWatchIdle (true: restart it), or the master stops (false).
func (rb *ruleBucket) follow(m *Master) bool {
	idle := time.NewTimer(ruleWatchIdle)
	defer idle.Stop()
	for {
		select {
		case <-m.stopCh:
			return false
		case <-idle.C:
			return true
		case e, ok := <-rb.ch:
			if !ok {
				m.log.Warn("rules bucket watch ended; restarting it")
				return true
			}
			idle.Reset(ruleWatchIdle)
			if e != nil {
				rb.apply(m, *e, m.welcomedProcs)
			}
		}
	}
}

func (rb *ruleBucket) stop() {
	if rb == nil {
		return
	}
	rb.mu.Lock()
	rb.cancel()
	rb.mu.Unlock()
	select {
	case <-rb.done:
	case <-time.After(time.Second):
	}
}

// applyRemote applies a change that is in the bucket already (this
// host's own, seen again, or another host's): pushed to workers, not
// waited for (the host that made it waits for its own workers only).
func (rs *ruleSet) applyRemote(rec store.Record, workers func() []*proc) {
	rs.write.Lock()
	defer rs.write.Unlock()
	cur, ok := rs.get(rec.ID)
	if rec.Type == store.RecordRule {
		cur, ok = rs.get(rec.Rule.ID)
		if ok && reflect.DeepEqual(cur, rec.Rule) {
			return
		}
	} else if !ok {
		return
	}
	if workers == nil {
		rs.mu.Lock()
		rs.rules.Apply(rec)
		rs.version++
		rs.mu.Unlock()
		return
	}
	rs.mu.Lock()
	rs.rules.Apply(rec)
	rs.version++
	set := ipc.Rules{Version: rs.version, Rules: rs.rules.List("")}
	rs.mu.Unlock()
	for _, p := range workers() {
		if err := p.link.PostJSON(ipc.TypeRules, set); err != nil {
			p.log.Debug("push rules", "error", err)
		}
	}
}
