//go:build soak

package e2e

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// The ledger is what the soak's clients know the cluster must show at the
// end: for every key they wrote, the state the last acknowledged request
// left it in, plus the states a request whose reply never came (or came as
// an ERROR) may have left it in.

// keyState is one possible state of a key: absent, or present with an
// execution time.
type keyState struct {
	present bool
	exec    int64
}

func (s keyState) String() string {
	if !s.present {
		return "absent"
	}
	return fmt.Sprint(s.exec)
}

// ledgerKey is one key as its client knows it. A key with an uncertain
// outcome is never touched again, so its possible states stay two.
type ledgerKey struct {
	due   bool     // due during the soak: its rule's shell runner logs each run
	state keyState // left by the last acknowledged request
	maybe []keyState
}

// possible lists the states the cluster may show for k.
func (k *ledgerKey) possible() []keyState { return append([]keyState{k.state}, k.maybe...) }

// opKind names a ledger client's operation.
type opKind string

const (
	opSetFar opKind = "set"     // SET of a new key far in the future
	opReset  opKind = "re-set"  // SET of an existing far key to another time
	opRemove opKind = "remove"  // REMOVE of an existing far key
	opSetDue opKind = "set-due" // SET of a new key due within a second or two
	opGet    opKind = "get"     // GET of an existing far key, checked against the ledger
)

var opKinds = []opKind{opSetFar, opReset, opRemove, opSetDue, opGet}

// ledger is shared by every ledger client; each client writes only its own
// keys, so the ledger never has to order two clients' writes.
type ledger struct {
	mu         sync.Mutex
	keys       map[string]*ledgerKey
	acked      map[opKind]int
	uncertain  map[opKind]int
	errors     map[string]int // ERROR replies by reason
	mismatches []string       // replies that contradict the ledger (first 50)
	mismatchN  int
}

func newLedger() *ledger {
	return &ledger{keys: map[string]*ledgerKey{}, acked: map[opKind]int{}, uncertain: map[opKind]int{}, errors: map[string]int{}}
}

// ack records an acknowledged write (after is the key's new state) or read.
func (l *ledger) ack(op opKind, key string, due bool, after keyState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acked[op]++
	if op == opGet {
		return
	}
	k := l.keys[key]
	if k == nil {
		k = &ledgerKey{due: due}
		l.keys[key] = k
	}
	k.state = after
}

// unsure records a write whose outcome is unknown: before is the key's
// state if it did not happen, after if it did.
func (l *ledger) unsure(op opKind, key string, due bool, before, after keyState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.uncertain[op]++
	if op == opGet {
		return
	}
	k := l.keys[key]
	if k == nil {
		k = &ledgerKey{due: due, state: before}
		l.keys[key] = k
	}
	k.maybe = append(k.maybe, after)
}

// errorReply counts an ERROR reply by its reason ("shard unavailable: x"
// counts as "shard unavailable").
func (l *ledger) errorReply(reason string) {
	if i := strings.IndexByte(reason, ':'); i > 0 {
		reason = reason[:i]
	}
	l.mu.Lock()
	l.errors[reason]++
	l.mu.Unlock()
}

// mismatch records a reply that contradicts the ledger.
func (l *ledger) mismatch(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mismatchN++
	if len(l.mismatches) < 50 {
		l.mismatches = append(l.mismatches, fmt.Sprintf(format, args...))
	}
}

// snapshot returns a copy of the keys, for the verifier.
func (l *ledger) snapshot() map[string]ledgerKey {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]ledgerKey, len(l.keys))
	for id, k := range l.keys {
		out[id] = ledgerKey{due: k.due, state: k.state, maybe: slices.Clone(k.maybe)}
	}
	return out
}

// opsSummary is e.g. "9120 acknowledged (set 3000, ...), 12 uncertain".
func (l *ledger) opsSummary() (acked, unsure int, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var parts []string
	for _, op := range opKinds {
		acked += l.acked[op]
		unsure += l.uncertain[op]
		parts = append(parts, fmt.Sprintf("%s %d", op, l.acked[op]))
	}
	text = fmt.Sprintf("%d acknowledged (%s), %d with an unknown outcome", acked, strings.Join(parts, ", "), unsure)
	if len(l.errors) > 0 {
		var errs []string
		for _, r := range slices.Sorted(maps.Keys(l.errors)) {
			errs = append(errs, fmt.Sprintf("%q=%d", r, l.errors[r]))
		}
		text += "; ERROR replies: " + strings.Join(errs, " ")
	}
	return acked, unsure, text
}
