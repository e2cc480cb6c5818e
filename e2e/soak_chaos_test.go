//go:build soak

package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chaosKind names what a chaos action does to the cluster.
type chaosKind int

const (
	chaosKillWorker   chaosKind = iota // kill -9 of a random worker (draining ones included)
	chaosHangWorker                    // SIGSTOP of a random worker until the master kills it past worker_timeout
	chaosPhasedSignal                  // SIGUSR1 to the master
	chaosPhasedCtl                     // tock ctl phased-restart
	chaosScaleUp                       // SIGTTIN to the master, or tock ctl workers +1
	chaosScaleDown                     // SIGTTOU to the master, or tock ctl workers -1
	chaosKillMaster                    // kill -9 of the master, then a new tock serve on the same data dir
	chaosKinds
)

func (k chaosKind) String() string {
	return [...]string{"kill-worker", "hang-worker", "phased-restart-signal", "phased-restart-ctl", "scale-up", "scale-down", "kill-master"}[k]
}

// chaosAction is one logged action.
type chaosAction struct {
	at     time.Time
	until  time.Time // a stopped worker is out of action until the master kills it
	kind   chaosKind
	pids   []int  // the processes it killed or stopped (for kill-master: the master and its workers)
	shards []int  // the shards they owned, by the stats tree just before
	note   string // what came of it
	failed bool   // the action could not do its job (not a verdict on the cluster)
}

func (a chaosAction) String() string {
	s := fmt.Sprintf("%s %-22s pids=%v shards=%v %s", a.at.UTC().Format("15:04:05.000"), a.kind, a.pids, a.shards, a.note)
	if a.failed {
		s += " [action failed]"
	}
	return s
}

// chaosSchedule is how often each kind of action comes.
type chaosSchedule struct {
	duration        time.Duration
	killEvery       time.Duration // a worker kill, hang or scale step on each tick
	restartEvery    time.Duration // a phased restart on each tick
	masterKillEvery time.Duration // 0: never
	workerTimeout   time.Duration // the cluster's worker_timeout
	shutdownTimeout time.Duration // the cluster's worker_shutdown_timeout
}

// chaos runs on the test goroutine: the actions are sequential, so two never
// overlap (the cluster's own rollouts and scalings do run on under later
// actions).
type chaos struct {
	t       *testing.T
	s       *soak
	rng     *rand.Rand
	actions []chaosAction
	kills   []kill // what the actions killed or stopped, for the verifier
	log     *os.File
	byCtl   bool // the next scale step goes through tock ctl, not a signal
}

func newChaos(t *testing.T, s *soak, seed uint64, logPath string) *chaos {
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &chaos{t: t, s: s, rng: rand.New(rand.NewPCG(seed, 0xc4a05)), log: f}
}

// run acts on the schedule until its duration has passed.
func (ch *chaos) run(sc chaosSchedule) {
	kill := time.NewTicker(sc.killEvery)
	defer kill.Stop()
	restart := time.NewTicker(sc.restartEvery)
	defer restart.Stop()
	var masterC <-chan time.Time
	if sc.masterKillEvery > 0 {
		mk := time.NewTicker(sc.masterKillEvery)
		defer mk.Stop()
		masterC = mk.C
	}
	end := time.NewTimer(sc.duration)
	defer end.Stop()
	phasedByCtl := false
	for {
		select {
		case <-end.C:
			return
		case <-kill.C:
			switch r := ch.rng.IntN(100); {
			case r < 60:
				ch.record(ch.killWorker())
			case r < 75:
				ch.record(ch.hangWorker(sc))
			default:
				ch.record(ch.scale())
			}
		case <-restart.C:
			if phasedByCtl {
				ch.record(ch.phasedCtl())
			} else {
				ch.record(ch.signalMaster(chaosPhasedSignal, syscall.SIGUSR1))
			}
			phasedByCtl = !phasedByCtl
		case <-masterC:
			ch.record(ch.killMaster())
		}
	}
}

func (ch *chaos) record(a chaosAction) {
	ch.actions = append(ch.actions, a)
	if len(a.pids) > 0 {
		until := a.until
		if until.IsZero() {
			until = a.at
		}
		ch.kills = append(ch.kills, kill{from: a.at, to: until, pids: a.pids, shards: a.shards, why: a.kind.String()})
	}
	fmt.Fprintln(ch.log, a)
	ch.t.Log("chaos: " + a.String())
}

func (ch *chaos) masterPID() int { return ch.s.c.cmd.Process.Pid }

// pickWorker is a random live worker of the current master (0 if none)
// and the shards the stats tree says it owns.
func (ch *chaos) pickWorker() (int, []int) {
	pids := workerPIDs(ch.t, ch.masterPID())
	if len(pids) == 0 {
		return 0, nil
	}
	pid := pids[ch.rng.IntN(len(pids))]
	return pid, ch.shardsOf(pid)
}

// shardsOf is what the stats tree says pid owns now, or else owned when
// the sampler last saw it (nil if unknown).
func (ch *chaos) shardsOf(pid int) []int {
	if st, err := ch.s.stats(); err == nil {
		for _, w := range st.WorkerStatus {
			if w.PID == pid && len(w.Shards) > 0 {
				return w.Shards
			}
		}
	}
	return ch.s.owners.shardsOf(pid)
}

func (ch *chaos) killWorker() chaosAction {
	a := chaosAction{at: time.Now(), kind: chaosKillWorker}
	pid, shards := ch.pickWorker()
	if pid == 0 {
		a.note, a.failed = "no worker to kill", true
		return a
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		a.note, a.failed = err.Error(), true
		return a
	}
	a.pids, a.shards = []int{pid}, shards
	return a
}

// hangWorker stops a worker and waits until the master has killed it: past
// worker_timeout for a serving worker, past the shutdown timeout for a
// draining one. A worker still there after that is let go again.
func (ch *chaos) hangWorker(sc chaosSchedule) chaosAction {
	a := chaosAction{at: time.Now(), kind: chaosHangWorker}
	pid, shards := ch.pickWorker()
	if pid == 0 {
		a.note, a.failed = "no worker to stop", true
		return a
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		a.note, a.failed = err.Error(), true
		return a
	}
	a.pids, a.shards = []int{pid}, shards
	limit := sc.workerTimeout + sc.shutdownTimeout + 15*time.Second
	gone := pollUntil(nil, limit, 50*time.Millisecond, func() bool { return !alive(pid) })
	a.until = time.Now()
	if gone {
		a.note = fmt.Sprintf("killed by the master after %s", a.until.Sub(a.at).Round(100*time.Millisecond))
		return a
	}
	syscall.Kill(pid, syscall.SIGCONT)
	a.note, a.failed = fmt.Sprintf("still alive after %s; SIGCONT sent", limit), true
	return a
}

func (ch *chaos) signalMaster(kind chaosKind, sig syscall.Signal) chaosAction {
	a := chaosAction{at: time.Now(), kind: kind}
	if err := ch.s.c.cmd.Process.Signal(sig); err != nil {
		a.note, a.failed = err.Error(), true
	}
	return a
}

func (ch *chaos) phasedCtl() chaosAction {
	a := chaosAction{at: time.Now(), kind: chaosPhasedCtl}
	r := runCtl(ch.t, ch.s.dir, nil, "--control", controlSocket(ch.s.dir), "phased-restart")
	if r.code != exitCodeOK {
		// A rollout or a scaling in progress refuses it: the chaos goes on.
		a.note = fmt.Sprintf("refused (exit %d): %s", r.code, strings.TrimSpace(r.stderr))
	}
	return a
}

// scale keeps the cluster between 2 and 3 serving workers, by signal and
// by tock ctl in turn.
func (ch *chaos) scale() chaosAction {
	st, err := ch.s.stats()
	if err != nil {
		return chaosAction{at: time.Now(), kind: chaosScaleUp, note: "stats: " + err.Error(), failed: true}
	}
	serving := 0
	for _, w := range st.WorkerStatus {
		if !w.Draining {
			serving++
		}
	}
	a := chaosAction{kind: chaosScaleUp}
	sig, delta := syscall.SIGTTIN, "+1"
	if serving > 2 {
		a.kind, sig, delta = chaosScaleDown, syscall.SIGTTOU, "-1"
	}
	ch.byCtl = !ch.byCtl
	if !ch.byCtl {
		a = ch.signalMaster(a.kind, sig)
		a.note = strings.TrimSpace(fmt.Sprintf("%s from %d serving workers; %s", sig, serving, a.note))
		a.note = strings.TrimSuffix(a.note, ";")
		return a
	}
	a.at = time.Now()
	a.note = fmt.Sprintf("tock ctl workers %s from %d serving workers", delta, serving)
	r := runCtl(ch.t, ch.s.dir, nil, "--control", controlSocket(ch.s.dir), "workers", delta)
	if r.code != exitCodeOK {
		a.note += fmt.Sprintf("; refused (exit %d): %s", r.code, strings.TrimSpace(r.stderr))
	}
	return a
}

// killMaster kills the master and its workers' link with it, and starts a
// new master on the same data dir at once, as a supervisor would.
func (ch *chaos) killMaster() chaosAction {
	a := chaosAction{at: time.Now(), kind: chaosKillMaster}
	master := ch.masterPID()
	a.pids = append([]int{master}, workerPIDs(ch.t, master)...)
	for sh := range ch.s.shards {
		a.shards = append(a.shards, sh)
	}
	ch.s.tgt.down()
	if err := syscall.Kill(master, syscall.SIGKILL); err != nil {
		a.note, a.failed = err.Error(), true
		ch.s.tgt.up(ch.s.c.addr)
		return a
	}
	<-ch.s.c.exited
	left := 0
	for _, p := range a.pids[1:] {
		if alive(p) {
			left++
		}
	}
	start := time.Now()
	ch.s.restartMaster()
	a.note = fmt.Sprintf("new master pid=%d ready after %s (%d old workers still alive at its start)", ch.masterPID(), time.Since(start).Round(10*time.Millisecond), left)
	return a
}

// counts are the actions per kind and the failed actions.
func (ch *chaos) counts() (map[chaosKind]int, int) {
	n, failed := map[chaosKind]int{}, 0
	for _, a := range ch.actions {
		n[a.kind]++
		if a.failed {
			failed++
		}
	}
	return n, failed
}

// pollUntil calls cond every interval until it holds (true), d has passed
// or stop is closed (false). A nil stop never closes.
func pollUntil(stop <-chan struct{}, d, every time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			return cond()
		case <-stop:
			return false
		case <-tick.C:
		}
	}
	return true
}
