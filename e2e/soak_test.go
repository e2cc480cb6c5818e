//go:build soak

package e2e

// The chaos soak: ledger clients drive
// SETs, REMOVEs, GETs and due jobs over persistent connections while a
// chaos loop kills and stops workers, rolls the cluster out, scales it and
// kills the master; at the end the cluster must agree with the ledger.
//
//	go test -tags soak -run '^TestSoak$' -v ./e2e/           # 60 s
//	TOCK_SOAK_DURATION=10m make soak

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tockd/tock/master"
)

// soakKnobs are the soak's settings, from the environment.
type soakKnobs struct {
	chaosSchedule
	clients int    // ledger connections
	rate    int    // requests per second per connection
	seed    uint64 // chaos and client choices
	keep    string // a directory to keep the run's files in ("" = a temp dir)
}

func soakKnobsFromEnv(t *testing.T) soakKnobs {
	k := soakKnobs{
		chaosSchedule: chaosSchedule{
			duration: 60 * time.Second, killEvery: 2 * time.Second, restartEvery: 20 * time.Second,
			masterKillEvery: 45 * time.Second, workerTimeout: 3 * time.Second, shutdownTimeout: 5 * time.Second,
		},
		clients: 4, rate: 25, seed: uint64(time.Now().UnixNano()),
		keep: os.Getenv("TOCK_SOAK_DIR"),
	}
	durations := map[string]*time.Duration{
		"TOCK_SOAK_DURATION": &k.duration, "TOCK_SOAK_KILL_EVERY": &k.killEvery,
		"TOCK_SOAK_RESTART_EVERY": &k.restartEvery, "TOCK_SOAK_MASTER_KILL_EVERY": &k.masterKillEvery,
	}
	for name, p := range durations {
		if v := os.Getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || (d == 0 && name != "TOCK_SOAK_MASTER_KILL_EVERY") {
				t.Fatalf("%s=%q: want a positive duration such as 90s (0 turns master kills off)", name, v)
			}
			*p = d
		}
	}
	ints := map[string]*int{"TOCK_SOAK_CLIENTS": &k.clients, "TOCK_SOAK_RATE": &k.rate}
	for name, p := range ints {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				t.Fatalf("%s=%q: want a positive integer", name, v)
			}
			*p = n
		}
	}
	if v := os.Getenv("TOCK_SOAK_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("TOCK_SOAK_SEED=%q: want an unsigned integer", v)
		}
		k.seed = n
	}
	return k
}

// soakClusterConfig is the harness's test config with short supervision
// timeouts, so that a hang is detected and a drain bounded within the run.
// The shell is bash for $EPOCHREALTIME, a clock without a fork.
func soakClusterConfig(t *testing.T, dir string, k soakKnobs, shards int) string {
	cfg := clusterConfig(dir, "[shell]\npath = \"/bin/bash\"\nargs = [\"-c\"]\n")
	for _, r := range [][2]string{
		{`level = "debug"`, `level = "info"`},
		{"shards = 8", fmt.Sprintf("shards = %d", shards)},
		{"[cluster]\n", fmt.Sprintf("[cluster]\nworker_timeout = %q\n", k.workerTimeout)},
		{`worker_shutdown_timeout = "10s"`, fmt.Sprintf("worker_shutdown_timeout = %q", k.shutdownTimeout)},
	} {
		if !strings.Contains(cfg, r[0]) {
			t.Fatalf("the harness config has no %q any more:\n%s", r[0], cfg)
		}
		cfg = replaceOnce(cfg, r[0], r[1])
	}
	return cfg
}

// soak is one run: the cluster, where the clients connect, its files.
type soak struct {
	t            *testing.T
	dir          string
	ranLog       string // where the rules' shells log their runs
	c            *cluster
	shards       int
	tgt          *soakTarget
	hc           *http.Client // the control socket
	owners       *ownerSampler
	stopSampling func() // idempotent
}

// restartMaster starts a new master after the old one died, keeping one
// log for the whole run.
func (s *soak) restartMaster() {
	all := s.c.logs
	off := len(all.String())
	s.c.startWith(func() string { return all.String()[off:] })
	s.tgt.up(s.c.addr)
}

// stats reads the stats tree; safe from any goroutine.
func (s *soak) stats() (master.Stats, error) {
	var st master.Stats
	resp, err := s.hc.Get("http://tock/stats")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /stats: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// shellRule logs "start" and "end" lines of every execution with the
// worker's pid ($PPID), the shell's ($$, one per execution) and the time;
// the slow one spans handoffs.
func shellRule(rid, name, prefix, ranLog string, slow bool) string {
	mark := func(what string) string {
		return fmt.Sprintf("echo %s $TOCK_JOB_ID $PPID $$ $EPOCHREALTIME >> %s", what, ranLog)
	}
	cmd := mark("start") + "; " + mark("end")
	if slow {
		cmd = mark("start") + "; sleep 1; " + mark("end")
	}
	return fmt.Sprintf(`%s RULE SET %s %s shell "%s"`, rid, name, prefix, cmd)
}

func TestSoak(t *testing.T) {
	k := soakKnobsFromEnv(t)
	s := startSoak(t, k)
	defer s.stopSampling()
	l, closes := newLedger(), &connCloses{}
	stopClients := make(chan struct{})
	var clients sync.WaitGroup
	for i := range k.clients {
		c := newLedgerClient(i, k.seed, l, s.tgt, closes)
		clients.Go(func() { c.run(stopClients, time.Second/time.Duration(k.rate)) })
	}
	ch := newChaos(t, s, k.seed, filepath.Join(s.dir, "chaos.log"))
	start := time.Now()
	ch.run(k.chaosSchedule)
	close(stopClients)
	clients.Wait()
	t.Logf("soak: chaos over after %s; waiting for the cluster to settle", time.Since(start).Round(time.Second))

	r := s.verify(k, l, ch)
	r.elapsed, r.closes = time.Since(start), closes
	summary := r.String()
	t.Log("soak summary:\n" + summary)
	for name, body := range map[string]string{"summary.txt": summary, "tock.log": r.logs} {
		if err := os.WriteFile(filepath.Join(s.dir, name), []byte(body), 0o644); err != nil {
			t.Error(err)
		}
	}
	r.check(t)
}

// startSoak starts the cluster, its rules and the ownership sampler.
func startSoak(t *testing.T, k soakKnobs) *soak {
	dir := t.TempDir()
	if k.keep != "" {
		dir = filepath.Join(k.keep, "soak-"+time.Now().UTC().Format("20060102-150405"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("soak: seed %d, %s of chaos: a kill every %s, a phased restart every %s, a master kill every %s; %d clients at %d req/s; files in %s",
		k.seed, k.duration, k.killEvery, k.restartEvery, k.masterKillEvery, k.clients, k.rate, dir)
	s := &soak{t: t, dir: dir, ranLog: filepath.Join(dir, "ran.log"), shards: 16, tgt: &soakTarget{}}
	s.c = startCluster(t, dir, soakClusterConfig(t, dir, k, s.shards))
	s.hc = unixControl(t, dir).hc
	s.tgt.up(s.c.addr)
	cl := dial(t, s.c.addr)
	cl.expect(shellRule("r1", "soak.fast", soakFastPrefix, s.ranLog, false), "r1 OK")
	cl.expect(shellRule("r2", "soak.slow", soakSlowPrefix, s.ranLog, true), "r2 OK")

	s.owners = &ownerSampler{shardsDir: filepath.Join(dir, "data", "shards"), bin: tockBin, stats: s.stats}
	stop := make(chan struct{})
	var done sync.WaitGroup
	done.Go(func() { s.owners.run(stop, 200*time.Millisecond) })
	s.stopSampling = sync.OnceFunc(func() {
		close(stop)
		done.Wait()
	})
	return s
}

// verify waits (bounded) for the drains to end, then checks the cluster
// against the ledger, the runs against the kills, and the files; last it
// restarts the cluster cleanly and checks the ledger again.
func (s *soak) verify(k soakKnobs, l *ledger, ch *chaos) soakReport {
	t := s.t
	due := dueLedgerKeys(l)
	cl := dial(t, s.c.addr)
	var rows map[string]jobRow
	settled := pollUntil(nil, 2*k.shutdownTimeout+10*time.Second, 500*time.Millisecond, func() bool {
		var err error
		if rows, err = queryRows(t, cl); err != nil {
			t.Log(err)
			return false
		}
		st, err := s.stats()
		draining := slices.ContainsFunc(st.WorkerStatus, func(w ctlWorker) bool { return w.Draining })
		return err == nil && !st.PhasedRestart.InProgress && !draining && pendingDue(due, rows) == 0
	})
	s.stopSampling()

	runs, err := parseRanLog(s.ranLog)
	if err != nil {
		t.Fatal(err)
	}
	final := l.snapshot()
	r := soakReport{k: k, settled: settled, l: l, ch: ch, owners: s.owners}
	r.v.checkKeys(final, rows, runs)
	kills := ch.kills
	for _, sk := range serverKills(s.c.logs.String()) {
		sk.shards = s.owners.shardsOf(sk.pids[0])
		kills = append(kills, sk)
	}
	r.v.checkRuns(runs, kills, func(job string) int { return master.ShardOf(job, s.shards) })

	r.stopErr = s.c.stop()
	r.nFiles, r.corrupt = verifyFiles(t, filepath.Join(s.dir, "data"))
	s.restartMaster()
	rowsAfter, err := queryRows(t, dial(t, s.c.addr))
	if err != nil {
		t.Fatal(err)
	}
	var after verdict
	after.checkKeys(final, rowsAfter, runs)
	r.lostAfterRestart = after.lost
	r.logs = s.c.logs.String()
	return r
}

// dueLedgerKeys are the due keys, for the settle wait.
func dueLedgerKeys(l *ledger) map[string]ledgerKey {
	all := l.snapshot()
	for id, k := range all {
		if !k.due {
			delete(all, id)
		}
	}
	return all
}

// pendingDue counts the due jobs the cluster still shows planned or
// triggered.
func pendingDue(keys map[string]ledgerKey, rows map[string]jobRow) int {
	n := 0
	for id := range keys {
		if row, ok := rows[id]; ok && (row.status == "planned" || row.status == "triggered") {
			n++
		}
	}
	return n
}

// soakReport is everything the run measured.
type soakReport struct {
	k                soakKnobs
	elapsed          time.Duration
	settled          bool
	l                *ledger
	ch               *chaos
	closes           *connCloses
	owners           *ownerSampler
	v                verdict
	lostAfterRestart []string
	nFiles           int
	corrupt          []string
	stopErr          error
	logs             string
}

func (r soakReport) String() string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("seed %d; %s of chaos (%s in all): a kill every %s, a phased restart every %s, a master kill every %s",
		r.k.seed, r.k.duration, r.elapsed.Round(time.Second), r.k.killEvery, r.k.restartEvery, r.k.masterKillEvery)
	_, _, ops := r.l.opsSummary()
	line("operations: %s", ops)
	counts, failed := r.ch.counts()
	var kinds []string
	for kind := range chaosKinds {
		kinds = append(kinds, fmt.Sprintf("%s=%d", kind, counts[kind]))
	}
	line("chaos actions: %s (%d could not do their job)", strings.Join(kinds, " "), failed)
	line("master restarts: %d; cluster log: %d rollouts started, %d done, %d aborted; %d workers replaced after dying; %d scalings done, %d failed; %d workers killed by the master",
		counts[chaosKillMaster], strings.Count(r.logs, "phased restart started"), strings.Count(r.logs, "phased restart done"),
		strings.Count(r.logs, "phased restart aborted"), strings.Count(r.logs, "worker died, replacing it"),
		strings.Count(r.logs, "tock: scaled:"), strings.Count(r.logs, "scaling failed"), len(serverKills(r.logs)))
	atKill, byServer := r.closes.counts()
	line("client connections: %d closed at master kills, %d closed by the server otherwise", atKill, len(byServer))
	v := r.v
	line("keys: %d (%d due jobs); lost acknowledged writes: %d (after a clean restart: %d); read mismatches: %d; phantom keys: %d",
		v.keys, v.dueKeys, len(v.lost), len(r.lostAfterRestart), r.l.mismatchN, len(v.phantomKeys))
	line("due jobs: settled=%v; %d ran (%d runs, %d interrupted), %d ended failed; stranded (planned/triggered): %d; executed without a run: %d",
		r.settled, v.ranJobs, v.runs, v.interrupted, v.failedJobs, len(v.stranded), len(v.notRun))
	line("double runs: %d explained (%d by a kill of the worker that ran the attempt before, %d by a kill of the job's shard owner before it recorded that attempt's outcome), %d unexplained (%d of them two runs at once on one worker)",
		v.explainedByRunner+v.explainedByOwner, v.explainedByRunner, v.explainedByOwner, len(v.unexplained), v.concurrent)
	line("shard ownership: %s", r.owners.summary())
	line("dump --verify: %d files, %d failed; clean stop: %v", r.nFiles, len(r.corrupt), errString(r.stopErr))
	detail := func(what string, items []string) {
		if len(items) == 0 {
			return
		}
		line("%s (%d, first ones):", what, len(items))
		for _, it := range items[:min(len(items), 15)] {
			line("  %s", it)
		}
	}
	detail("lost", v.lost)
	detail("lost after the clean restart", r.lostAfterRestart)
	detail("stranded", v.stranded)
	detail("executed without a run", v.notRun)
	detail("unexplained double runs", v.unexplained)
	detail("phantom keys", v.phantomKeys)
	detail("connections closed by the server", byServer)
	r.l.mu.Lock()
	detail("read mismatches", slices.Clone(r.l.mismatches))
	r.l.mu.Unlock()
	r.owners.mu.Lock()
	detail("two owners of a shard", slices.Clone(r.owners.first))
	r.owners.mu.Unlock()
	detail("corrupt files", r.corrupt)
	return b.String()
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// check fails the test on every broken guarantee (the summary says which).
func (r soakReport) check(t *testing.T) {
	t.Helper()
	_, byServer := r.closes.counts() // a master kill closes its connections: not counted
	r.owners.mu.Lock()
	double := r.owners.osDouble + r.owners.statDouble
	r.owners.mu.Unlock()
	for _, c := range []struct {
		n    int
		what string
	}{
		{len(r.v.lost), "acknowledged writes lost"},
		{len(r.lostAfterRestart), "acknowledged writes lost after a clean restart"},
		{r.l.mismatchN, "replies contradicting the ledger"},
		{len(r.v.phantomKeys), "jobs nobody wrote"},
		{len(r.v.stranded), "due jobs stranded planned/triggered"},
		{len(r.v.notRun), "due jobs executed without a run"},
		{len(r.v.unexplained), "unexplained double runs"},
		{len(byServer), "client connections closed by the server outside master kills"},
		{double, "samples with two owners of a shard"},
		{len(r.corrupt), "files failing tock dump --verify"},
	} {
		if c.n > 0 {
			t.Errorf("soak: %d %s", c.n, c.what)
		}
	}
	if r.stopErr != nil {
		t.Errorf("soak: the clean stop at the end failed: %v", r.stopErr)
	}
}
