package main

import (
	"testing"

	"github.com/tockd/tock/master"
)

// TestHandedOver: phased-restart --wait reports a new worker only once its
// predecessor at the same index has released every shard, so the line it
// prints lists all the worker's shards rather than none or some.
func TestHandedOver(t *testing.T) {
	newW := master.WorkerStats{PID: 20, Index: 0, Phase: 1, Booted: true}
	old := master.WorkerStats{PID: 10, Index: 0, Phase: 0, Booted: true, Draining: true}
	other := master.WorkerStats{PID: 11, Index: 1, Phase: 0, Booted: true, Shards: []int{1, 3}}
	cases := []struct {
		name      string
		newShards []int
		oldShards []int
		want      bool
	}{
		{"booted, nothing received yet", nil, []int{0, 2}, false},
		{"halfway", []int{0}, []int{2}, false},
		{"all received", []int{0, 2}, nil, true},
		// Regression ('phased-restart --wait line lacked shard 7'): the
		// last shard released by the old worker, not yet acquired.
		{"the last shard between the two", []int{0}, nil, false},
	}
	for _, c := range cases {
		n, o := newW, old
		n.Shards, o.Shards = c.newShards, c.oldShards
		st := master.Stats{WorkerStatus: []master.WorkerStats{n, other, o}}
		if got := handedOver(st, n, []int{0, 2}); got != c.want {
			t.Errorf("%s: handedOver = %v, want %v", c.name, got, c.want)
		}
	}
	// The old worker gone from the tree (it exited) counts as handed over.
	n := newW
	n.Shards = []int{0, 2}
	if !handedOver(master.Stats{WorkerStatus: []master.WorkerStats{n, other}}, n, []int{0, 2}) {
		t.Error("the predecessor has exited: want handed over")
	}
}
