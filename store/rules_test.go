package store

import (
	"reflect"
	"slices"
	"testing"
)

func rule(id, pattern string) Rule {
	return Rule{ID: id, Pattern: pattern, Runner: Runner{Kind: RunnerShell, Args: []string{"echo " + id}}}
}

func TestRulesMatch(t *testing.T) { // README.md, docs/protocol.md
	tests := []struct {
		name  string
		rules []Rule
		job   string
		want  string // rule id, "" = no match
	}{
		{"longest prefix wins", []Rule{rule("short", "app."), rule("long", "app.backup."), rule("other", "db.")}, "app.backup.daily", "long"},
		{"shorter when longer does not match", []Rule{rule("short", "app."), rule("long", "app.backup.")}, "app.deploy", "short"},
		{"whole id as pattern", []Rule{rule("exact", "job"), rule("j", "j")}, "job", "exact"},
		{"pattern longer than id", []Rule{rule("long", "app.backup.")}, "app.", ""},
		{"no rule matches", []Rule{rule("a", "a.")}, "b.1", ""},
		{"empty pattern never matches", []Rule{rule("all", "")}, "anything", ""},
		{"empty pattern with a real one", []Rule{rule("all", ""), rule("x", "x")}, "xy", "x"},
		{"equal patterns: smallest id", []Rule{rule("zeta", "app."), rule("alpha", "app."), rule("mid", "app.")}, "app.1", "alpha"},
		{"bytewise, case sensitive", []Rule{rule("up", "App.")}, "app.1", ""},
		{"literal, no globbing", []Rule{rule("glob", "deploy.*")}, "deploy.x", ""},
		{"empty job id", []Rule{rule("a", "a")}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRules()
			for _, rl := range tt.rules {
				r.Set(rl)
			}
			got, ok := r.Match(tt.job)
			if ok != (tt.want != "") || got.ID != tt.want {
				t.Fatalf("Match(%q) = %q, %v; want %q", tt.job, got.ID, ok, tt.want)
			}
		})
	}
}

// Replacing and removing rules keeps the pattern index right.
func TestRulesIndexFollowsChanges(t *testing.T) {
	r := NewRules()
	r.Set(rule("a", "app."))
	r.Set(rule("b", "app."))
	r.Set(rule("c", "app.x"))
	steps := []struct {
		name string
		do   func()
		job  string
		want string
	}{
		{"initial", func() {}, "app.x1", "c"},
		{"remove the longest", func() { r.Remove("c") }, "app.x1", "a"},
		{"remove the tie winner", func() { r.Remove("a") }, "app.x1", "b"},
		{"move b to another pattern", func() { r.Set(rule("b", "db.")) }, "app.x1", ""},
		{"b matches its new pattern", func() {}, "db.1", "b"},
		{"empty the pattern", func() { r.Set(rule("b", "")) }, "db.1", ""},
		{"remove twice", func() { r.Remove("b"); r.Remove("b") }, "db.1", ""},
	}
	for _, s := range steps {
		s.do()
		got, _ := r.Match(s.job)
		if got.ID != s.want {
			t.Fatalf("after %q: Match(%q) = %q, want %q", s.name, s.job, got.ID, s.want)
		}
	}
	if r.Len() != 0 || len(r.lengths) != 0 || len(r.byPattern) != 0 {
		t.Fatalf("empty set keeps index state: %d rules, lengths %v, patterns %v", r.Len(), r.lengths, r.byPattern)
	}
}

func TestRulesListAndSnapshot(t *testing.T) {
	r := NewRules()
	for _, id := range []string{"ns.b", "ns.a", "other", "ns.c"} {
		r.Set(rule(id, "p."))
	}
	var ids []string
	for _, rl := range r.List("ns.") {
		ids = append(ids, rl.ID)
	}
	if !slices.Equal(ids, []string{"ns.a", "ns.b", "ns.c"}) {
		t.Fatalf("List(ns.) = %v, want sorted ns.* ids", ids)
	}
	if got := r.Snapshot(); len(got) != 4 || got[3].ID != "other" {
		t.Fatalf("Snapshot = %+v", got)
	}
	if r.List("none") != nil {
		t.Fatal("List with no match is not empty")
	}
}

func TestRulesSetCopiesArgs(t *testing.T) {
	r := NewRules()
	args := []string{"GET", "http://a"}
	r.Set(Rule{ID: "h", Pattern: "h.", Runner: Runner{Kind: RunnerHTTP, Args: args}})
	args[1] = "http://changed"
	if got, _ := r.Get("h"); got.Runner.Args[1] != "http://a" {
		t.Fatalf("stored rule follows the caller's slice: %v", got.Runner.Args)
	}
}

func TestRulesApplyAndRecords(t *testing.T) {
	r := NewRules()
	for _, rec := range []Record{
		ruleRec("a", "a.", RunnerShell, "true"),
		ruleRec("b", "b.", RunnerHTTP, "GET", "http://b"),
		ruleRec("a", "aa.", RunnerShell, "false"),
		ruleRemoval("b"),
		ruleRemoval("missing"),
		jobRec("a", 1, Planned), // not a rule record
	} {
		r.Apply(rec)
	}
	want := []Record{ruleRec("a", "aa.", RunnerShell, "false")}
	if got := r.Records(nil); !reflect.DeepEqual(got, want) {
		t.Fatalf("Records = %+v, want %+v", got, want)
	}
	if _, ok := r.Get("b"); ok {
		t.Fatal("removed rule still there")
	}
}
