package e2e

// The verifiers of the scale-out tests: the ledger read back through the
// hosts, the shard streams read offline (every record, in order, with the
// epoch and host of its writer), and the executions the shell rules
// logged.

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tockd/tock/store"
	"github.com/tockd/tock/store/jslog"
)

// soJob is a job's state: from a GET, or replayed from a stream.
type soJob struct {
	status string
	exec   int64
}

// getAll GETs every key of keys through the live hosts in turn, pipelined,
// and returns what each answered ("" for "not found").
func (c *soClusterT) getAll(keys []string) (map[string]soJob, error) {
	hosts := c.liveHosts()
	out := make(map[string]soJob, len(keys))
	const batch = 64
	conns := make([]*rawClient, len(hosts))
	defer func() {
		for _, rc := range conns {
			if rc != nil {
				rc.close()
			}
		}
	}()
	for i, h := range hosts {
		if conns[i] = dialNoT(h.client); conns[i] == nil {
			return nil, fmt.Errorf("dial %s", h.name)
		}
	}
	for b := 0; b*batch < len(keys); b++ {
		rc := conns[b%len(conns)]
		part := keys[b*batch : min((b+1)*batch, len(keys))]
		var sb strings.Builder
		for i, k := range part {
			fmt.Fprintf(&sb, "g%d GET %s\n", i, k)
		}
		rc.conn.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := rc.conn.Write([]byte(sb.String())); err != nil {
			return nil, err
		}
		for i, k := range part {
			line, err := rc.r.ReadString('\n')
			if err != nil {
				return nil, fmt.Errorf("GET %s through %s: %w", k, hosts[b%len(conns)].name, err)
			}
			f := strings.Fields(line)
			switch {
			case strings.TrimSpace(line) == fmt.Sprintf("g%d ERROR not found", i):
				out[k] = soJob{}
			case len(f) == 4 && f[0] == fmt.Sprintf("g%d", i) && f[1] == "OK":
				exec, err := strconv.ParseInt(f[3], 10, 64)
				if err != nil {
					return nil, fmt.Errorf("GET %s: %q", k, line)
				}
				out[k] = soJob{status: f[2], exec: exec}
			default:
				return nil, fmt.Errorf("GET %s through %s: %q", k, hosts[b%len(conns)].name, strings.TrimSpace(line))
			}
		}
	}
	return out, nil
}

// checkLedgerByGET reads every acknowledged key back through the hosts:
// each must be planned at its acknowledged time. It returns the number
// lost (absent or different) and a few examples.
func (c *soClusterT) checkLedgerByGET(acked map[string]int64) (lost int, examples []string) {
	c.t.Helper()
	keys := slices.Sorted(maps.Keys(acked))
	var got map[string]soJob
	// A host may still be settling (a rebalance after a restart): a read
	// that fails is retried, a read that answers is final.
	waitForWhy(c.t, 60*time.Second, "the ledger read back through the hosts", func() (bool, string) {
		var err error
		got, err = c.getAll(keys)
		return err == nil, fmt.Sprint(err)
	})
	for _, k := range keys {
		if j := got[k]; j.status != "planned" || j.exec != acked[k] {
			lost++
			if len(examples) < 10 {
				examples = append(examples, fmt.Sprintf("%s acknowledged at %d, GET: %+v", k, acked[k], j))
			}
		}
	}
	return lost, examples
}

// soStreams is what an offline replay of every shard stream found.
type soStreams struct {
	jobs       map[string]soJob // the jobs every stream's records leave
	messages   int
	stale      int                     // fenced owners' in-flight appends stored after the fence (never applied)
	fences     map[int][]jslog.Message // per shard, its fence records in order (Records nil)
	violations []string                // single-writer violations (first 50)
	nviolation int
}

func (s *soStreams) violate(format string, args ...any) {
	s.nviolation++
	if len(s.violations) < 50 {
		s.violations = append(s.violations, fmt.Sprintf(format, args...))
	}
}

// readStreams replays every shard stream from the test's own connection,
// applying the records in order, and checks the writers:
//   - fence epochs strictly increase;
//   - one writer per epoch: every message of epoch e comes from the host
//     whose fence opened e;
//   - after fence(e), a message carries e, or an older epoch: an append of
//     the fenced owner that was in flight when the fence landed. The
//     engine stores such an append (the fence took the sequence it did
//     not expect) but never acknowledges it, and replay skips it (see
//     jslog.Message.Stale): it is counted and not applied here either, so
//     a write acknowledged after its fence shows up as lost;
//   - no message of an epoch no fence opened yet.
//
// Records before the first fence still stored (a compacted stream starts
// with a snapshot) must share one epoch and host, below that fence's.
func (c *soClusterT) readStreams() (*soStreams, error) {
	out := &soStreams{jobs: map[string]soJob{}, fences: map[int][]jslog.Message{}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for shard := range soShards {
		var cur *jslog.Message
		epochHost := map[uint64]string{}
		var preEpoch uint64
		var preHost string
		pre := false
		err := c.eng.ReadShard(ctx, shard, func(m jslog.Message) error {
			out.messages++
			if m.Kind == jslog.KindOwn {
				if cur != nil && m.Epoch <= cur.Epoch {
					out.violate("shard %d seq %d: fence epoch %d (%s) after fence epoch %d (%s) at seq %d",
						shard, m.Seq, m.Epoch, m.Host, cur.Epoch, cur.Host, cur.Seq)
				}
				if cur == nil && pre && (m.Epoch <= preEpoch || epochHost[preEpoch] != "" && epochHost[preEpoch] != preHost) {
					out.violate("shard %d seq %d: fence epoch %d after records of epoch %d", shard, m.Seq, m.Epoch, preEpoch)
				}
				if h, ok := epochHost[m.Epoch]; ok && h != m.Host {
					out.violate("shard %d seq %d: epoch %d fenced by %s and by %s", shard, m.Seq, m.Epoch, h, m.Host)
				}
				epochHost[m.Epoch] = m.Host
				f := m
				f.Records = nil
				cur = &f
				out.fences[shard] = append(out.fences[shard], f)
				return nil
			}
			switch {
			case cur == nil && !pre:
				pre, preEpoch, preHost = true, m.Epoch, m.Host
			case cur == nil && (m.Epoch != preEpoch || m.Host != preHost):
				out.violate("shard %d seq %d: %s of epoch %d (%s) among records of epoch %d (%s) before any fence",
					shard, m.Seq, m.Kind, m.Epoch, m.Host, preEpoch, preHost)
			case cur != nil && m.Epoch > cur.Epoch:
				out.violate("shard %d seq %d: %s of epoch %d (%s) that no fence opened (last fence: epoch %d at seq %d)",
					shard, m.Seq, m.Kind, m.Epoch, m.Host, cur.Epoch, cur.Seq)
			case cur != nil && epochHost[m.Epoch] != "" && epochHost[m.Epoch] != m.Host:
				out.violate("shard %d seq %d: %s of epoch %d by %s, whose fence was %s's (a second writer in one epoch)",
					shard, m.Seq, m.Kind, m.Epoch, m.Host, epochHost[m.Epoch])
			case cur != nil && m.Epoch < cur.Epoch:
				out.stale++
				if !m.Stale {
					out.violate("shard %d seq %d: %s of epoch %d after the fence of epoch %d, not marked stale by ReadShard",
						shard, m.Seq, m.Kind, m.Epoch, cur.Epoch)
				}
				return nil // never acknowledged, skipped by replay
			}
			for _, r := range m.Records {
				applySoRecord(out.jobs, r)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read shard %d: %w", shard, err)
		}
	}
	return out, nil
}

// applySoRecord applies a record's effect on jobs.
func applySoRecord(jobs map[string]soJob, r store.Record) {
	switch r.Type {
	case store.RecordJob, store.RecordStatus:
		jobs[r.Job.ID] = soJob{status: r.Job.Status.String(), exec: r.Job.Execution}
	case store.RecordJobRemoval:
		delete(jobs, r.ID)
	}
}

// checkLedgerOffline compares the ledger with the streams: every
// acknowledged key must be there at its time. It returns the number lost
// and a few examples.
func checkLedgerOffline(acked map[string]int64, st *soStreams) (lost int, examples []string) {
	for _, k := range slices.Sorted(maps.Keys(acked)) {
		if j, ok := st.jobs[k]; !ok || j.exec != acked[k] {
			lost++
			if len(examples) < 10 {
				examples = append(examples, fmt.Sprintf("%s acknowledged at %d, stream: %+v (present %v)", k, acked[k], j, ok))
			}
		}
	}
	return lost, examples
}

// verifyNoLoss runs both checks of the ledger and the writer check, and
// fails the test on any loss or violation; it logs the figures.
func (c *soClusterT) verifyNoLoss(what string, l *soLedger, extra ...*soLedger) *soStreams {
	c.t.Helper()
	acked := l.snapshot()
	for _, e := range extra {
		for k, v := range e.snapshot() {
			acked[k] = v
		}
	}
	// Due jobs change status as they run: GET checks only the far ones.
	far := map[string]int64{}
	for k, v := range acked {
		if v >= soFar {
			far[k] = v
		}
	}
	lostGET, exGET := c.checkLedgerByGET(far)
	st, err := c.readStreams()
	if err != nil {
		c.t.Fatalf("%s: offline read of the shard streams: %v", what, err)
	}
	lostOff, exOff := checkLedgerOffline(acked, st)
	nf := 0
	for _, fs := range st.fences {
		nf += len(fs)
	}
	c.t.Logf("%s: %s; lost by GET: %d of %d; lost in the streams: %d of %d; %d stream messages, %d fences, %d fenced in-flight appends after their fence (never applied), %d writer violations",
		what, l.summary(), lostGET, len(far), lostOff, len(acked), st.messages, nf, st.stale, st.nviolation)
	if lostGET > 0 {
		c.t.Errorf("%s: %d acknowledged writes lost (GET), e.g.:\n%s", what, lostGET, strings.Join(exGET, "\n"))
	}
	if lostOff > 0 {
		c.t.Errorf("%s: %d acknowledged writes missing from the shard streams, e.g.:\n%s", what, lostOff, strings.Join(exOff, "\n"))
	}
	if st.nviolation > 0 {
		c.t.Errorf("%s: %d single-writer violations in the shard streams:\n%s", what, st.nviolation, strings.Join(st.violations, "\n"))
	}
	return st
}

// soRun is one execution logged by the "due." shell rule.
type soRun struct {
	host  string // TOCK_E2E_HOST: host name and generation, "h2.g1"
	pid   int
	ended bool
}

// dueRule is the RULE SET of the due jobs: the shell logs a start and an
// end line per execution, with the host (and its generation) running it.
func dueRule(rid, ranLog string) string {
	mark := func(what string) string {
		return fmt.Sprintf("echo %s $TOCK_JOB_ID $TOCK_E2E_HOST $$ >> %s", what, ranLog)
	}
	return fmt.Sprintf(`%s RULE SET rule.due due. shell "%s; %s"`, rid, mark("start"), mark("end"))
}

// readRuns parses the ran log: job → its executions in start order.
func readRuns(path string) (map[string][]soRun, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return map[string][]soRun{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	runs := map[string][]soRun{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) != 4 {
			// A line cut by a kill -9 of the shell between its writes
			// cannot happen (one write per echo); anything else is a bug.
			return nil, fmt.Errorf("%s: bad line %q", path, sc.Text())
		}
		pid, err := strconv.Atoi(fl[3])
		if err != nil {
			return nil, fmt.Errorf("%s: bad line %q", path, sc.Text())
		}
		rs := runs[fl[1]]
		switch fl[0] {
		case "start":
			runs[fl[1]] = append(rs, soRun{host: fl[2], pid: pid})
		case "end":
			i := slices.IndexFunc(rs, func(r soRun) bool { return r.pid == pid && r.host == fl[2] })
			if i < 0 {
				return nil, fmt.Errorf("%s: end without a start: %q", path, sc.Text())
			}
			rs[i].ended = true
		default:
			return nil, fmt.Errorf("%s: bad line %q", path, sc.Text())
		}
	}
	return runs, sc.Err()
}

// checkDue waits until every acknowledged due job is executed, then
// checks the executions: each job ran (to its end) at least once, and
// every run beyond one was on a host generation in crashed (the dead host
// had started it). It returns the number of such duplicates.
func (c *soClusterT) checkDue(what string, due *soLedger, crashed ...string) int {
	c.t.Helper()
	acked := due.snapshot()
	keys := slices.Sorted(maps.Keys(acked))
	waitForWhy(c.t, 90*time.Second, what+": every due job executed", func() (bool, string) {
		got, err := c.getAll(keys)
		if err != nil {
			return false, err.Error()
		}
		for _, k := range keys {
			if got[k].status != "executed" {
				return false, fmt.Sprintf("%s is %+v", k, got[k])
			}
		}
		return true, ""
	})
	runs, err := readRuns(c.ranLog)
	if err != nil {
		c.t.Fatal(err)
	}
	dups, onCrashed := 0, 0
	for _, k := range keys {
		rs := runs[k]
		ended := slices.ContainsFunc(rs, func(r soRun) bool { return r.ended })
		if !ended {
			c.t.Errorf("%s: due job %s is executed but no run of it ended: %+v", what, k, rs)
			continue
		}
		survivors := 0
		for _, r := range rs {
			if slices.Contains(crashed, r.host) {
				onCrashed++
			} else {
				survivors++
			}
		}
		if survivors > 1 {
			c.t.Errorf("%s: due job %s ran %d times on hosts that did not crash: %+v", what, k, survivors, rs)
		}
		if len(rs) > 1 {
			dups++
		}
	}
	c.t.Logf("%s: %d due jobs acknowledged (%s), all executed; %d ran more than once, %d runs on the crashed host(s) %v",
		what, len(keys), due.summary(), dups, onCrashed, crashed)
	return dups
}
