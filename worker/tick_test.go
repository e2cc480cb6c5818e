package worker

import (
	"testing"

	"github.com/tockd/tock/store"
)

func rule(id, pattern string) store.Rule {
	return store.Rule{ID: id, Pattern: pattern, Runner: store.Runner{Kind: store.RunnerShell, Args: []string{"true"}}}
}

// TestDue is the pure scheduling step (docs/protocol.md): due jobs in time order,
// longest-prefix rule, no rule → failed at once, future jobs untouched.
func TestDue(t *testing.T) {
	jobs, rules := store.NewJobs(), store.NewRules()
	rules.Set(rule("r.short", "a."))
	rules.Set(rule("r.long", "a.b."))
	rules.Set(rule("r.tie2", "c.x"))
	rules.Set(rule("r.tie1", "c.y"))
	jobs.Set("a.b.late", 30)
	jobs.Set("a.early", 10)
	jobs.Set("nomatch", 20)
	jobs.Set("future", 100)
	out := Due(jobs, rules, 50, 100)
	if len(out) != 3 {
		t.Fatalf("got %d triggers, want 3", len(out))
	}
	cases := []struct {
		job, rule string
		status    store.Status
	}{
		{"a.early", "r.short", store.Triggered},
		{"nomatch", "", store.Failed},
		{"a.b.late", "r.long", store.Triggered},
	}
	for i, c := range cases {
		tr := out[i]
		if tr.record.Job.ID != c.job || tr.record.Job.Status != c.status {
			t.Errorf("trigger %d: record %+v, want %s %s", i, tr.record.Job, c.job, c.status)
		}
		if c.rule == "" {
			if tr.exec != nil {
				t.Errorf("%s: no rule matches, yet an execution was made", c.job)
			}
			if tr.record.Job.Outcome == nil || tr.record.Job.Outcome.Error != "no matching rule" {
				t.Errorf("%s: outcome %+v, want the reason kept", c.job, tr.record.Job.Outcome)
			}
			continue
		}
		if tr.exec == nil || tr.exec.RuleID != c.rule || tr.exec.JobID != c.job {
			t.Errorf("%s: execution %+v, want rule %s", c.job, tr.exec, c.rule)
		}
	}
	if j, _ := jobs.Get("future"); j.Status != store.Planned {
		t.Errorf("future job: %s, want planned", j.Status)
	}
	if j, _ := jobs.Get("nomatch"); j.Status != store.Failed {
		t.Errorf("unmatched job: %s, want failed", j.Status)
	}
	if again := Due(jobs, rules, 50, 100); len(again) != 0 {
		t.Errorf("second tick at the same time re-triggered %d jobs", len(again))
	}
}

// TestDue_Bounded: at most max jobs per tick; the rest wait for the next.
func TestDue_Bounded(t *testing.T) {
	jobs, rules := store.NewJobs(), store.NewRules()
	for i := 0; i < 10; i++ {
		jobs.Set(string(rune('a'+i)), int64(i))
	}
	if n := len(Due(jobs, rules, 100, 4)); n != 4 {
		t.Fatalf("first tick: %d, want 4", n)
	}
	if n := len(Due(jobs, rules, 100, 100)); n != 6 {
		t.Fatalf("second tick: %d, want 6", n)
	}
}

// TestDue_ReSetWhileRunning: the old run's result does not clobber a job
// re-SET while it ran (docs/protocol.md).
func TestDue_ReSetWhileRunning(t *testing.T) {
	jobs, rules := store.NewJobs(), store.NewRules()
	rules.Set(rule("r", "j"))
	jobs.Set("j", 1)
	out := Due(jobs, rules, 5, 10)
	gen := out[0].exec.Gen
	jobs.Set("j", 1000)
	if jobs.Complete("j", gen, store.Executed, &store.Outcome{}) {
		t.Fatal("stale result applied to a re-SET job")
	}
	if j, _ := jobs.Get("j"); j.Status != store.Planned || j.Execution != 1000 {
		t.Fatalf("job after stale result: %+v", j)
	}
}

func TestLatencyQuantiles(t *testing.T) {
	var l latency
	for i := int64(1); i <= 100; i++ {
		l.add(i * 1000) // 1µs .. 100µs
	}
	if l.count != 100 || l.max != 100000 {
		t.Fatalf("count %d max %d", l.count, l.max)
	}
	p50, p99 := l.quantile(0.5), l.quantile(0.99)
	if p50 < 50000 || p50 > 2*50000 || p99 < 99000 || p99 > 100000 {
		t.Fatalf("p50 %d p99 %d", p50, p99)
	}
	var empty latency
	if empty.quantile(0.99) != 0 {
		t.Fatal("empty histogram")
	}
}
