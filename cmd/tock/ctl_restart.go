package main

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/tockd/tock/master"
	"github.com/urfave/cli/v2"
)

// Waiting for a phased restart.
const (
	defaultWaitTimeout = 10 * time.Minute
	waitPollInterval   = 200 * time.Millisecond
)

func ctlPhasedRestart(c *cli.Context, cl *ctlClient) error {
	var before master.Stats
	if c.Bool("wait") {
		if _, err := cl.get("/stats", &before); err != nil {
			return err
		}
	}
	b, err := cl.send(http.MethodPost, "/phased-restart", nil)
	if err != nil {
		return err
	}
	if !c.Bool("wait") {
		if wantJSON(c) {
			return printJSON(b)
		}
		fmt.Println("ok")
		return nil
	}
	return waitRollout(cl, before, c.Duration("timeout"))
}

// waitRollout polls /stats until the phase is past before's, no rollout runs
// and no old worker is left, printing each worker as it comes up in the new
// phase. An abort (last_error) is an error.
func waitRollout(cl *ctlClient, before master.Stats, timeout time.Duration) error {
	target := before.Phase + 1
	fmt.Printf("phased restart to phase %d of %d workers\n", target, before.Workers)
	pidsBefore := map[int]int{}
	shardsBefore := map[int][]int{}
	for _, w := range before.WorkerStatus {
		pidsBefore[w.Index] = w.PID
		shardsBefore[w.Index] = w.Shards
	}
	reported := map[int]bool{}
	deadline := time.Now().Add(timeout)
	for {
		var st master.Stats
		if _, err := cl.get("/stats", &st); err != nil {
			return err
		}
		pr := st.PhasedRestart
		done := st.Phase >= target && !pr.InProgress && st.OldWorkers == 0
		for _, w := range st.WorkerStatus {
			if w.Phase >= target && w.Booted && !w.Draining && !reported[w.Index] &&
				(done || handedOver(st, w, shardsBefore[w.Index])) {
				reported[w.Index] = true
				fmt.Printf("worker %d: pid %d -> %d, phase %d, booted, shards %s\n",
					w.Index, pidsBefore[w.Index], w.PID, w.Phase, shardList(w.Shards))
			}
		}
		switch {
		case !pr.InProgress && pr.LastError != nil:
			return fmt.Errorf("phased restart aborted: %s (the old workers keep serving)", *pr.LastError)
		case done:
			fmt.Printf("done: phase %d, %d workers booted\n", st.Phase, st.BootedWorkers)
			return nil
		case time.Now().After(deadline):
			return errors.New("gave up waiting for the phased restart after " + timeout.String() +
				" (it may still be running; see tock ctl status)")
		}
		time.Sleep(waitPollInterval) // polling period of the progress display
	}
}

// handedOver reports whether the worker its new replacement w took over
// from has released all its shards and w has every shard of had (what
// that index had before the rollout): a new worker boots with none and
// receives them one at a time, so before that its shard list is partial.
// A shard between the two (released, not yet acquired) is in neither list.
func handedOver(st master.Stats, w master.WorkerStats, had []int) bool {
	for _, o := range st.WorkerStatus {
		if o.Index == w.Index && o.PID != w.PID && len(o.Shards) > 0 {
			return false
		}
	}
	for _, n := range had {
		if !slices.Contains(w.Shards, n) {
			return false
		}
	}
	return len(w.Shards) > 0
}
