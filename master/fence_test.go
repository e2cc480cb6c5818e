package master

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/tockd/tock/config"
	"github.com/tockd/tock/store"
)

// TestFence_SecondMasterRefusedInNew: a second master on a data dir is
// refused when it is created, before it opens anything there, and can
// start once the first is gone.
func TestFence_SecondMasterRefusedInNew(t *testing.T) {
	cfg := config.Default()
	cfg.Database.DataDir = filepath.Join(t.TempDir(), "data")
	first, err := New(cfg, Options{}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg, Options{}, hclog.NewNullLogger())
	if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "another tock is running on") {
		t.Fatalf("second master: %v, want a locked data dir", err)
	}
	first.unlockDataDir()
	first.rules.close()
	second, err := New(cfg, Options{}, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("master after the first is gone: %v", err)
	}
	second.unlockDataDir()
	second.rules.close()
}

// TestFence_EpochsGrowAcrossRestarts: every epoch a master hands out is
// higher than every one handed out by the masters before it on the data
// dir.
func TestFence_EpochsGrowAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	var last uint64
	for run := 0; run < 3; run++ {
		e, err := loadEpochs(dir)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			n := e.next()
			if n <= last {
				t.Fatalf("run %d: epoch %d after %d", run, n, last)
			}
			last = n
		}
	}
}
