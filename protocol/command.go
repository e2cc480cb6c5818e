package protocol

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tockd/tock/store"
)

// Op is the instruction of a Command.
type Op uint8

// The instructions of the line protocol. The zero Op is not an instruction.
const (
	// OpSet is `<rid> SET <job> <timestamp>`: plan a job (ID, Execution).
	OpSet Op = iota + 1
	// OpGet is `<rid> GET <job>`: the status and time of a job (ID).
	OpGet
	// OpQuery is `<rid> QUERY [<prefix>]`: every job whose id starts with
	// Prefix ("" = all).
	OpQuery
	// OpRemove is `<rid> REMOVE <job>` (ID).
	OpRemove
	// OpRuleSet is `<rid> RULE SET <rule> <pattern> <runner> <args...>`
	// (Rule; ID is Rule.ID).
	OpRuleSet
	// OpRemoveRule is `<rid> REMOVERULE <rule>` (ID).
	OpRemoveRule
	// OpListRules is `<rid> LISTRULES`.
	OpListRules
	// OpStat is `<rid> STAT`.
	OpStat
	// OpAuth is `AUTH <secret>` (BareAuth) or `<rid> AUTH <secret>`
	// (Secret).
	OpAuth
	// OpInfo is `<rid> INFO <job>` (ID), tock's own: GET plus the job's
	// shard, matching rule and last outcome (see info.go).
	OpInfo
)

var opNames = [...]string{
	OpSet: "SET", OpGet: "GET", OpQuery: "QUERY", OpRemove: "REMOVE",
	OpRuleSet: "RULE SET", OpRemoveRule: "REMOVERULE", OpListRules: "LISTRULES",
	OpStat: "STAT", OpAuth: "AUTH", OpInfo: "INFO",
}

// String returns the instruction as written on the wire ("SET", "RULE SET").
func (o Op) String() string {
	if o >= OpSet && int(o) < len(opNames) {
		return opNames[o]
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// MaxIDLen is the longest job id, rule id, pattern or runner argument: they
// are stored with a u16 length.
const MaxIDLen = 65535

// Command is one parsed request line. Only the fields of its Op are set.
type Command struct {
	// RID is the client's request id, echoed first on every reply line; ""
	// only for a bare AUTH.
	RID string
	Op  Op
	// ID is the job id (SET, GET, REMOVE) or the rule id (REMOVERULE,
	// RULE SET).
	ID string
	// Execution is the SET time in ns since the Unix epoch.
	Execution int64
	// Prefix is QUERY's job id prefix; "" matches every job.
	Prefix string
	// Rule is RULE SET's rule.
	Rule store.Rule
	// Secret is AUTH's secret.
	Secret string
	// BareAuth is set for `AUTH <secret>` without a request id; its replies
	// are a bare `OK` or `ERROR <reason>`.
	BareAuth bool
}

// Error is a line that is not a valid command. The server answers it with
// `<RID> ERROR <Reason>` (`ERROR <Reason>` when RID is "") and keeps the
// connection open.
type Error struct {
	// RID is the request id, "" when it could not be read.
	RID string
	// Reason is short lower-case text without newlines; user text in it is
	// quoted with %q.
	Reason string
}

func (e *Error) Error() string { return e.Reason }

// Parse parses one line (without its terminator) into a Command.
//
// The first token is the request id and the second the instruction,
// case-sensitive: SET, GET, QUERY, REMOVE, RULE SET (two tokens),
// REMOVERULE, LISTRULES, STAT or AUTH. A line whose first token is AUTH is a
// bare `AUTH <secret>`. Extra tokens after a complete command are ignored,
// as in ztick. Every other line yields an *Error; see the package tests for
// the reasons.
func Parse(line []byte) (Command, *Error) { return parse(line, true) }

// ParseRequest is Parse except that the first token is always the request
// id, so `AUTH x` is request id "AUTH" with instruction "x". ztick reads
// lines this way once a connection has authenticated, and when auth is off.
func ParseRequest(line []byte) (Command, *Error) { return parse(line, false) }

func parse(line []byte, bareAuth bool) (Command, *Error) {
	var arr [16]string
	toks, err := Tokenize(line, arr[:0])
	if err != nil {
		rid := ""
		if len(toks) > 0 && !(bareAuth && toks[0] == "AUTH") {
			rid = toks[0]
		}
		return Command{}, &Error{RID: rid, Reason: err.Error()}
	}
	if len(toks) == 0 {
		return Command{}, &Error{Reason: "empty line"}
	}
	rid := toks[0]
	if bareAuth && rid == "AUTH" {
		if len(toks) < 2 {
			return Command{}, &Error{Reason: "missing secret"}
		}
		return Command{Op: OpAuth, Secret: toks[1], BareAuth: true}, nil
	}
	if rid == "" {
		return Command{}, &Error{Reason: "empty request id"}
	}
	if len(toks) < 2 {
		return Command{}, &Error{RID: rid, Reason: "missing command"}
	}
	c := Command{RID: rid}
	var reason string
	switch args := toks[2:]; toks[1] {
	case "SET":
		c.Op = OpSet
		reason = parseSet(&c, args)
	case "GET":
		c.Op = OpGet
		c.ID, reason = jobID(args)
	case "REMOVE":
		c.Op = OpRemove
		c.ID, reason = jobID(args)
	case "INFO":
		c.Op = OpInfo
		c.ID, reason = jobID(args)
	case "QUERY":
		c.Op = OpQuery
		if len(args) > 0 {
			c.Prefix = args[0]
		}
	case "REMOVERULE":
		c.Op = OpRemoveRule
		c.ID, reason = ruleID(args)
	case "LISTRULES":
		c.Op = OpListRules
	case "STAT":
		c.Op = OpStat
	case "AUTH":
		c.Op = OpAuth
		if len(args) == 0 {
			reason = "missing secret"
		} else {
			c.Secret = args[0]
		}
	case "RULE":
		if len(args) == 0 || args[0] != "SET" {
			return Command{}, &Error{RID: rid, Reason: fmt.Sprintf("unknown command %q", strings.Join(toks[1:min(3, len(toks))], " "))}
		}
		c.Op = OpRuleSet
		reason = parseRuleSet(&c, args[1:])
	default:
		return Command{}, &Error{RID: rid, Reason: fmt.Sprintf("unknown command %q", toks[1])}
	}
	if reason != "" {
		return Command{}, &Error{RID: rid, Reason: reason}
	}
	return c, nil
}

func parseSet(c *Command, args []string) string {
	var reason string
	if c.ID, reason = jobID(args); reason != "" {
		return reason
	}
	ns, err := ParseTimestamp(args[1:])
	if err != nil {
		return err.Error()
	}
	c.Execution = ns
	return ""
}

func jobID(args []string) (string, string) {
	if len(args) == 0 {
		return "", "missing job id"
	}
	if len(args[0]) > MaxIDLen {
		return "", "id too long"
	}
	return args[0], ""
}

func ruleID(args []string) (string, string) {
	if len(args) == 0 {
		return "", "missing rule id"
	}
	if len(args[0]) > MaxIDLen {
		return "", "id too long"
	}
	return args[0], ""
}

// parseRuleSet reads `<rule> <pattern> <runner> <args...>`.
func parseRuleSet(c *Command, args []string) string {
	id, reason := ruleID(args)
	if reason != "" {
		return reason
	}
	switch {
	case len(args) < 2:
		return "missing pattern"
	case len(args[1]) > MaxIDLen:
		return "pattern too long"
	case len(args) < 3:
		return "missing runner"
	}
	runner, reason := parseRunner(args[2], args[3:])
	if reason != "" {
		return reason
	}
	c.ID = id
	c.Rule = store.Rule{ID: id, Pattern: args[1], Runner: runner}
	return ""
}
