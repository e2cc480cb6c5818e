package master

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/config"
	"github.com/tockd/tock/store"
)

func ruleChange(id string) store.Record {
	return store.Record{Type: store.RecordRule, Rule: store.Rule{ID: id, Pattern: id + ".", Runner: store.Runner{Kind: store.RunnerShell, Args: []string{"true"}}}}
}

// TestRules_FsyncFailure: a rule change whose fsync fails is refused, is
// not in memory, and is not in rules.log after the next start either; the
// log is reopened, so later changes work (regression: the record stayed in
// the file, came back at the next start, and every later change failed).
func TestRules_FsyncFailure(t *testing.T) {
	cfg := config.Default()
	cfg.Database.DataDir = t.TempDir()
	rs, err := openRuleSet(cfg, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	var fail atomic.Bool
	rs.fsync = func(f *os.File) error {
		if fail.Load() {
			return errors.New("injected EIO")
		}
		return f.Sync()
	}
	if err := rs.file.Close(); err != nil {
		t.Fatal(err)
	}
	if rs.rules, rs.file, err = rs.load(); err != nil {
		t.Fatal(err)
	}
	none := func() []*proc { return nil }
	if err := rs.change(ruleChange("r1"), none); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	if err := rs.change(ruleChange("r2"), none); err == nil {
		t.Fatal("a rule change with a failing fsync succeeded")
	}
	if _, ok := rs.get("r2"); ok {
		t.Fatal("the refused rule is in memory")
	}
	fail.Store(false)
	if err := rs.change(ruleChange("r3"), none); err != nil {
		t.Fatalf("change after the failure: %v", err)
	}
	if err := rs.close(); err != nil {
		t.Fatal(err)
	}
	again, err := openRuleSet(cfg, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer again.close()
	for id, want := range map[string]bool{"r1": true, "r2": false, "r3": true} {
		if _, ok := again.get(id); ok != want {
			t.Errorf("after a restart rule %s present=%v, want %v (%s)", id, ok, want, filepath.Join(cfg.Database.DataDir, "rules.log"))
		}
	}
}
