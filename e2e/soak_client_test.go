//go:build soak

package e2e

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// soakTarget is where the ledger clients connect: the current master's
// address, and a generation that the chaos loop bumps before it kills the
// master, so that a client tells a connection closed by a master kill from
// one the server closed on its own.
type soakTarget struct {
	mu   sync.Mutex
	addr string // "" while the master is down
	gen  int
}

func (t *soakTarget) get() (string, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addr, t.gen
}

// down is called before the master is killed.
func (t *soakTarget) down() {
	t.mu.Lock()
	t.gen++
	t.addr = ""
	t.mu.Unlock()
}

// up is called once the new master is ready.
func (t *soakTarget) up(addr string) {
	t.mu.Lock()
	t.addr = addr
	t.mu.Unlock()
}

// connCloses counts the client connections that died under the clients.
type connCloses struct {
	mu           sync.Mutex
	atMasterKill int
	byServer     []string // when and how, for each close no master kill explains
}

func (cc *connCloses) add(explained bool, what string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if explained {
		cc.atMasterKill++
		return
	}
	cc.byServer = append(cc.byServer, time.Now().UTC().Format("15:04:05.000")+" "+what)
}

func (cc *connCloses) counts() (int, []string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.atMasterKill, slices.Clone(cc.byServer)
}

// Key name prefixes; the soak's rules match the due ones.
const (
	soakFarPrefix  = "soak.far."
	soakFastPrefix = "soak.due.fast."
	soakSlowPrefix = "soak.due.slow."
)

// ledgerClient drives one persistent connection, sequentially, and records
// every outcome in the ledger. It reconnects after its connection dies
// (across master restarts).
type ledgerClient struct {
	id     int
	rng    *rand.Rand
	l      *ledger
	tgt    *soakTarget
	closes *connCloses
	conn   *rawClient
	gen    int // the target's generation when conn was dialed
	seq    int // request ids
	next   int // key names
	far    []string
	farAt  map[string]int64 // far keys that are present and certain → execution
}

func newLedgerClient(id int, seed uint64, l *ledger, tgt *soakTarget, closes *connCloses) *ledgerClient {
	return &ledgerClient{id: id, rng: rand.New(rand.NewPCG(seed, uint64(id))), l: l, tgt: tgt, closes: closes, farAt: map[string]int64{}}
}

// run makes one request per tick of every until stop closes.
func (c *ledgerClient) run(stop <-chan struct{}, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	defer func() {
		if c.conn != nil {
			c.conn.close()
		}
	}()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if c.conn == nil && !c.connect() {
			continue // the master is down; try again next tick
		}
		c.step()
	}
}

func (c *ledgerClient) connect() bool {
	addr, gen := c.tgt.get()
	if addr == "" {
		return false
	}
	rc := dialNoT(addr)
	if rc == nil {
		return false
	}
	c.conn, c.gen = rc, gen
	return true
}

// step makes one randomly chosen request.
func (c *ledgerClient) step() {
	r := c.rng.IntN(100)
	switch {
	case len(c.far) == 0 || r < 35:
		key := fmt.Sprintf("%sc%d.%d", soakFarPrefix, c.id, c.next)
		c.next++
		exec := loadFar + c.rng.Int64N(1e15)
		c.write(opSetFar, key, false, keyState{}, keyState{true, exec}, fmt.Sprintf("SET %s %d", key, exec))
	case r < 50:
		key := c.pickFar()
		exec := loadFar + c.rng.Int64N(1e15)
		c.write(opReset, key, false, keyState{true, c.farAt[key]}, keyState{true, exec}, fmt.Sprintf("SET %s %d", key, exec))
	case r < 65:
		key := c.pickFar()
		c.write(opRemove, key, false, keyState{true, c.farAt[key]}, keyState{}, "REMOVE "+key)
	case r < 80:
		prefix := soakFastPrefix
		if c.rng.IntN(2) == 0 {
			prefix = soakSlowPrefix
		}
		key := fmt.Sprintf("%sc%d.%d", prefix, c.id, c.next)
		c.next++
		exec := time.Now().Add(time.Duration(c.rng.Int64N(int64(1500 * time.Millisecond)))).UnixNano()
		c.write(opSetDue, key, true, keyState{}, keyState{true, exec}, fmt.Sprintf("SET %s %d", key, exec))
	default:
		c.get(c.pickFar())
	}
}

func (c *ledgerClient) pickFar() string { return c.far[c.rng.IntN(len(c.far))] }

// exchange sends one request and returns the reply after its request id;
// ok is false when the connection died.
func (c *ledgerClient) exchange(cmd string) (reply string, ok bool) {
	c.seq++
	rid := fmt.Sprintf("c%d.%d", c.id, c.seq)
	got := c.conn.do(rid + " " + cmd)
	if strings.HasPrefix(got, "io error") {
		_, gen := c.tgt.get()
		c.closes.add(gen != c.gen, fmt.Sprintf("client %d: %q: %s", c.id, cmd, got))
		c.drop()
		return "", false
	}
	if !strings.HasPrefix(got, rid+" ") {
		// Out of step with the server: the rest of this connection
		// cannot be trusted.
		c.l.mismatch("client %d: reply %q to %q", c.id, got, rid+" "+cmd)
		c.drop()
		return "", false
	}
	return strings.TrimPrefix(got, rid+" "), true
}

func (c *ledgerClient) drop() {
	c.conn.close()
	c.conn = nil
}

// write makes a mutating request that moves key from before to after.
func (c *ledgerClient) write(op opKind, key string, due bool, before, after keyState, cmd string) {
	reply, ok := c.exchange(cmd)
	switch {
	case ok && reply == "OK":
		c.l.ack(op, key, due, after)
		c.track(key, due, after)
		return
	case !ok:
	case strings.HasPrefix(reply, "ERROR "):
		reason := strings.TrimPrefix(reply, "ERROR ")
		c.l.errorReply(reason)
		if op == opRemove && reason == "not found" {
			c.l.mismatch("client %d: %q: %q, but the ledger has it at %s", c.id, cmd, reply, before)
		}
	default:
		c.l.mismatch("client %d: %q: unexpected reply %q", c.id, cmd, reply)
	}
	// The outcome is unknown: the key is left alone from now on.
	c.l.unsure(op, key, due, before, after)
	c.untrack(key)
}

// get reads a far key and checks it against the ledger.
func (c *ledgerClient) get(key string) {
	reply, ok := c.exchange("GET " + key)
	switch {
	case !ok:
		c.l.unsure(opGet, key, false, keyState{}, keyState{})
		return
	case strings.HasPrefix(reply, "ERROR "):
		c.l.errorReply(strings.TrimPrefix(reply, "ERROR "))
		c.l.unsure(opGet, key, false, keyState{}, keyState{})
		if reply == "ERROR not found" {
			c.l.mismatch("client %d: GET %s: %q, but the ledger has it at %d", c.id, key, reply, c.farAt[key])
		}
		return
	}
	c.l.ack(opGet, key, false, keyState{})
	if want := fmt.Sprintf("OK planned %d", c.farAt[key]); reply != want {
		c.l.mismatch("client %d: GET %s: %q, want %q", c.id, key, reply, want)
	}
}

// track keeps the list of this client's certain far keys up to date.
func (c *ledgerClient) track(key string, due bool, s keyState) {
	if due {
		return
	}
	if !s.present {
		c.untrack(key)
		return
	}
	if _, ok := c.farAt[key]; !ok {
		c.far = append(c.far, key)
	}
	c.farAt[key] = s.exec
}

func (c *ledgerClient) untrack(key string) {
	if _, ok := c.farAt[key]; !ok {
		return
	}
	delete(c.farAt, key)
	i := slices.Index(c.far, key)
	c.far[i] = c.far[len(c.far)-1]
	c.far = c.far[:len(c.far)-1]
}
