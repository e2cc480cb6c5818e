package store

import (
	"slices"
	"strings"
)

// Rules is the rule set: rules by id, indexed by pattern for matching. It
// is pure and not safe for concurrent use.
//
// Matching is ztick's (the rule whose pattern is the longest byte prefix of
// the job id wins; an empty pattern never matches) with one deliberate
// fix: among matching patterns of equal length, which can only be equal
// patterns, the lexicographically smallest rule id wins instead of a
// hash-map accident.
//
// Rules are shared, not copied, on the way out: a Rule read from the store
// (its Args in particular) must not be modified.
type Rules struct {
	byID map[string]Rule
	// byPattern holds, per non-empty pattern, the ids of its rules sorted.
	byPattern map[string][]string
	// lengths are the distinct lengths of indexed patterns, longest first,
	// so Match does one map lookup per length rather than per rule.
	lengths []int
}

// NewRules returns an empty rule set.
func NewRules() *Rules {
	return &Rules{byID: make(map[string]Rule), byPattern: make(map[string][]string)}
}

// Len is the number of rules.
func (r *Rules) Len() int { return len(r.byID) }

// Set creates or replaces the rule with rule.ID. Args are copied.
func (r *Rules) Set(rule Rule) {
	if old, ok := r.byID[rule.ID]; ok {
		r.unindex(old)
	}
	rule.Runner.Args = slices.Clone(rule.Runner.Args)
	r.byID[rule.ID] = rule
	r.index(rule)
}

// Remove deletes rule id and reports whether it existed. Planned jobs are
// unaffected until they are due.
func (r *Rules) Remove(id string) bool {
	old, ok := r.byID[id]
	if !ok {
		return false
	}
	r.unindex(old)
	delete(r.byID, id)
	return true
}

// Get returns rule id.
func (r *Rules) Get(id string) (Rule, bool) {
	rule, ok := r.byID[id]
	return rule, ok
}

// List returns the rules whose id starts with prefix, sorted by id.
func (r *Rules) List(prefix string) []Rule {
	var out []Rule
	for id, rule := range r.byID {
		if strings.HasPrefix(id, prefix) {
			out = append(out, rule)
		}
	}
	slices.SortFunc(out, func(a, b Rule) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Snapshot returns every rule, sorted by id.
func (r *Rules) Snapshot() []Rule { return r.List("") }

// Records appends a rule record per rule: what rebuilds this set when
// replayed, and what a compaction of rules.log writes.
func (r *Rules) Records(dst []Record) []Record {
	for _, rule := range r.Snapshot() {
		dst = append(dst, Record{Type: RecordRule, Rule: rule})
	}
	return dst
}

// Match returns the rule for jobID: the one whose pattern is the longest
// byte prefix of jobID, the smallest rule id among equal patterns.
func (r *Rules) Match(jobID string) (Rule, bool) {
	for _, n := range r.lengths {
		if n > len(jobID) {
			continue
		}
		if ids := r.byPattern[jobID[:n]]; len(ids) > 0 {
			return r.byID[ids[0]], true
		}
	}
	return Rule{}, false
}

// Apply replays a rule or rule-removal record; other records are ignored.
func (r *Rules) Apply(rec Record) {
	switch rec.Type {
	case RecordRule:
		r.Set(rec.Rule)
	case RecordRuleRemoval:
		r.Remove(rec.ID)
	}
}

func (r *Rules) index(rule Rule) {
	if rule.Pattern == "" {
		return // an empty pattern never matches, as in ztick
	}
	ids := r.byPattern[rule.Pattern]
	i, _ := slices.BinarySearch(ids, rule.ID)
	r.byPattern[rule.Pattern] = slices.Insert(ids, i, rule.ID)
	if len(ids) > 0 {
		return // the pattern, and so its length, was indexed already
	}
	n := len(rule.Pattern)
	i, found := slices.BinarySearchFunc(r.lengths, n, func(have, want int) int { return want - have })
	if !found {
		r.lengths = slices.Insert(r.lengths, i, n)
	}
}

func (r *Rules) unindex(rule Rule) {
	ids := r.byPattern[rule.Pattern]
	i, found := slices.BinarySearch(ids, rule.ID)
	if !found {
		return
	}
	if ids = slices.Delete(ids, i, i+1); len(ids) > 0 {
		r.byPattern[rule.Pattern] = ids
		return
	}
	delete(r.byPattern, rule.Pattern)
	n := len(rule.Pattern)
	for p := range r.byPattern {
		if len(p) == n {
			return // another pattern still has this length
		}
	}
	if i, found := slices.BinarySearchFunc(r.lengths, n, func(have, want int) int { return want - have }); found {
		r.lengths = slices.Delete(r.lengths, i, i+1)
	}
}
